"""Gating Python functions as tools: the :func:`tool` decorator and :func:`wrap` for registries.

A gated function keeps its name, docstring and signature (``functools.wraps``), so the
frameworks that build a tool schema from them see the original; sync functions stay
sync and coroutine functions stay coroutine functions. Each call:

1. binds the arguments to the signature (defaults filled in) and turns them into JSON
   (:func:`to_json`: pydantic models and dataclasses as their fields, a
   :class:`NotExecuted` argument as its reference token, anything else as an
   "unserialisable" marker that apply refuses);
2. asks the gate (the tool's own, else the current run's) for a decision in the run;
3. runs the function only when allowed; otherwise returns the :class:`NotExecuted`.

An enforcement point that has already decided a call (a framework adapter) runs it inside
:func:`admitted`, so a gated function it reaches is not decided (and journaled) twice.
"""

import functools
import inspect

from drygate.api.gate import _ADMITTED, _RUN, NoRunError
from drygate.types import EFFECTS

#: The key of the marker :func:`to_json` puts where a value has no JSON form.
UNSERIALISABLE = "drygate:unserialisable"
_SPEC = "__drygate_tool__"


class ToolSpec:
    """What drygate knows of a gated function: ``name`` (the policy matches it), ``effect``
    (declared, or None), ``fn`` (the raw function), ``signature``, ``exclude`` (argument
    names left out of the journaled input, e.g. a framework's context object), ``gate``
    (the gate it is bound to, or None: the current run's)."""

    __slots__ = ("name", "effect", "fn", "signature", "exclude", "gate", "is_async", "_simple")

    def __init__(self, name, effect, fn, exclude=(), gate=None):
        self.name = name
        self.effect = effect
        self.fn = fn
        self.signature = inspect.signature(fn)
        self.exclude = frozenset(exclude)
        self.gate = gate
        # An async function, or a callable object whose __call__ is one (a tool class).
        self.is_async = inspect.iscoroutinefunction(fn) or (
            not inspect.isroutine(fn) and inspect.iscoroutinefunction(getattr(type(fn), "__call__", None)))
        params = self.signature.parameters.values()
        # Plain named parameters only: bound by a loop instead of Signature.bind (bench/python_api.py).
        self._simple = None
        if all(p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) for p in params):
            self._simple = (tuple(p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD),
                            tuple((p.name, p.default) for p in params))

    def tool_input(self, args, kwargs):
        """The call's arguments as a JSON-ready dict (by parameter name, defaults filled in).
        ``*args`` go under their parameter's name as a list, ``**kwargs`` are merged in.
        Raises TypeError for arguments that do not fit the signature (as the call would)."""
        simple = self._simple
        if simple is not None and len(args) <= len(simple[0]):
            given = dict(zip(simple[0], args))
            if kwargs and (given.keys() & kwargs.keys()):
                raise TypeError(f"{self.name}() got multiple values for {sorted(given.keys() & kwargs.keys())}")
            given.update(kwargs)
            out = {}
            empty = inspect.Parameter.empty
            for name, default in simple[1]:
                if name in given:
                    value = given.pop(name)
                elif default is not empty:
                    value = default
                else:
                    raise TypeError(f"{self.name}() missing a required argument: {name!r}")
                if name not in self.exclude:
                    out[name] = to_json(value)
            if given:
                raise TypeError(f"{self.name}() got unexpected keyword argument(s) {sorted(given)}")
            return out
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        out = {}
        extra = {}
        for name, value in bound.arguments.items():
            if name in self.exclude:
                continue
            kind = self.signature.parameters[name].kind
            if kind is inspect.Parameter.VAR_KEYWORD:
                extra = value
            else:
                out[name] = to_json(list(value) if kind is inspect.Parameter.VAR_POSITIONAL else value)
        # **kwargs are merged in by name, except a key that would read as another argument (the
        # *args or **kwargs parameter's own name) or as drygate's: those keep their own object, so
        # call(args=5) is never journaled as call(5) (drygate.api.executor.call_arguments reverses it).
        clashing = {k: to_json(v) for k, v in extra.items() if k in out or k.startswith("drygate:")}
        out.update({k: to_json(v) for k, v in extra.items() if k not in clashing})
        if clashing:
            out[KWARGS_KEY] = clashing
        return out


#: Where a tool's ``**kwargs`` keys that clash with its other arguments are journaled.
KWARGS_KEY = "drygate:kwargs"


def spec_of(fn):
    """The :class:`ToolSpec` of a gated function, or None for anything else."""
    return getattr(fn, _SPEC, None)


def raw_function(fn):
    """The function under drygate's gate (``fn`` itself when it is not gated)."""
    spec = spec_of(fn)
    return spec.fn if spec is not None else fn


def to_json(value, _depth=0):
    """``value`` as JSON data for the journal and the plan.

    Pydantic models (``model_dump(mode="json")``), dataclasses and mappings/sequences are
    converted; a :class:`NotExecuted` becomes its reference token (a later call that was
    handed an unexecuted result gets the real value at apply); anything without a JSON form
    becomes ``{"drygate:unserialisable": "<type>: <repr>"}``, which apply refuses to pass on.
    """
    from drygate.api.results import NotExecuted

    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else str(value)
    if _depth > 50:
        return {UNSERIALISABLE: "nested too deeply"}
    if type(value) is NotExecuted:
        return value.reference or {UNSERIALISABLE: "the result of a call the gate blocked"}
    if isinstance(value, dict):
        return {str(k): to_json(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v, _depth + 1) for v in value]
    dump = getattr(type(value), "model_dump", None)
    if dump is not None:
        try:
            return to_json(value.model_dump(mode="json"), _depth + 1)
        except Exception:
            pass
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_json(dataclasses.asdict(value), _depth + 1)
    text = repr(value)
    return {UNSERIALISABLE: f"{type(value).__name__}: {text[:200]}"}


def _gate_and_run(spec):
    run = _RUN.get()
    if spec.gate is not None:
        return spec.gate, spec.gate.run_for_call()
    if run is None:
        raise NoRunError(f"the gated tool {spec.name!r} was called outside any drygate run, and it is not bound "
                         f"to a gate: enter `with gate.run():` (or gate it with gate.tool) so drygate knows which "
                         f"run and mode the call belongs to. It was NOT executed")
    return run.gate, run


def tool(fn=None, *, name=None, effect=None, exclude=(), gate=None):
    """Gate a function as a tool; use as ``@tool``, ``@tool(effect="read")`` or ``tool(f)``.

    ``name``: the name the policy matches (default: the function's ``__name__``);
    ``effect``: the effect declared for it (``read``, ``write``, ``side_effect_read``,
    ``external``, ``unknown``), used when no policy rule matches (a rule always wins;
    none at all means unknown, which is gated as a write); ``exclude``: argument names
    left out of the journaled input (e.g. a framework's context parameter: such a tool
    cannot be applied, since apply has no context to pass); ``gate``: a
    :class:`drygate.api.gate.Gate` to decide with (default: the gate of the run the
    call is made in; a call outside any run then raises :class:`NoRunError`).

    The gated function returns the real result when the call is allowed, else a
    :class:`drygate.api.results.NotExecuted`. Raises ValueError for an unknown effect.
    """
    if effect is not None and effect not in EFFECTS:
        raise ValueError(f"effect must be one of {', '.join(EFFECTS)}, not {effect!r}")

    def decorate(f):
        if spec_of(f) is not None:  # gated already: re-gate its raw function with these settings
            old = spec_of(f)
            f = old.fn
            spec = ToolSpec(name or old.name, effect or old.effect, f, exclude or old.exclude, gate or old.gate)
        else:
            if not callable(f):
                raise TypeError(f"drygate.tool gates functions, not {type(f).__name__}")
            spec = ToolSpec(name or getattr(f, "__name__", None) or type(f).__name__, effect, f, exclude, gate)
        if spec.is_async:
            @functools.wraps(f)
            async def gated(*args, **kwargs):
                decision = None
                if _ADMITTED.get() is None:
                    the_gate, run = _gate_and_run(spec)
                    tool_input = spec.tool_input(args, kwargs)
                    call_id = the_gate.new_call_id()
                    decision = the_gate.decide(spec.name, tool_input, effect=spec.effect, run=run, call_id=call_id)
                    if not decision.executes:
                        return the_gate.not_executed(decision, spec.name, tool_input)
                token = _ADMITTED.set(None)  # calls the tool makes are gated again
                try:
                    value = await f(*args, **kwargs)
                finally:
                    _ADMITTED.reset(token)
                if decision is not None:
                    the_gate.record_read(decision, spec.name, call_id, value)
                return value
        else:
            @functools.wraps(f)
            def gated(*args, **kwargs):
                decision = None
                if _ADMITTED.get() is None:
                    the_gate, run = _gate_and_run(spec)
                    tool_input = spec.tool_input(args, kwargs)
                    call_id = the_gate.new_call_id()
                    decision = the_gate.decide(spec.name, tool_input, effect=spec.effect, run=run, call_id=call_id)
                    if not decision.executes:
                        return the_gate.not_executed(decision, spec.name, tool_input)
                token = _ADMITTED.set(None)
                try:
                    value = f(*args, **kwargs)
                finally:
                    _ADMITTED.reset(token)
                if decision is not None:
                    the_gate.record_read(decision, spec.name, call_id, value)
                return value
        setattr(gated, _SPEC, spec)
        return gated

    return decorate(fn) if fn is not None else decorate


def wrap(tools, *, effects=None, gate=None):
    """Gate every tool of a registry without editing the functions.

    ``tools``: a dict ``{name: callable}`` (the key is the tool's name), or a list/tuple of
    callables (each named by its ``__name__``) and framework tool objects that hold their
    function (a LangChain ``StructuredTool``: a copy whose ``func``/``coroutine`` are gated,
    named by the tool's ``name``); ``effects``: ``{name: effect}`` declared for some of them
    (a function gated already keeps its declaration unless named here); ``gate``: as for
    :func:`tool`. Returns the same shape. Raises TypeError for a registry of another shape or
    an entry drygate cannot gate (for other frameworks' tool objects use drygate.adapters).
    """
    effects = effects or {}
    if isinstance(tools, dict):
        return {key: tool(f, name=key, effect=effects.get(key), gate=gate) for key, f in tools.items()}
    if isinstance(tools, (list, tuple)):
        gated = []
        for f in tools:
            if _is_langchain_tool(f):
                gated.append(_wrap_langchain_tool(f, effects.get(f.name), gate))
                continue
            if not callable(f):
                raise TypeError(f"drygate.wrap cannot gate {type(f).__name__} (not callable); for framework tool "
                                f"objects use drygate.adapters")
            spec = spec_of(f)
            key = spec.name if spec is not None else getattr(f, "__name__", None)
            gated.append(tool(f, name=key, effect=effects.get(key), gate=gate))
        return type(tools)(gated) if isinstance(tools, tuple) else gated
    raise TypeError(f"drygate.wrap takes a dict or a list of tools, not {type(tools).__name__} (framework "
                    f"tool lists: see drygate.adapters)")


def _is_langchain_tool(obj):
    return hasattr(obj, "model_copy") and isinstance(getattr(obj, "name", None), str) and (
        callable(getattr(obj, "func", None)) or callable(getattr(obj, "coroutine", None)))


def _wrap_langchain_tool(obj, effect, gate):
    update = {}
    for attr in ("func", "coroutine"):
        fn = getattr(obj, attr, None)
        if callable(fn):
            update[attr] = tool(fn, name=obj.name, effect=effect, gate=gate)
    return obj.model_copy(update=update)


def admitted():
    """A context manager for framework adapters: the adapter has decided (and journaled) the
    call it is about to run, so the first gated function entered inside runs without
    deciding again; calls that function makes to other gated functions are decided as usual."""
    import contextlib

    @contextlib.contextmanager
    def scope():
        token = _ADMITTED.set(True)
        try:
            yield
        finally:
            _ADMITTED.reset(token)

    return scope()
