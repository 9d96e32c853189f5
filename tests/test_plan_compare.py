"""How apply compares a read with the run's (drygate.plan.fingerprint) and the policy's
``[[volatile]]`` (drygate.policy.load): unit tests of the normal form of an MCP
``CallToolResult`` (from the spec's schema: ``isError`` defaults to false, ``content`` to
``[]``, ``_meta`` carries no content, optional fields may be null or absent), the diff,
the masking, and the loader's validation."""

import json
import re

import pytest

from drygate.errors import PolicyError
from drygate.plan.fingerprint import diff, mask, normal_result, result_fingerprint
from drygate.policy.load import compile_policy_text
from drygate.policy.match import volatile_for

BASE = {"content": [{"type": "text", "text": '{"a": 1, "b": [1, 2]}'}]}


@pytest.mark.parametrize("variant", [
    dict(BASE, isError=False),                                       # the default written out
    dict(BASE, _meta={"server/timing": 3}),                          # request-specific metadata
    {"content": [{"type": "text", "text": '{"b":[1,2],"a":1}'}]},   # key order and whitespace of a JSON text
    {"content": [{"type": "text", "text": '{"a": 1, "b": [1, 2]}', "annotations": None}]},
    {"content": [{"type": "text", "text": '{"a": 1, "b": [1, 2]}', "annotations": {}, "_meta": {"x": 1}}]},
    dict(BASE, structuredContent=None),
    json.loads(json.dumps(dict(reversed(list(dict(BASE, isError=False).items()))))),
])
def test_serialisations_of_one_result_have_one_fingerprint(variant):
    assert result_fingerprint(variant) == result_fingerprint(BASE)


@pytest.mark.parametrize("variant", [
    dict(BASE, isError=True),
    {"content": [{"type": "text", "text": '{"a": 2, "b": [1, 2]}'}]},
    {"content": [{"type": "text", "text": '{"a": 1, "b": [1, 2]} '}, {"type": "text", "text": "more"}]},
    dict(BASE, structuredContent={"a": 1}),
    {"content": [{"type": "text", "text": '{"a": 1, "b": [1, 2]}', "annotations": {"priority": 1}}]},
    {"content": [{"type": "text", "text": "plain text"}]},
    {"content": []},
])
def test_results_that_say_something_else_differ(variant):
    assert result_fingerprint(variant) != result_fingerprint(BASE)


def test_embedded_resources_lose_only_their_meta():
    a = {"content": [{"type": "resource", "resource": {"uri": "file:///x", "text": "t", "_meta": {"m": 1}}}]}
    b = {"content": [{"type": "resource", "resource": {"uri": "file:///x", "text": "t", "mimeType": None}}]}
    c = {"content": [{"type": "resource", "resource": {"uri": "file:///y", "text": "t"}}]}
    assert result_fingerprint(a) == result_fingerprint(b) != result_fingerprint(c)


def test_diff_names_fields_and_lines_and_is_short():
    before = normal_result({"structuredContent": {"count": 7, "items": [{"id": 1}], "gone": True}})
    after = normal_result({"structuredContent": {"count": 9, "items": [{"id": 1}, {"id": 2}]}})
    assert diff(before, after) == ["structuredContent.count: 7 -> 9", "structuredContent.gone: removed (was true)",
                                   'structuredContent.items.1: added {"id": 2}']
    assert diff({"stdout": "a\nb\n"}, {"stdout": "a\nB\n"}) == ['stdout line 2: "b" -> "B"']
    many = diff({str(i): i for i in range(30)}, {str(i): -i for i in range(1, 31)}, limit=5)
    assert len(many) == 6 and many[-1].startswith("... and")
    assert all(len(line) <= 180 for line in diff("x" * 1000, "y" * 1000))


def test_mask_hides_fields_everywhere_and_patterns_in_text():
    value = normal_result({"content": [{"type": "text", "text": '{"calls": 3, "items": [{"at": "t1", "v": 1}]}'}],
                           "structuredContent": {"calls": 3, "items": [{"at": "t1", "v": 1}]}})
    masked = mask(value, ["calls", "items.*.at"])
    assert masked["structuredContent"] == {"calls": "<volatile>", "items": [{"at": "<volatile>", "v": 1}]}
    assert masked["content"][0]["json"] == masked["structuredContent"]
    assert value["structuredContent"]["calls"] == 3  # the original is not changed
    text = mask({"stdout": "id=req-81 value=7\n"}, [], [re.compile(r"req-\d+")])
    assert text == {"stdout": "id=<volatile> value=7\n"}


def test_volatile_entries_are_validated_and_matched():
    policy = compile_policy_text(
        '[[volatile]]\ntool_glob = "mcp__api__*"\nfields = ["request_id"]\n\n'
        '[[volatile]]\ntool = "Bash"\ninput_regex = { command = "^wrangler " }\npatterns = ["\\\\d+ms"]\n\n'
        '[[volatile]]\ntool = "mcp__api__status"\nfields = ["served_at", "request_id"]\n')
    assert volatile_for(policy, "mcp__api__status", {}) == (("request_id", "served_at"), ())
    assert volatile_for(policy, "mcp__plugin_x_api__get", {}) == (("request_id",), ())  # plugin form, as rules
    assert volatile_for(policy, "Bash", {"command": "wrangler kv key get k"}) == ((), ("\\d+ms",))
    assert volatile_for(policy, "Bash", {"command": "redis-cli get k"}) == ((), ())
    for text, message in (
            ('[[volatile]]\ntool = "x"\n', "names no fields and no patterns"),
            ('[[volatile]]\nfields = ["a"]\n', "exactly one of tool, tool_glob, tool_regex"),
            ('[[volatile]]\ntool = "x"\nfields = ["a..b"]\n', "dotted paths"),
            ('[[volatile]]\ntool = "x"\nfields = "a"\n', "dotted paths"),
            ('[[volatile]]\ntool = "x"\npatterns = ["("]\n', "not a valid regex"),
            ('[[volatile]]\ntool = "x"\nfields = ["a"]\nignore = true\n', "unknown key(s): ignore"),
            ('volatile = 3\n', "array of tables")):
        with pytest.raises(PolicyError, match=re.escape(message)):
            compile_policy_text(text)


def test_the_default_policy_documents_volatile():
    from drygate.policy.load import default_policy_text

    text = default_policy_text()
    assert "# [[volatile]]" in text
    enabled = "\n".join(line[2:] if line.startswith("# ") and ("volatile" in line or "=" in line) else line
                        for line in text.split("# [[volatile]]", 1)[1].splitlines())
    compile_policy_text("[[volatile]]" + enabled)  # the documented example is valid
