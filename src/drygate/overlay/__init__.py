"""Overlays: per-run simulated state, so the reads of a dry run see that run's own writes.

Naive dry-run breaks agents that read what they just wrote (DESIGN.md, lesson 4): the
counter is re-read unchanged and the loop never ends; the record is created, the list
does not show it and it is created again. An *overlay* belongs to one run. The run's
dry writes go to it, the run's reads are served from it, and what the run did not touch
comes from the real system; it records where each read was served from, so the plan's
basis only holds reads that saw the real system (shared/reference/dry-run-lessons.md,
rule 9). Other runs and the real system never see it.

Every result an overlay produced is marked as simulated, in its text and in
``_meta["drygate"]`` (:mod:`~drygate.overlay.honesty`), with what the simulation could
not prove: capacity, permissions, other writers, eventual consistency. When an overlay
cannot be made (the state is larger than the configured limit, or it cannot be fully
isolated from the real state), the run falls back to plain dry results (no
read-your-writes) and says so; it never falls back to a live write.

Modules:

- :mod:`~drygate.overlay.base`: the :class:`~drygate.overlay.base.Overlay` interface, the
  :class:`~drygate.overlay.base.ReadRecord` of each read, :class:`~drygate.overlay.base.MapOverlay`
  (a key-level overlay with deletion markers, the reference semantics) and
  :class:`~drygate.overlay.base.OverlayUnavailable`;
- :mod:`~drygate.overlay.honesty`: what a simulation cannot prove, and the marking of results;
- :mod:`~drygate.overlay.copy`: cheap copies of local state (reflinks, ``copy_file_range``,
  the SQLite backup API);
- :mod:`~drygate.overlay.paths`: the translation between real state paths and their copies,
  and the leak checks;
- :mod:`~drygate.overlay.shadow`: a shadow, one server's per-run copy of its local state under
  ``<project>/.drygate/mcp-shadows/<run>/<server>/`` (made, shared by the run's relays, removed,
  pruned). The MCP relay runs a shadow instance of the server on it
  (:mod:`drygate.relay.shadow`).
- :mod:`~drygate.overlay.stores`: store overlays, a run's simulated writes to a remote store
  (S3, Redis) in a SQLite file next to its shadows, over the real store; the protocol by
  which an operation asks for the real reads it needs; :mod:`~drygate.overlay.objects` (an
  S3-compatible object store) and :mod:`~drygate.overlay.keyvalue` (a versioned key-value
  store). The MCP relay answers a dry run's mapped tools with them (:mod:`drygate.relay.overlays`).

Nothing is imported here: ``import drygate.overlay.honesty`` pays for that module only.
"""
