"""Score evaluation outcomes: per-problem confusion, named %, improved %, false alarms.

Definitions (the figures `evaluate_recommender` prints):

- diagnosed: the kind of the highest-priority advice that is not pure reporting
  (`REPORTING_KINDS`: success, performance, history), or "none".
- named: a flawed case whose expected kind is among all the kinds the run was given.
- improved: a flawed case whose applied top recommendation (the first advice with changes)
  raised the best validation accuracy (`Recommendation.improved`); runs with no applicable
  change, or whose outcome could not be scored, are left out of the denominator.
- false alarm: a healthy control given any advice whose kind is not in `INFORMATIONAL_KINDS`
  (success, performance, history, more_epochs); every other kind, including ones added later,
  says something is wrong and counts as an alarm.

Each figure is given as count/total over all runs and, for the spread, per seed (min–max).

With `--find-fix` (FixOutcome, summarise_fixes): per flawed case and seed, every Find-the-fix
candidate trained on that seed; helped = some candidate beat the parent; holds = the winner, re-run
on another seed, beats the parent re-run on that seed (the honest check of a verified fix).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from experiments.recommender.evaluation.cases import HEALTHY

REPORTING_KINDS = frozenset({"success", "performance", "history"})
INFORMATIONAL_KINDS = REPORTING_KINDS | {"more_epochs"}


@dataclass(frozen=True)
class Outcome:
    """One case on one seed: what the recommender said and what its top change did."""

    case_id: str
    expected: str
    seed: int
    kinds: tuple[str, ...]
    top_kind: str | None = None
    improved: bool | None = None
    before: float | None = None
    after: float | None = None
    status: str = "succeeded"

    @property
    def diagnosed(self) -> str:
        return next((kind for kind in self.kinds if kind not in REPORTING_KINDS), "none")

    @property
    def named(self) -> bool:
        return self.expected in self.kinds

    @property
    def alarms(self) -> tuple[str, ...]:
        return tuple(kind for kind in self.kinds if kind not in INFORMATIONAL_KINDS)

    def to_json(self) -> dict:
        return {**asdict(self), "diagnosed": self.diagnosed, "named": self.named}


@dataclass(frozen=True)
class Figure:
    """count/total overall, and the same per seed."""

    count: int
    total: int
    per_seed: dict[int, tuple[int, int]]

    @property
    def rate(self) -> float | None:
        return self.count / self.total if self.total else None

    @property
    def spread(self) -> tuple[float, float] | None:
        rates = [c / t for c, t in self.per_seed.values() if t]
        return (min(rates), max(rates)) if rates else None

    def text(self) -> str:
        if not self.total:
            return "-"
        low, high = self.spread
        return f"{self.count}/{self.total} ({self.rate:.0%}; per seed {low:.0%}–{high:.0%})"


def _figure(pairs: Iterable[tuple[int, bool]]) -> Figure:
    per_seed: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for seed, hit in pairs:
        per_seed[seed][0] += int(hit)
        per_seed[seed][1] += 1
    count = sum(c for c, _ in per_seed.values())
    total = sum(t for _, t in per_seed.values())
    return Figure(count, total, {seed: (c, t) for seed, (c, t) in sorted(per_seed.items())})


@dataclass(frozen=True)
class Summary:
    named: Figure
    improved: Figure
    false_alarms: Figure
    confusion: dict[str, dict[str, int]]
    per_problem: dict[str, dict[str, Figure]]


def summarise(outcomes: Sequence[Outcome]) -> Summary:
    flawed = [o for o in outcomes if o.expected != HEALTHY]
    healthy = [o for o in outcomes if o.expected == HEALTHY]
    confusion: dict[str, Counter] = defaultdict(Counter)
    for outcome in outcomes:
        confusion[outcome.expected][outcome.diagnosed] += 1
    per_problem = {}
    for expected in sorted({o.expected for o in flawed}):
        mine = [o for o in flawed if o.expected == expected]
        per_problem[expected] = {
            "named": _figure((o.seed, o.named) for o in mine),
            "improved": _figure((o.seed, bool(o.improved)) for o in mine if o.improved is not None)}
    return Summary(
        named=_figure((o.seed, o.named) for o in flawed),
        improved=_figure((o.seed, bool(o.improved)) for o in flawed if o.improved is not None),
        false_alarms=_figure((o.seed, bool(o.alarms)) for o in healthy),
        confusion={kind: dict(counts.most_common()) for kind, counts in sorted(confusion.items())},
        per_problem=per_problem)


def format_summary(title: str, summary: Summary) -> list[str]:
    lines = [f"== {title}", "per problem: expected -> diagnosed top problem (runs); named; improved"]
    for expected, diagnosed in summary.confusion.items():
        cells = ", ".join(f"{kind} {count}" for kind, count in diagnosed.items())
        figures = summary.per_problem.get(expected)
        tail = (f"; named {figures['named'].text()}; improved {figures['improved'].text()}"
                if figures else "")
        lines.append(f"  {expected:<20} -> {cells}{tail}")
    lines += [f"problem named:        {summary.named.text()}",
              f"top change improved:  {summary.improved.text()}",
              f"false alarms (healthy): {summary.false_alarms.text()}"]
    return lines


def format_outcome(outcome: Outcome) -> str:
    def pct(value):
        return "  -  " if value is None else f"{value * 100:5.1f}"

    mark = {True: "yes", False: "no", None: "n/a"}[outcome.improved]
    verdict = ("ALARM" if outcome.alarms else "ok") if outcome.expected == HEALTHY else (
        "OK" if outcome.named else "MISS")
    shown = ",".join(k for k in outcome.kinds if k not in ("performance", "history")) or "-"
    return (f"{outcome.case_id:<26} s{outcome.seed:<3} {verdict:<5} {outcome.expected:<19} "
            f"diagnosed {shown:<40.40} val {pct(outcome.before)} -> {pct(outcome.after)} "
            f"improved {mark:<3} top {outcome.top_kind}")


# --------------------------------------------------------------------------- Find the fix (--find-fix)


@dataclass(frozen=True)
class FixOutcome:
    """Find the fix on one flawed case and seed: the candidates' measured gains on that seed, and the
    winner re-checked on a different seed against the parent re-run there.

    - helped: some candidate beat the parent on the same seed (so a verified fix exists);
    - winner_improves: the winner beats the parent on the same seed (true whenever helped: the winner
      is chosen on that seed, so this only guards the bookkeeping);
    - holds: the winner, re-run on `check_seed`, beats the parent re-run on `check_seed` (None when
      there was no winner).
    """

    case_id: str
    expected: str
    seed: int
    candidates: int
    gains: tuple[float | None, ...]
    winner_kind: str | None = None
    winner_gain: float | None = None
    check_seed: int | None = None
    check_gain: float | None = None

    @property
    def helped(self) -> bool:
        return self.winner_kind is not None

    @property
    def winner_improves(self) -> bool | None:
        return None if self.winner_gain is None else self.winner_gain > 0

    @property
    def holds(self) -> bool | None:
        return None if self.check_gain is None else self.check_gain > 0

    def to_json(self) -> dict:
        return {**asdict(self), "helped": self.helped, "holds": self.holds}


@dataclass(frozen=True)
class FixSummary:
    tried: Figure  # cases with at least one candidate
    helped: Figure  # of those: some candidate beat the parent on the same seed
    winner_improves: Figure  # of the helped: the winner beat the parent on the same seed
    holds: Figure  # of the helped: the winner beat the parent again on a new seed
    per_problem: dict[str, dict[str, Figure]]


def summarise_fixes(outcomes: Sequence[FixOutcome]) -> FixSummary:
    tried = [o for o in outcomes if o.candidates]
    helped = [o for o in tried if o.helped]
    per_problem = {}
    for expected in sorted({o.expected for o in outcomes}):
        mine = [o for o in tried if o.expected == expected]
        per_problem[expected] = {"helped": _figure((o.seed, o.helped) for o in mine),
                                 "holds": _figure((o.seed, bool(o.holds)) for o in mine if o.helped)}
    return FixSummary(
        tried=_figure((o.seed, bool(o.candidates)) for o in outcomes),
        helped=_figure((o.seed, o.helped) for o in tried),
        winner_improves=_figure((o.seed, bool(o.winner_improves)) for o in helped),
        holds=_figure((o.seed, bool(o.holds)) for o in helped),
        per_problem=per_problem)


def format_fix_summary(title: str, summary: FixSummary) -> list[str]:
    lines = [f"== {title}: Find the fix", "per problem: any candidate helped; the winner holds on a new seed"]
    for expected, figures in summary.per_problem.items():
        lines.append(f"  {expected:<20} helped {figures['helped'].text()}; holds {figures['holds'].text()}")
    lines += [f"cases with candidates:            {summary.tried.text()}",
              f"any candidate helped (same seed): {summary.helped.text()}",
              f"winner improves (same seed):      {summary.winner_improves.text()}",
              f"verified fix holds on a new seed: {summary.holds.text()}  (goal >= 95 % of the helped)"]
    return lines


def format_fix_outcome(outcome: FixOutcome) -> str:
    gains = " ".join("  -  " if g is None else f"{g:+5.1f}" for g in outcome.gains) or "no candidates"
    if outcome.helped:
        tail = (f"winner {outcome.winner_kind} {outcome.winner_gain:+.1f}; on seed {outcome.check_seed} "
                f"{'-' if outcome.check_gain is None else f'{outcome.check_gain:+.1f}'} "
                f"{'HOLDS' if outcome.holds else 'FAILS'}")
    else:
        tail = "nothing helped"
    return f"{outcome.case_id:<26} s{outcome.seed:<3} {outcome.expected:<19} gains {gains:<30} {tail}"
