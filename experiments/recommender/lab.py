"""Learning from the lab: how often each kind of advice helped when people applied it.

Every Apply & Run is an experiment: the child's best validation accuracy against the
parent's says whether the advice helped. `LabRecord` holds those outcomes per kind
(across all users) and turns them into a ranking score once a kind has enough of them.

Pure data: the caller (services/recommendations.py) counts the outcomes in the database.
"""

from __future__ import annotations

from dataclasses import dataclass

# Outcomes of a kind needed before its measured help rate, not the rule's own confidence,
# ranks it among advice of the same priority. Below this a rate is too noisy to act on
# (with 10 outcomes the 90 % interval of a 50 % rate still spans about 25-75 %).
MIN_OUTCOMES_FOR_RANKING = 10


@dataclass(frozen=True)
class KindRecord:
    """Applied advice of one kind whose child run finished (`evaluated`), and how many of
    those children beat their parent's best validation accuracy (`helped`)."""

    evaluated: int = 0
    helped: int = 0

    @property
    def help_rate(self) -> float | None:
        return self.helped / self.evaluated if self.evaluated else None

    @property
    def ranks(self) -> bool:
        """Whether there is enough evidence for the rate to rank this kind."""
        return self.evaluated >= MIN_OUTCOMES_FOR_RANKING

    @property
    def smoothed_rate(self) -> float:
        """The rate with one success and one failure added (Laplace): never 0 or 1 from few runs."""
        return (self.helped + 1) / (self.evaluated + 2)

    def to_dict(self) -> dict:
        return {"evaluated": self.evaluated, "helped": self.helped, "help_rate": self.help_rate,
                "used_for_ranking": self.ranks}


class LabRecord:
    """Outcomes per advice kind; `score(kind, confidence)` is the ranking key within a priority."""

    def __init__(self, counts: dict[str, tuple[int, int]] | None = None):
        self._kinds = {kind: KindRecord(evaluated=int(evaluated), helped=int(helped))
                       for kind, (evaluated, helped) in (counts or {}).items()}

    def of(self, kind: str) -> KindRecord:
        return self._kinds.get(kind, KindRecord())

    def score(self, kind: str, confidence: float) -> float:
        """The chance this advice helps: the lab's smoothed help rate once the kind has
        MIN_OUTCOMES_FOR_RANKING outcomes, the rule's own confidence before that."""
        record = self.of(kind)
        return record.smoothed_rate if record.ranks else confidence

    def describe(self, kind: str) -> str:
        """Plain words for the advice's card, or "" when nobody applied this kind yet."""
        record = self.of(kind)
        if not record.evaluated:
            return ""
        text = (f"In this lab, advice of this kind was applied and measured {record.evaluated} "
                f"time{'s' if record.evaluated != 1 else ''}; it helped {record.helped} "
                f"({100 * record.help_rate:.0f} %)")
        if not record.ranks:
            text += f", too few to rank by (ranking uses it from {MIN_OUTCOMES_FOR_RANKING})"
        return text + "."
