"""The MCP tool catalog a run saw through the relay, as the relay journals it.

The relay (drygate.relay.core) journals, for each server and whenever it changes,
an entry of kind ``result`` with tool name ``drygate/catalog/<server>`` and the result
:func:`catalog_entry` makes::

    {"server": str, "server_info": dict | None,
     "tools": {tool name: {"fingerprint": str, "annotations": dict}}}

The plan uses it as the basis of its MCP steps (drygate.plan.artifact); the Claude Code
hook can use it so that hook and relay agree on a relayed tool's annotations
(:func:`annotations_for`). Standard library only: safe on the hook's import path.
"""

#: Tool-name prefix of the catalog entries in the journal.
CATALOG_PREFIX = "drygate/catalog/"


def catalog_entry(server, server_info, tools):
    """The journal record of a server's catalog. ``tools``: ``{name: {"fingerprint", "annotations", ...}}``."""
    return {"server": server, "server_info": server_info,
            "tools": {name: {"fingerprint": t.get("fingerprint"), "annotations": t.get("annotations")}
                      for name, t in sorted(tools.items())}}


def read_catalog(store, run_id, entries=None):
    """``{server: catalog}`` of run ``run_id``: the last catalog journaled for each server.

    ``store``: a drygate.state store (its ``journal(run_id)`` is read, one query), or
    ``entries``: that journal already read. Returns ``{}`` when the relay journaled none.
    Raises what ``store.journal`` raises (StoreUnavailable / StoreTimeout).
    """
    if entries is None:
        entries = store.journal(run_id)
    servers = {}
    for e in entries:
        name = e.get("tool_name") or ""
        if e.get("kind") == "result" and name.startswith(CATALOG_PREFIX) and isinstance(e.get("result"), dict):
            catalog = e["result"]
            if isinstance(catalog.get("tools"), dict):
                servers[name[len(CATALOG_PREFIX):]] = catalog
    return servers


def annotations_for(catalogs, tool_name):
    """The annotations (dict) the relay saw for ``mcp__<server>__<tool>``, or None when no catalog names it.

    ``catalogs``: :func:`read_catalog`'s result. Claude Code's plugin form
    (``mcp__plugin_<plugin>_<server>__<tool>``) is matched too (drygate.policy.match).
    """
    from drygate.policy.match import name_candidates

    for name in name_candidates(tool_name):
        if not name.startswith("mcp__"):
            continue
        for server, catalog in catalogs.items():
            prefix = f"mcp__{server}__"
            if name.startswith(prefix):
                tool = catalog["tools"].get(name[len(prefix):])
                if isinstance(tool, dict):
                    annotations = tool.get("annotations")
                    return annotations if isinstance(annotations, dict) else {}
    return None
