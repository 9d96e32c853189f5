"""drygate's exceptions: one small tree.

    DrygateError                     base of everything drygate raises on purpose
     +-- GuardFailure                the gate cannot decide: every enforcement point
     |    |                          turns it into a block plus a guard-failure alert
     |    +-- StoreUnavailable       state store missing, unwritable, corrupt
     |    +-- StoreTimeout           state store locked or slow past the gate's deadline
     |    +-- ConfigError            policy missing, unreadable or invalid (also a PolicyError)
     |    +-- InputError             malformed input from the host (bad JSON, wrong shape)
     |    +-- DeadlineExceeded       the whole decision took longer than the gate's deadline
     |    +-- ShadowError            a run's file shadow cannot be read or written (corrupt, unwritable)
     +-- PolicyError                 a policy text is invalid (raised by the policy loader)
     +-- PlanError                   a plan cannot be shown or is inconsistent

Backend exceptions (sqlite3, OSError, tomllib) are translated where they enter,
with ``raise ... from``, so the engine never sees them.
"""


class DrygateError(Exception):
    """Base class of drygate's own exceptions."""


class GuardFailure(DrygateError):
    """The gate could not reach a decision; the call must be blocked.

    ``cause`` is a short machine-readable label (``store_timeout``,
    ``store_unavailable``, ``config``, ``input``, ``deadline``, ``crash``) used in
    the guard-failure alert.
    """

    cause = "crash"


class StoreUnavailable(GuardFailure):
    """The state store cannot be opened, written or read (missing, corrupt, read-only)."""

    cause = "store_unavailable"


class StoreTimeout(GuardFailure):
    """The state store stayed locked or slow past the gate's deadline."""

    cause = "store_timeout"


class PolicyError(DrygateError, ValueError):
    """A policy text is invalid: a message names the rule and the field."""


class ConfigError(GuardFailure, PolicyError):
    """The policy or configuration cannot be loaded, so no decision is possible."""

    cause = "config"


class InputError(GuardFailure, ValueError):
    """The host sent input drygate cannot interpret (bad JSON, missing tool name)."""

    cause = "input"


class DeadlineExceeded(GuardFailure):
    """The decision did not finish within the gate's own deadline."""

    cause = "deadline"


class ShadowError(GuardFailure):
    """A run's file shadow (drygate.file_shadow) cannot be read or written.

    The call it happened on is blocked like every guard failure: a dry call stays
    unexecuted, and the agent is not given a simulation drygate could not make.
    """

    cause = "shadow"


class PlanError(DrygateError):
    """A plan cannot be built or shown (unknown run, inconsistent journal)."""
