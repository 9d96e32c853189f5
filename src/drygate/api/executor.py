"""``drygate apply`` for Python tool steps (executor kind ``python``).

A dry Python tool call becomes a plan step ``{"executor": {"kind": "python", "function":
<tool name>}}``. Apply runs it by calling the function the project declares for that tool
name in its policy::

    [python]
    path = ["."]                                  # folders put on sys.path (relative to the project)
    appliable = { put_object = "app.tools:put_object" }

and only that: a plan file names a tool, never an import path, so a plan cannot make apply
import or run anything the project did not declare. A declared entry that is a gated
function (drygate.api.tools) is called without its gate (apply is not a run). The step's
input is passed back by parameter name (a parameter annotated with a pydantic model or a
dataclass gets one built from its fields); the step's idempotency key is available to the
function as :func:`drygate.api.gate.idempotency_key` while it runs. The function's return
value is journaled as JSON (``{"structuredContent": value, "content": [{"type": "text",
"text": ...}]}``), where later steps' reference tokens (``drygate:ref:<call>:<field>``) find
the real values. An exception raised by the function fails the step (apply stops there and
can be resumed).

Reads: an allowed read of a declared tool is journaled with the fingerprint of its result
(drygate.api.gate.Gate.record_read); before the first step apply re-runs it through the same
declared function (:func:`repeat_read`) and refuses the plan as stale when the result differs.
"""

import inspect
import os
import sys

from drygate.api.gate import _IDEMPOTENCY_KEY
from drygate.errors import PlanError

KIND = "python"


class NotAppliable(PlanError):
    """The project does not declare (or cannot import) a function for a Python step."""


def declared_function(policy, project_dir, name):
    """The function ``[python] appliable`` declares for the tool ``name`` (its raw function
    when it is gated). Raises NotAppliable when none is declared or the import fails."""
    entries = policy.get("python_appliable") or {}
    target = entries.get(name)
    if target is None:
        raise NotAppliable(f"the Python tool {name!r} is not declared appliable: add it to [python] appliable in "
                           f"drygate.toml (tool name = \"module:function\") to let apply call it")
    module_name, _, attr = target.partition(":")
    for folder in reversed(policy.get("python_path") or ("."),):
        path = os.path.normpath(os.path.join(project_dir, folder))
        if path not in sys.path:
            sys.path.insert(0, path)
    import importlib

    try:
        obj = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except Exception as e:
        raise NotAppliable(f"cannot import {target} declared for the Python tool {name!r}: "
                           f"{type(e).__name__}: {e}") from e
    from drygate.api.tools import raw_function

    fn = raw_function(obj)
    if not callable(fn):
        raise NotAppliable(f"{target} declared for the Python tool {name!r} is not callable")
    return fn


def call_arguments(fn, tool_input):
    """``(args, kwargs)`` to call ``fn`` with a step's input (dict by parameter name).
    Raises PlanError when the input does not fit the signature or holds a value drygate
    could not journal."""
    from drygate.api.tools import UNSERIALISABLE

    if not isinstance(tool_input, dict):
        raise PlanError("the step's input is not an object of named arguments")
    bad = _unserialisable(tool_input, UNSERIALISABLE)
    if bad:
        raise PlanError(f"the step's input holds a value that had no JSON form in the run ({bad}); apply cannot "
                        f"rebuild it")
    from drygate.api.tools import KWARGS_KEY, from_json

    sig = inspect.signature(fn)
    hints = _hints(fn)
    args, kwargs, rest = [], {}, dict(tool_input)
    clashing = rest.pop(KWARGS_KEY, None)
    positional = True  # parameters before *args go by position while none is missing
    for name, param in sig.parameters.items():
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            kwargs.update({k: from_json(v) for k, v in rest.items()})
            if isinstance(clashing, dict):
                kwargs.update({k: from_json(v) for k, v in clashing.items()})
                clashing = None
            rest = {}
            break
        if name not in rest:
            if param.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
                positional = False
            continue
        value = _build(hints.get(name), rest.pop(name))
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            args.extend(value if isinstance(value, list) else [value])
        elif param.kind is inspect.Parameter.POSITIONAL_ONLY or (
                positional and param.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD):
            args.append(value)
        else:
            positional = False
            kwargs[name] = value
    if clashing is not None:
        rest[KWARGS_KEY] = clashing
    if rest:
        raise PlanError(f"the step's input has argument(s) {', '.join(sorted(rest))} that {fn.__name__} does not take "
                        f"(the function changed since the run?)")
    try:
        sig.bind(*args, **kwargs)
    except TypeError as e:
        raise PlanError(f"the step's input does not fit {fn.__name__}{sig}: {e}") from e
    return args, kwargs


def _unserialisable(value, key):
    if isinstance(value, dict):
        if key in value:
            return value[key]
        for v in value.values():
            found = _unserialisable(v, key)
            if found:
                return found
    elif isinstance(value, list):
        for v in value:
            found = _unserialisable(v, key)
            if found:
                return found
    return None


def _hints(fn):
    try:
        import typing

        return typing.get_type_hints(fn)
    except Exception:
        return {}


def _build(hint, value):
    """A pydantic model or dataclass argument rebuilt from its JSON fields; tuples rebuilt
    (drygate.api.tools.from_json); other values as they are."""
    from drygate.api.tools import TUPLE_KEY, from_json

    if isinstance(hint, type) and isinstance(value, dict) and not (len(value) == 1 and TUPLE_KEY in value):
        validate = getattr(hint, "model_validate", None)
        if validate is not None:
            return validate(from_json(value))
        import dataclasses

        if dataclasses.is_dataclass(hint):
            return hint(**from_json(value))
    return from_json(value)


async def execute_step(applier, step, tool_input):
    """Run one Python step for :class:`drygate.plan.apply.Applier`; returns the journaled
    result (dict). Raises StepFailed when the function raises, PlanError (apply stops before
    the step) when it is not declared appliable or the input does not fit it."""
    from drygate.api.tools import to_json
    from drygate.plan.executors import StepFailed

    name = step["tool_name"]  # apply checked it against the run's journal; the executor field is only a label
    fn = declared_function(applier.policy, applier.project_dir, name)
    args, kwargs = call_arguments(fn, tool_input)
    token = _IDEMPOTENCY_KEY.set(step.get("idempotency_key"))
    try:
        value = fn(*args, **kwargs)
        if inspect.isawaitable(value):
            value = await value
    except Exception as e:
        raise StepFailed(f"the Python tool {name} raised {type(e).__name__}: {e}",
                         {"isError": True, "error": f"{type(e).__name__}: {e}"}) from e
    finally:
        _IDEMPOTENCY_KEY.reset(token)
    data = to_json(value, exact=False)
    import json

    text = data if isinstance(data, str) else json.dumps(data, default=str)
    return {"structuredContent": data, "content": [{"type": "text", "text": text[:4000]}]}


async def repeat_read(applier, read):
    """Re-run a basis read of a Python tool for :class:`drygate.plan.apply.Applier`; returns the
    fingerprint of its result now (compared with the one journaled in the run). Raises
    PlanError when the tool is no longer declared or the input does not fit, StepFailed when
    the function raises."""
    from drygate.api.tools import to_json
    from drygate.plan.executors import StepFailed
    from drygate.plan.fingerprint import fingerprint

    name = read["tool_name"]
    fn = declared_function(applier.policy, applier.project_dir, name)
    args, kwargs = call_arguments(fn, read["input"])
    try:
        value = fn(*args, **kwargs)
        if inspect.isawaitable(value):
            value = await value
    except Exception as e:
        raise StepFailed(f"the Python read {name} raised {type(e).__name__}: {e}") from e
    return fingerprint(to_json(value, exact=False))
