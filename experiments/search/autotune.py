"""Tune for me: successive halving across training-set size and epochs, TPE for new points, then the winner.

Pure logic (no Django): `decide` looks at an autotune sweep's trials (TrialRecords with their
`rung`) and the clock, and says what the next free slot should run:

- rungs: the search's fidelities, cheapest first (by default 5 000 images × 2 epochs → 15 000 × 4
  → all 54 000 × 8). Every new point starts at rung 0, proposed by Optuna's TPE sampler from the
  rung-0 results (and warm-start imports);
- promotion (asynchronous successive halving): a succeeded trial of rung r whose value is in the
  top 1/eta of rung r's succeeded trials is trained again at rung r+1 (same hyperparameters, a new
  trial), highest rungs first, when that rung's typical wall time fits in the search's time left;
- the search gets the first (1 - final_fraction) of the wall budget; then one final trial trains
  the winner (the best trial of the highest rung any trial finished) on all the training data
  with more epochs, as many as fit in the time left, and reports its test accuracy.

Everything is derived from the rows, so a coordinator that crashed and restarted decides the same.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import optuna

from experiments.search.records import SweepSpec, TrialRecord
from experiments.search.space import same_value
from experiments.search.study import build_study, distributions_of, optuna_quietly

MIN_MINUTES, MAX_MINUTES = 1, 24 * 60
FULL_TRAIN = 54_000  # images of the full training split (60 000 minus the 10 % validation)

# The whole space; a fixed field is removed from it and set in the base config.
SPACE: dict[str, Any] = {
    "hidden_layers": {"values": [[128], [256], [512], [256, 128], [512, 256], [1024, 512], [512, 256, 128]]},
    "optimizer": {"values": ["adam", "rmsprop", "momentum", "sgd"]},
    "learning_rate": {"low": 1e-4, "high": 0.3, "scale": "log"},
    "lr_schedule": {"values": ["cosine", "step", "exponential", "constant"]},
    "warmup_epochs": {"values": [0, 1]},
    "dropout": {"low": 0.0, "high": 0.5},
    "l2": {"low": 1e-6, "high": 1e-3, "scale": "log"},
    "batch_size": {"values": [32, 64, 128, 256]},
}
FIDELITY = ("train_size", "epochs")  # set by the rungs (fixing either fixes it in every rung)


@dataclass(frozen=True)
class Rung:
    train_size: int | None  # None: all the training data
    epochs: int


@dataclass(frozen=True)
class Plan:
    """An autotune's settings, stored as the sweep's `autotune` JSON."""

    seconds: float  # the wall budget (extend adds to it; the sweep's time_budget_seconds is the same)
    fixed: dict[str, Any] = field(default_factory=dict)
    rungs: tuple[Rung, ...] = (Rung(5000, 2), Rung(15000, 4), Rung(None, 8))
    final: Rung = Rung(None, 20)  # the winner's training: all the data, up to this many epochs
    eta: int = 3  # promote the top 1/eta of a rung
    final_fraction: float = 0.3  # the budget's last part, for the winner

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["rungs"] = [asdict(r) for r in self.rungs]
        data["final"] = asdict(self.final)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        return cls(seconds=float(data["seconds"]), fixed=dict(data.get("fixed") or {}),
                   rungs=tuple(Rung(**r) for r in data["rungs"]), final=Rung(**data["final"]),
                   eta=int(data.get("eta", 3)), final_fraction=float(data.get("final_fraction", 0.3)))

    @property
    def final_rung(self) -> int:
        """The final trial's rung number: one past the search's last."""
        return len(self.rungs)

    @property
    def search_seconds(self) -> float:
        return self.seconds * (1 - self.final_fraction)

    def rung_config(self, rung: int) -> dict[str, Any]:
        """train_size and epochs of `rung` (a fixed field stays as fixed)."""
        r = self.final if rung == self.final_rung else self.rungs[rung]
        return {name: self.fixed[name] if name in self.fixed else getattr(r, name) for name in FIDELITY}


def space_for(fixed: dict[str, Any]) -> dict[str, Any]:
    return {name: spec for name, spec in SPACE.items() if name not in fixed}


def minutes_problem(minutes: Any) -> str:
    """Why `minutes` cannot be an autotune's budget ("" if it can)."""
    if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not math.isfinite(minutes) \
            or not MIN_MINUTES <= minutes <= MAX_MINUTES:
        return f"Must be a number of minutes from {MIN_MINUTES} to {MAX_MINUTES}."
    return ""


@dataclass(frozen=True)
class Step:
    """What the next free slot runs: a "new" point at rung 0, a "promote"d one, the "final", or nothing
    ("wait": trials are running that may change the picture; "done": the autotune is over)."""

    kind: str
    rung: int = 0
    source: TrialRecord | None = None  # the trial whose hyperparameters it reuses
    epochs: int | None = None  # the final's epochs (fitted to the time left)
    reason: str = ""


def _same_params(spec: SweepSpec, a: TrialRecord, b: TrialRecord) -> bool:
    return all(same_value(a.config.get(n), b.config.get(n)) for n in spec.params)


def _done(records: list[TrialRecord], rung: int) -> list[TrialRecord]:
    return sorted((r for r in records if r.rung == rung and r.status == "succeeded" and r.best_val_accuracy
                   is not None), key=lambda r: (-r.best_val_accuracy, r.number))


def winner(plan: Plan, records: list[TrialRecord]) -> TrialRecord | None:
    """The best succeeded trial of the highest search rung any trial finished."""
    for rung in reversed(range(len(plan.rungs))):
        done = _done(records, rung)
        if done:
            return done[0]
    return None


def seconds_per_image_epoch(plan: Plan, records: list[TrialRecord]) -> float | None:
    """Median wall seconds per training image per epoch of the finished search trials (start-up included)."""
    rates = []
    for r in records:
        if r.rung is None or r.rung >= plan.final_rung or r.status != "succeeded" or not r.epochs_done:
            continue
        if r.started_at is None or r.finished_at is None:
            continue
        size = plan.rung_config(r.rung)["train_size"] or FULL_TRAIN
        rates.append((r.finished_at - r.started_at) / (size * r.epochs_done))
    return float(np.median(rates)) if rates else None


def rung_seconds(plan: Plan, rung: int, rate: float | None, *, epochs: int | None = None) -> float:
    """Expected wall seconds of a trial at `rung` (0 before any trial finished)."""
    if rate is None:
        return 0.0
    config = plan.rung_config(rung)
    return rate * (config["train_size"] or FULL_TRAIN) * (epochs or config["epochs"])


def final_epochs(plan: Plan, remaining: float, rate: float | None) -> int:
    """The final's epochs: as many as fit in 85 % of the time left (at least 1, at most plan.final's)."""
    most = plan.rung_config(plan.final_rung)["epochs"]
    per_epoch = rung_seconds(plan, plan.final_rung, rate, epochs=1)
    if per_epoch <= 0:
        return most
    return max(1, min(most, int(0.85 * remaining / per_epoch)))


def decide(plan: Plan, spec: SweepSpec, records: list[TrialRecord], *, elapsed: float) -> Step:
    """The next slot's work, from the trials so far and the seconds since the autotune started."""
    if any(r.rung == plan.final_rung for r in records):
        return Step("done", reason="the winner's final training has started")
    active = [r for r in records if r.status in ("queued", "running")]
    rate = seconds_per_image_epoch(plan, records)
    search_left = plan.search_seconds - elapsed
    if search_left > rung_seconds(plan, 0, rate):
        for rung in reversed(range(len(plan.rungs) - 1)):  # promotions, highest rung first
            if rung_seconds(plan, rung + 1, rate) >= search_left:
                continue
            done = _done(records, rung)
            above = [r for r in records if r.rung == rung + 1]
            for candidate in done[:len(done) // plan.eta]:
                if not any(_same_params(spec, candidate, r) for r in above):
                    return Step("promote", rung=rung + 1, source=candidate)
        return Step("new", rung=0)
    best = winner(plan, records)
    if active and (best is None or search_left > 0):
        return Step("wait", reason="the search's last trials are running")
    remaining = plan.seconds - elapsed
    return Step("final", rung=plan.final_rung, source=best, epochs=final_epochs(plan, remaining, rate))


def suggest(spec: SweepSpec, records: list[TrialRecord], warm: list[TrialRecord], *, number: int) -> dict[str, Any]:
    """A new rung-0 point from TPE over the rung-0 trials (and the warm-start imports)."""
    rung0 = [r for r in records if r.rung == 0]
    seed = int(np.random.SeedSequence([spec.seed, number]).generate_state(1)[0])
    with optuna_quietly(optuna.exceptions.ExperimentalWarning, UserWarning):
        study = build_study(spec, rung0, warm=warm, multi_objective=False, pad=False)
        study.sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=True, multivariate=True,
                                                   n_startup_trials=8)
        trial = study.ask(distributions_of(spec))
    return {name: param.decode(trial.params[name]) for name, param in spec.params.items()}


def anytime_curve(records: list[TrialRecord], *, start: float) -> list[dict[str, Any]]:
    """Best validation and test accuracy so far against seconds since `start`, one point per improvement
    (by finish time; warm-start imports excluded)."""
    points, best_val, best_test = [], None, None
    for r in sorted((r for r in records if not r.warm and r.status == "succeeded" and r.finished_at is not None),
                    key=lambda r: r.finished_at):
        val = r.best_val_accuracy
        test = r.test_accuracy
        improved = False
        if val is not None and (best_val is None or val > best_val):
            best_val, improved = val, True
        if test is not None and (best_test is None or test > best_test):
            best_test, improved = test, True
        if improved:
            points.append({"seconds": round(r.finished_at - start, 2), "best_val_accuracy": best_val,
                           "best_test_accuracy": best_test, "trial_number": r.number})
    return points
