"""A classifier's answer with its chain of reasons, and how answers combine.

Every classifier (shell, command table, SQL, HTTP) returns a :class:`Verdict`: an
effect plus the steps that decided it, in order, so ``drygate explain``, the plan
and the hook's reason can all show *why* (for example ``bash: pipeline of 2`` ->
``psql -c: SQL`` -> ``INSERT is a write``). The effect of a compound is the
strongest effect of its parts (:data:`STRENGTH`); unknown is the strongest, because
it is treated as a write that could be anything.
"""

from drygate.types import EXTERNAL, READ, SIDE_EFFECT_READ, UNKNOWN, WRITE

#: Order of effects for combining parts: the strongest wins.
STRENGTH = {READ: 0, SIDE_EFFECT_READ: 1, WRITE: 2, EXTERNAL: 3, UNKNOWN: 4}


class Verdict:
    """An effect and the reasons for it.

    ``effect``: one of read, side_effect_read, write, external, unknown;
    ``steps``: tuple of str, outermost first; the last step is the decisive one.
    """

    __slots__ = ("effect", "steps")

    def __init__(self, effect, *steps):
        self.effect = effect
        self.steps = tuple(s for s in steps if s)

    def because(self, step):
        """The same verdict with ``step`` put before its reasons (a new Verdict)."""
        return Verdict(self.effect, step, *self.steps)

    @property
    def reason(self):
        """The decisive reason (the last step), or the effect's name."""
        return self.steps[-1] if self.steps else self.effect

    def __repr__(self):
        return f"Verdict({self.effect!r}, {' -> '.join(self.steps)!r})"


def strongest(verdicts, empty=None):
    """The strongest of ``verdicts`` (the first one on ties); ``empty`` if there are none."""
    best = None
    for v in verdicts:
        if best is None or STRENGTH[v.effect] > STRENGTH[best.effect]:
            best = v
    return best if best is not None else empty


def read(*steps):
    return Verdict(READ, *steps)


def write(*steps):
    return Verdict(WRITE, *steps)


def unknown(*steps):
    return Verdict(UNKNOWN, *steps)
