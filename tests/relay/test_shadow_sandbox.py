"""Shadow servers run under bubblewrap: only their copy (and a scratch folder in it) is writable.

A dry run's calls go to the shadow, whatever they are. A SQL tool is the classic way out of
a copy: ``VACUUM INTO '<path>'`` writes a whole new database file wherever it is told. The
real SQLite-backed store server (examples/incident/store_server.py) through the real relay:

- dry run, shadow under bubblewrap: the file outside the copy is absent afterwards, for a
  path outside the project and for one next to the real database;
- live run (control): the same call writes the file (so the test can fail);
- bubblewrap hidden (bind-mounted /dev/null over it, in a mount namespace of the relay's
  own): no shadow at all, plain dry results (never live), the fallback journaled, and
  `drygate doctor` says so.
"""

import json
import os
import shutil

import pytest

from .conftest import DRYGATE
from .test_shadow import RUN, STORE_RULES, calls, run, shadow_params

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is installed by .ci/run")


def vacuum_steps(*targets):
    return [("query", {"sql": f"VACUUM INTO '{t}'"}) for t in targets] + [
        ("query", {"sql": "INSERT INTO files VALUES ('k1', 'e1')"}),
        ("query", {"sql": "SELECT count(*) AS n FROM files"}),
    ]


@needs_bwrap
def test_vacuum_into_outside_the_copy_cannot_write(store_server, project, tmp_path):
    db = store_server.paths["db"]
    before = db.read_bytes()
    outside = tmp_path / "elsewhere" / "stolen.db"
    outside.parent.mkdir()
    beside = db.parent / "beside-the-real-db.db"
    project.policy("dry", STORE_RULES)
    results = run(calls, shadow_params(project, store_server, [db, store_server.paths["objects"]]),
                  vacuum_steps(outside, beside))
    assert not outside.exists() and not beside.exists()
    for r in results[:2]:
        assert r["isError"], r
        assert r["_meta"]["drygate"]["served_by"] == "shadow", r["_meta"]
    # the shadow still works on its copy: a write and the read of it
    assert json.loads(results[2]["content"][0]["text"])["rowcount"] == 1
    assert json.loads(results[3]["content"][0]["text"])["rows"] == [{"n": 2}]
    assert db.read_bytes() == before


NO_OP_BWRAP = """#!/bin/sh
# A bubblewrap that sandboxes nothing (the fault: a sandbox that does not hold). It reads
# bwrap's options as drygate passes them and runs the command as it is.
while [ "$#" -gt 0 ]; do
  case "$1" in
    --) shift; break;;
    --chdir) cd "$2"; shift 2;;
    --setenv) export "$2=$3"; shift 3;;
    --ro-bind|--bind) shift 3;;
    --dev) shift 2;;
    --*) shift;;
    *) break;;
  esac
done
exec "$@"
"""


def test_the_same_dry_call_writes_outside_when_the_sandbox_does_not_hold(store_server, project, tmp_path):
    """Control for the test above, on the same dry path: with a bubblewrap that sandboxes nothing
    first on PATH, the shadow's VACUUM INTO lands outside the copy. So the sandbox, nothing else,
    is what keeps it out (the store server does not show its error text)."""
    fake = tmp_path / "fake-bin"
    fake.mkdir()
    (fake / "bwrap").write_text(NO_OP_BWRAP)
    (fake / "bwrap").chmod(0o755)
    outside = tmp_path / "landed.db"
    project.policy("dry", STORE_RULES)
    params = shadow_params(project, store_server, [store_server.paths["db"], store_server.paths["objects"]])
    params.env["PATH"] = f"{fake}{os.pathsep}{os.environ['PATH']}"
    [vacuum] = run(calls, params, [("query", {"sql": f"VACUUM INTO '{outside}'"})])
    assert vacuum["_meta"]["drygate"].get("served_by") == "shadow" and not vacuum["isError"], json.dumps(vacuum)
    assert outside.exists()


def test_vacuum_into_in_a_live_run_writes(store_server, project, tmp_path):
    """Control: the same call through a live relay writes the file (what the sandbox prevents)."""
    outside = tmp_path / "live-stolen.db"
    project.policy("live", STORE_RULES)
    [result] = run(calls, project.relay(store_server, "live", "live-run"), [("query", {"sql": f"VACUUM INTO '{outside}'"})])
    assert not result["isError"], result
    assert outside.exists() and outside.stat().st_size > 0


def _hide_bwrap(params):
    """``params`` (StdioServerParameters) started in a mount namespace where bwrap is /dev/null."""
    from mcp import StdioServerParameters

    bwrap = shutil.which("bwrap")
    hide = ["unshare", "-m", "sh", "-c", f'mount --bind /dev/null {bwrap} && exec "$0" "$@"']
    return StdioServerParameters(command=hide[0], args=[*hide[1:], params.command, *params.args], env=params.env,
                                 cwd=params.cwd)


@needs_bwrap
def test_without_bubblewrap_the_shadow_falls_back_to_plain_dry_results(store_server, project, tmp_path):
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("hiding bubblewrap needs root and unshare (a mount namespace)")
    db = store_server.paths["db"]
    before = db.read_bytes()
    outside = tmp_path / "stolen.db"
    project.policy("dry", STORE_RULES)
    params = _hide_bwrap(shadow_params(project, store_server, [db, store_server.paths["objects"]]))
    vacuum, insert, select = run(calls, params, vacuum_steps(outside))
    assert not outside.exists() and db.read_bytes() == before
    for r in (vacuum, insert):  # dry calls: plain NOT EXECUTED, no shadow, never the real server
        assert r["isError"] and "NOT EXECUTED" in r["content"][0]["text"], r
        assert "cannot be sandboxed" in r["_meta"]["drygate"]["shadow"]["fallback"], r["_meta"]
    assert json.loads(select["content"][0]["text"])["rows"] == [{"n": 1}]  # a read: the real server, unchanged
    fallback = project.plan(RUN)["simulation"]["shadows"][0]["fallback"]
    assert fallback["code"] == "not_isolated" and "bubblewrap" in fallback["reason"], fallback

    # doctor, on a machine without bubblewrap, says so for the shadows and for the Bash sandbox
    import subprocess

    from .conftest import clean_env

    hide = ["unshare", "-m", "sh", "-c", f'mount --bind /dev/null {shutil.which("bwrap")} && exec "$0" "$@"']
    proc = subprocess.run([*hide, *DRYGATE, "doctor", "--json", "--project", str(project.root)], capture_output=True,
                          text=True, timeout=120, env=clean_env({"DRYGATE_STATE": str(project.state)}))
    checks = {c["check"]: c for c in json.loads(proc.stdout)}
    assert checks["shadow sandbox"]["status"] == "warn" and "plain dry results" in checks["shadow sandbox"]["detail"]
    assert checks["bash sandbox"]["status"] == "warn" and "classifier" in checks["bash sandbox"]["detail"]
