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
:func:`admitted`, naming the tool it decided, so that tool's own gated function is not
decided (and journaled) twice; every other gated function it reaches is decided.
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


#: The key under which :func:`to_json` journals a tuple (JSON has only arrays, which come
#: back as lists); :func:`from_json` turns it back into a tuple at apply.
TUPLE_KEY = "drygate:tuple"
_INF = float("inf")


def to_json(value, _depth=0, *, exact=True):
    """``value`` as JSON data for the journal and the plan, such that apply passes the value
    the run passed, or refuses.

    Exactly ``None``, ``bool``, ``int`` (any size), ``str``, and finite ``float`` are kept;
    a ``list`` and a ``dict`` with ``str`` keys are converted item by item; a ``tuple`` becomes
    ``{"drygate:tuple": [...]}`` (rebuilt by :func:`from_json`); pydantic models
    (``model_dump(mode="json")``) and dataclasses become their fields (apply rebuilds them from
    the parameter's type hint); a :class:`NotExecuted` becomes its reference token (a later
    call that was handed an unexecuted result gets the real value at apply). Everything JSON
    would give back as another value becomes ``{"drygate:unserialisable": "<type>: <repr>"}``
    (a dict keeps its items, keys as ``str(key)``, so a policy rule still sees them, plus that
    key), which apply refuses to pass on: a dict key that is not a ``str`` (JSON object keys are
    strings: ``{1: x}`` would come back as ``{"1": x}``), a dict key starting with
    ``drygate:`` (it would read as drygate's own marker), NaN and infinities (no JSON number;
    RFC 8259 section 6), subclasses of the scalar types (an ``IntEnum``, a ``numpy.float64``,
    a ``str`` subclass: they come back as the plain type) and of tuple (a namedtuple), bytes,
    sets and any other object.

    ``exact=False`` (for a result, whose JSON is shown and fingerprinted, never passed on):
    keys become ``str(key)``, NaN/infinities ``str(value)``, tuples and scalar subclasses
    their plain JSON form, so a fingerprint still sees the whole value.
    """
    from drygate.api.results import NotExecuted

    kind = type(value)
    if value is None or kind is bool or kind is int or kind is str:
        return value
    if not exact and isinstance(value, (bool, int, str)):
        return value
    if kind is float or (not exact and isinstance(value, float)):
        if value != value or value in (_INF, -_INF):
            if not exact:
                return str(value)
            return {UNSERIALISABLE: f"float: {value!r} (no JSON number)"}
        return value
    if _depth > 50:
        return {UNSERIALISABLE: "nested too deeply"}
    if kind is NotExecuted:
        return value.reference or {UNSERIALISABLE: "the result of a call the gate blocked"}
    if isinstance(value, dict) and not exact:
        return {str(k): to_json(v, _depth + 1, exact=False) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and not exact:
        return [to_json(v, _depth + 1, exact=False) for v in value]
    if isinstance(value, dict):
        out = {str(k): to_json(v, _depth + 1) for k, v in value.items()}  # all of it, for the policy's rules
        for k in value:
            if type(k) is not str:
                out[UNSERIALISABLE] = (f"{kind.__name__} with a {type(k).__name__} key {repr(k)[:80]} "
                                       f"(JSON keys are strings)")
                break
            if k.startswith("drygate:"):
                out[UNSERIALISABLE] = f"{kind.__name__} with the key {k[:80]!r} (drygate's own marker)"
                break
        return out
    if kind is tuple:
        return {TUPLE_KEY: [to_json(v, _depth + 1) for v in value]}
    if isinstance(value, list):
        return [to_json(v, _depth + 1) for v in value]
    if not exact or not isinstance(value, (bool, int, str, float, tuple)):
        dump = getattr(kind, "model_dump", None)
        if dump is not None:
            try:
                return to_json(value.model_dump(mode="json"), _depth + 1, exact=exact)
            except Exception:
                pass
        import dataclasses

        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return to_json(dataclasses.asdict(value), _depth + 1, exact=exact)
    text = repr(value)
    return {UNSERIALISABLE: f"{kind.__name__}: {text[:200]}"}


def from_json(value):
    """The inverse of :func:`to_json` for what it encodes losslessly (tuples); other values as
    they are."""
    if isinstance(value, dict):
        if len(value) == 1 and TUPLE_KEY in value and isinstance(value[TUPLE_KEY], list):
            return tuple(from_json(v) for v in value[TUPLE_KEY])
        return {k: from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return value


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
            async def decide_and_run(gated, run, admitted_now, args, kwargs):
                token_run = _RUN.set(run) if run is not None else None  # the run it was called in
                try:
                    decision = None
                    if not admitted_now:
                        the_gate, run = _gate_and_run(spec)
                        tool_input = spec.tool_input(args, kwargs)
                        call_id = the_gate.new_call_id()
                        decision = the_gate.decide(spec.name, tool_input, effect=spec.effect, run=run,
                                                   call_id=call_id)
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
                finally:
                    if token_run is not None:
                        _RUN.reset(token_run)

            def call(*args, **kwargs):
                # Called now, awaited maybe later: the run and the admission are the caller's NOW
                # (a coroutine made in a dry run and awaited after it stays in the dry run).
                admission = _ADMITTED.get()
                return decide_and_run(gated, _RUN.get(), admission is not None and admission.admits(spec, gated),
                                      args, kwargs)

            gated = _CoroutineFunction(call, f, spec.name)
        else:
            @functools.wraps(f)
            def gated(*args, **kwargs):
                decision = None
                admission = _ADMITTED.get()
                if admission is None or not admission.admits(spec, gated):
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


class _CoroutineFunction:
    """A gated async tool: a callable that works out the run when it is CALLED and returns the
    coroutine that decides and runs the tool (an ``async def`` would only run when awaited).

    It passes for the coroutine function it gates: ``inspect.iscoroutinefunction`` is true (it
    carries the function's ``__code__``, which ``inspect`` reads for function-like objects; no
    ``inspect.markcoroutinefunction`` before Python 3.12), ``inspect.signature`` and type hints
    are the function's (``__wrapped__``), it binds as a method in a class body, and pydantic's
    ``TypeAdapter`` gets the function's call schema (fastmcp). ``pydantic.validate_call``
    refuses callable objects: apply it to the function before gating it."""

    def __init__(self, call, f, name):
        functools.update_wrapper(self, f)
        self._drygate_call = call
        if not isinstance(getattr(self, "__name__", None), str):
            self.__name__ = name
        code = getattr(f, "__code__", None)
        if code is None:  # a callable object with an async __call__
            code = getattr(getattr(type(f), "__call__", None), "__code__", None)
        self.__code__ = code
        defaults = getattr(f, "__defaults__", None)
        self.__defaults__ = defaults if isinstance(defaults, tuple) else None
        kwdefaults = getattr(f, "__kwdefaults__", None)
        self.__kwdefaults__ = kwdefaults if isinstance(kwdefaults, dict) else None
        if not isinstance(getattr(self, "__annotations__", None), dict):
            self.__annotations__ = {}

    def __call__(self, *args, **kwargs):
        return self._drygate_call(*args, **kwargs)

    def __get__(self, obj, objtype=None):
        import types

        return self if obj is None else types.MethodType(self, obj)

    def __get_pydantic_core_schema__(self, source, handler):
        """For frameworks that validate a tool's arguments with ``pydantic.TypeAdapter(fn)``
        (fastmcp): the function's own call schema, calling this gated tool, never the raw
        function. Raises what pydantic raises for the raw function."""
        schema = dict(handler.generate_schema(self.__wrapped__))
        if schema.get("type") != "call":
            raise TypeError(f"drygate cannot give pydantic a call schema for {self.__name__}")
        schema["function"] = self
        return schema

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def __repr__(self):
        return f"<drygate tool {self.__name__} (async)>"


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


class _Admission:
    """What an adapter admitted (see :func:`admitted`): one tool, by function or by name, once."""

    __slots__ = ("name", "fns", "used")

    def __init__(self, name, fns):
        self.name = name
        self.fns = fns
        self.used = False

    def admits(self, spec, gated):
        """True (and used up) when ``gated`` (with ``spec``) is the tool this admission is for."""
        if self.used:
            return False
        if self.fns is not None:
            ok = any(f is gated or f is spec.fn for f in self.fns)
        else:
            ok = spec.name == self.name
        if ok:
            self.used = True
        return ok


def admitted(name, fn=None, run=None):
    """A context manager for framework adapters: the adapter has decided (and journaled) the
    call of tool ``name`` it is about to run, so the gated function of THAT tool, entered
    inside, runs without deciding again; any other gated function (a helper the tool calls,
    a second call) is decided as usual.

    ``fn``: the function (or a list of the functions) the framework runs for the tool, when
    the adapter can tell; then only that function, if it is gated, is admitted (a plain tool
    function admits nothing, so every gated helper it calls is decided). Without ``fn`` the
    first gated function named ``name`` (its drygate tool name) is admitted. Once.

    ``run``: the :class:`drygate.api.gate.Run` the adapter decided the call in; it is made the
    current run while the tool runs, so the gated functions the tool calls are decided in it
    (without it, a free gated helper called outside ``with gate.run()`` raises NoRunError).
    """
    import contextlib

    if fn is None:
        fns = None
    else:
        fns = []
        for f in fn if isinstance(fn, (list, tuple)) else (fn,):
            for _ in range(20):  # the framework's own wrappers of it (functools.wraps' __wrapped__ chain)
                if f is None or any(f is g for g in fns):
                    break
                fns.append(f)
                f = getattr(f, "__wrapped__", None)
        fns = tuple(fns)

    @contextlib.contextmanager
    def scope():
        run_token = _RUN.set(run) if run is not None else None
        token = _ADMITTED.set(_Admission(name, fns))
        try:
            yield
        finally:
            _ADMITTED.reset(token)
            if run_token is not None:
                _RUN.reset(run_token)

    return scope()
