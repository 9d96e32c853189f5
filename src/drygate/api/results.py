"""What a gated Python tool returns when it did not run: an honest :class:`NotExecuted`.

A dry run must never hand the agent something that passes for success (DESIGN.md,
honesty; the orphan-record incident): a skipped put answered with ``{"ok": True}`` made an
agent record an object that did not exist. So the value a gated function returns in its
place:

- is falsy (``bool(result) is False``), so ``if put(...):`` takes the failure branch;
- has no attributes of the real result: ``result.etag``, ``result["id"]`` raise
  :class:`NotExecutedError` (an ``AttributeError``, so ``getattr(result, "etag", None)``
  and ``hasattr`` give "absent", never a value), with a message saying the call was not
  executed;
- converts to the text a framework hands to the model (``str(result)``, ``result.text``):
  NOT EXECUTED, what the call would have done, why, and the reference token
  (``drygate:ref:<call>``) that stands for any value the real call would have returned
  (``drygate apply`` substitutes the real value);
- says which decision it stands for: ``action`` is ``dry`` (skipped by the dry run),
  ``deny`` (blocked by the policy), ``ask`` (needs a human) or ``error`` (the gate
  failed and blocked the call: fail closed).
"""

from drygate.errors import DrygateError

#: ``NotExecuted.action`` of a call blocked because the gate itself failed.
GUARD_ERROR = "error"


class NotExecutedError(DrygateError, AttributeError):
    """Raised on any attribute or item access of a :class:`NotExecuted` result.

    An ``AttributeError`` on purpose: ``getattr(r, name, default)`` and ``hasattr`` treat
    the real result's fields as absent, and code that reads a field directly stops here
    with a message that says why, instead of going on with an invented value.
    """


class NotExecuted:
    """The result of a gated tool call that did not run (see the module docstring).

    Fields: ``action`` (``dry``, ``deny``, ``ask`` or ``error``); ``tool`` (the tool's name
    as the policy matches it); ``input`` (the arguments, a JSON-ready dict); ``run_id``;
    ``call`` (the call's number in its run, None when the gate failed before numbering
    it); ``effect``; ``reason`` (the full text for the model); ``decision`` (the
    :class:`drygate.types.Decision`, None on a guard failure).
    """

    __slots__ = ("action", "tool", "input", "run_id", "call", "effect", "reason", "decision")

    def __init__(self, action, tool, tool_input, run_id, call, effect, reason, decision=None):
        for name, value in (("action", action), ("tool", tool), ("input", tool_input), ("run_id", run_id),
                            ("call", call), ("effect", effect), ("reason", reason), ("decision", decision)):
            object.__setattr__(self, name, value)

    # -- what it is ---------------------------------------------------------------------

    executed = False

    @property
    def text(self):
        """The text a framework hands to the model (str)."""
        return self.reason

    @property
    def reference(self):
        """``drygate:ref:<call>``: the token standing for this call's whole (unknown) result,
        or None when the call was not numbered (a guard failure)."""
        return None if self.call is None else f"drygate:ref:{self.call}"

    def ref(self, field=None):
        """The reference token for one field of the unknown result (``ref("id")`` ->
        ``drygate:ref:<call>:id``), or the whole result's token. Pass it where a later call
        needs the value; ``drygate apply`` substitutes the real one. Raises
        NotExecutedError when the call has no number (the gate failed)."""
        if self.call is None:
            raise NotExecutedError(f"{self.tool} was not executed and the gate could not number it, so it has "
                                   f"no reference token")
        return self.reference if field is None else f"{self.reference}:{field}"

    def as_dict(self):
        """A JSON-ready dict: ``{"executed": False, "action", "tool", "run_id", "call",
        "effect", "reference", "message"}``."""
        return {"executed": False, "action": self.action, "tool": self.tool, "run_id": self.run_id,
                "call": self.call, "effect": self.effect, "reference": self.reference, "message": self.reason}

    # -- what it must never pass for ----------------------------------------------------

    def __bool__(self):
        return False

    def __str__(self):
        return self.reason

    def __repr__(self):
        where = f"call {self.call} of run {self.run_id}" if self.call is not None else f"run {self.run_id}"
        return f"<NotExecuted {self.action} {self.tool} ({where})>"

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)  # protocol probes (copy, pickle, frameworks): plainly absent
        raise NotExecutedError(self._absent(f"attribute {name!r}", name))

    def __setattr__(self, name, value):
        raise NotExecutedError(f"a NotExecuted result is read-only (tried to set {name!r})")

    def __getitem__(self, key):
        raise NotExecutedError(self._absent(f"item {key!r}", key))

    def _absent(self, what, field):
        kind = {"dry": "skipped by the dry run", "deny": "denied by the policy", "ask": "waiting for a human decision",
                GUARD_ERROR: "blocked because the gate failed"}.get(self.action, self.action)
        ref = ""
        if self.call is not None and self.action == "dry":
            token = self.ref(field) if isinstance(field, (str, int)) and str(field).replace("_", "").isalnum() \
                else self.reference
            ref = f" Pass its reference token {token} where a later call needs the value."
        return (f"{self.tool} was NOT EXECUTED ({kind}), so its result has no {what}: the real value is "
                f"unknown.{ref}")

    def __await__(self):
        """``await result`` gives the result itself: a tool that returns an awaitable when it
        runs (an async callable object, a sync function returning a coroutine) still hands
        the agent "not executed" instead of a TypeError that crashes its loop."""
        return self
        yield  # noqa: unreachable (makes __await__ a generator, as the protocol wants)

    __hash__ = object.__hash__

    def __eq__(self, other):
        return self is other
