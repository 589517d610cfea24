"""The Optuna side of a sweep: a study rebuilt from the trials, its samplers, and the Asker.

Our database is the single source of truth
-------------------------------------------
Optuna is used in ask-and-tell style, but its state is never stored: every time the
coordinator needs new parameters (or a pruning decision) it rebuilds an in-memory study
from the sweep's trial rows — params from each trial's config, the value from its best
validation accuracy, the state from its status (succeeded -> COMPLETE, diverged ->
COMPLETE with value 0, pruned -> PRUNED, failed/cancelled -> FAIL, queued/running ->
RUNNING so that TPE's constant liar steers away from them) and the per-epoch validation
accuracies as intermediate values. We chose this over Optuna's RDB storage because:

- one source of truth: a trial *is* its Experiment row, so there is nothing to keep in
  sync (no second set of tables whose trial states can disagree with our statuses, no
  Alembic-managed schema beside Django's migrations);
- it is trivially consistent after crashes: a worker that dies between "ask" and
  "create the run" leaves nothing behind, and the next rebuild sees exactly the rows
  that were committed;
- concurrency is handled by one row lock on the sweep (services.sweep_fill), not by
  Optuna's storage-level heartbeats.

The cost is O(trials + epochs) per ask (a few milliseconds for the <= 200 trials a
sweep may have), paid once per fill or per pruning check.

Two details follow from rebuilding. Seeded samplers would restart their random stream on
every rebuild and propose the same point again, so each ask gets a sampler seeded from
(sweep seed, trial number): reproducible, and different for every trial. QMCSampler
counts its position in study storage, which a rebuilt study starts afresh, so ours takes
the position from the trial number (and works without SciPy via a scrambled Halton
sequence in NumPy).
"""

from __future__ import annotations

import contextlib
import math
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from experiments.search.records import SweepSpec, TrialRecord, second_value
from experiments.search.space import Param, same_value

optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created in memory" per rebuild

PRIMES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97)
STATES = {"succeeded": TrialState.COMPLETE, "diverged": TrialState.COMPLETE, "pruned": TrialState.PRUNED,
          "queued": TrialState.RUNNING, "running": TrialState.RUNNING}  # any other status: FAIL

_optuna_lock = threading.Lock()


@contextlib.contextmanager
def optuna_quietly(*ignored: type[Warning]) -> Iterator[None]:
    """Run Optuna code with its warnings (by default ExperimentalWarning) silenced.

    warnings.catch_warnings is process-global, so threads (Channels, a threaded worker)
    take turns: otherwise one thread's exit would restore the filters under another.
    """
    with _optuna_lock, warnings.catch_warnings():
        for category in ignored or (optuna.exceptions.ExperimentalWarning,):
            warnings.simplefilter("ignore", category)
        yield


def distribution_of(param: Param) -> BaseDistribution:
    if param.values is not None:
        return CategoricalDistribution([param.encode(v) for v in param.values])
    if param.is_int:
        return IntDistribution(int(param.low), int(param.high), log=param.log)
    return FloatDistribution(float(param.low), float(param.high), log=param.log)


def distributions_of(spec: SweepSpec) -> dict[str, BaseDistribution]:
    return {name: distribution_of(param) for name, param in spec.params.items()}


# --------------------------------------------------------------------------- rebuilding the study

RungAttrs = Callable[[dict[int, float]], dict[str, float]]


def _frozen(spec: SweepSpec, record: TrialRecord, *, directions: int, distributions: dict[str, BaseDistribution],
            rung_attrs: RungAttrs | None = None) -> optuna.trial.FrozenTrial:
    params = {}
    for name, param in spec.params.items():
        value = record.config.get(name)
        if not param.contains(value):
            params = None
            break
        encoded = param.encode(value)
        if param.values is not None:  # the category exactly as the distribution lists it
            encoded = next(c for c in distributions[name].choices if same_value(c, encoded))
        params[name] = encoded
    intermediate = {int(k): float(v) for k, v in record.intermediate.items() if v is not None}
    attrs = {"experiment_id": record.experiment_id, "trial_number": record.number, "warm": record.warm}
    state = STATES.get(record.status, TrialState.FAIL)
    values = None
    if state == TrialState.COMPLETE:
        objective = record.value
        values = [objective] if objective is not None else None
        if values is not None and directions == 2:
            second = second_value(spec, record)
            values = values + [second] if second is not None else None
        if values is None:
            state = TrialState.FAIL
    if params is None:
        state, values = TrialState.FAIL, None
    if state == TrialState.PRUNED and directions == 2:
        # Optuna 5's multi-objective TPE reads study.direction for pruned trials and fails;
        # a pruned trial's partial accuracy and time say little about both objectives anyway.
        state = TrialState.FAIL
    return optuna.trial.create_trial(
        state=state, values=values if state == TrialState.COMPLETE else None,
        params=params or {}, distributions={k: distributions[k] for k in (params or {})},
        intermediate_values=intermediate, user_attrs=attrs,
        system_attrs=rung_attrs(intermediate) if rung_attrs else {})


def build_study(spec: SweepSpec, records: Iterable[TrialRecord], *, warm: Iterable[TrialRecord] = (),
                multi_objective: bool | None = None, pruner: optuna.pruners.BasePruner | None = None,
                pad: bool = True, rung_attrs: RungAttrs | None = None) -> optuna.Study:
    """An in-memory study holding `warm` imports first, then the sweep's trials by number.

    With `pad`, missing trial numbers (a trial row deleted by its owner) become FAIL
    placeholders, so Optuna's trial.number stays trial_number - 1 (GridSampler relies on it).
    `rung_attrs` gives each trial system attributes from its per-epoch values (the pruner's
    bookkeeping, e.g. pruning.completed_rungs for ASHA).
    """
    multi = spec.multi_objective if multi_objective is None else multi_objective
    directions = ["maximize", "minimize"] if multi else ["maximize"]
    study = optuna.create_study(directions=directions, sampler=optuna.samplers.RandomSampler(seed=spec.seed),
                                pruner=pruner)
    distributions = distributions_of(spec)
    for record in warm:
        if record.value is not None and record.status == "succeeded":
            study.add_trial(_frozen(spec, record, directions=len(directions), distributions=distributions,
                                    rung_attrs=rung_attrs))
    by_number = {r.number: r for r in records}
    last = max(by_number, default=0)
    numbers = range(1, last + 1) if pad else sorted(by_number)
    for number in numbers:
        record = by_number.get(number)
        if record is None:
            study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL, user_attrs={"placeholder": True}))
        else:
            study.add_trial(_frozen(spec, record, directions=len(directions), distributions=distributions,
                                    rung_attrs=rung_attrs))
    return study


# --------------------------------------------------------------------------- samplers


def _derived_seed(seed: int, number: int) -> int:
    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


def _tpe_startup_trials(budget: int) -> int:
    """Random trials before TPE models the results: 10 for big budgets, fewer for small ones."""
    return min(10, max(3, budget // 4))


def scrambled_halton(index: int, dimensions: int, seed: int) -> np.ndarray:
    """Point `index` of a Halton sequence with random digit permutations (seeded), in [0, 1)^d."""
    rng = np.random.default_rng(seed)
    point = np.empty(dimensions)
    for j in range(dimensions):
        base = PRIMES[j % len(PRIMES)]
        digits = int(math.ceil(53 / math.log2(base)))
        permutations = [rng.permutation(base) for _ in range(digits)]
        i, value, scale = index, 0.0, 1.0 / base
        for k in range(digits):
            i, digit = divmod(i, base)
            value += permutations[k][digit] * scale
            scale /= base
        point[j] = min(value, 1.0 - 1e-12)
    return point


def _has_scipy() -> bool:
    try:
        import scipy.stats.qmc  # noqa: F401
    except ImportError:
        return False
    return True


class SweepQMCSampler(optuna.samplers.QMCSampler):
    """QMCSampler for a study rebuilt from our rows.

    The stock sampler keeps its position in the sequence in study storage, which a rebuilt
    study starts afresh; here the position is the trial's number. The search space is the
    sweep's from the first trial on (the stock sampler samples trial 0 at random). Without
    SciPy (not a dependency of this project) the points are a scrambled Halton sequence.
    """

    def __init__(self, *, seed: int, sample_id: int, search_space: dict[str, BaseDistribution]):
        self._use_scipy = _has_scipy()
        super().__init__(qmc_type="sobol" if self._use_scipy else "halton", scramble=True, seed=seed,
                         warn_independent_sampling=False, warn_asynchronous_seeding=False)
        self._sample_id = sample_id
        self._space = dict(search_space)

    def infer_relative_search_space(self, study, trial) -> dict[str, BaseDistribution]:
        return dict(self._space)

    def _find_sample_id(self, study, search_space) -> int:
        return self._sample_id

    def _sample_qmc(self, study, search_space) -> np.ndarray:
        if self._use_scipy:
            return super()._sample_qmc(study, search_space)
        return scrambled_halton(self._sample_id, len(search_space), int(self._seed))[None, :]


def make_sampler(spec: SweepSpec, number: int) -> optuna.samplers.BaseSampler:
    """The sampler that proposes trial `number` (1-based)."""
    if spec.strategy == "grid":
        grid = {name: [param.encode(v) for v in param.values] for name, param in spec.params.items()}
        return optuna.samplers.GridSampler(grid, seed=spec.seed)
    if spec.strategy == "random":
        return optuna.samplers.RandomSampler(seed=_derived_seed(spec.seed, number))
    if spec.strategy == "qmc":
        return SweepQMCSampler(seed=spec.seed, sample_id=number - 1, search_space=distributions_of(spec))
    return optuna.samplers.TPESampler(seed=_derived_seed(spec.seed, number), constant_liar=True, multivariate=True,
                                      n_startup_trials=_tpe_startup_trials(spec.budget))


class Asker:
    """Proposes the next trials of one sweep from one rebuilt study (one per fill call).

    Each asked trial stays in the study as RUNNING, so the next ask knows about it (TPE's
    constant liar, the grid's next point, the QMC position).
    """

    def __init__(self, spec: SweepSpec, records: Sequence[TrialRecord], warm: Sequence[TrialRecord] = ()):
        self.spec = spec
        with optuna_quietly():
            self.study = build_study(spec, records, warm=warm if spec.strategy != "grid" else ())
        self._offset = len(self.study.get_trials(deepcopy=False)) - max((r.number for r in records), default=0)
        self._distributions = distributions_of(spec)
        self._asked: dict[int, optuna.Trial] = {}

    def ask(self, number: int) -> dict[str, Any]:
        """The varied fields of trial `number` (config values, e.g. hidden_layers as a list)."""
        with optuna_quietly(optuna.exceptions.ExperimentalWarning, UserWarning):
            self.study.sampler = make_sampler(self.spec, number)
            expected = number - 1 + self._offset
            while len(self.study.get_trials(deepcopy=False)) < expected:  # keep trial.number == trial_number - 1 (+ imports)
                self.study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL))
            trial = self.study.ask(self._distributions)
        self._asked[number] = trial
        return {name: param.decode(trial.params[name]) for name, param in self.spec.params.items()}

    def fail(self, number: int) -> None:
        """Trial `number` could not be created (e.g. an invalid combination): tell the study."""
        trial = self._asked.pop(number, None)
        if trial is not None:
            self.study.tell(trial, state=TrialState.FAIL)


# --------------------------------------------------------------------------- keeping the study between asks


@dataclass
class Fingerprint:
    """What the database says of a sweep's trial rows, cheaply (one aggregate query)."""

    count: int  # rows
    active: int  # queued or running rows
    last: int  # highest trial_number (0 without rows)
    finished: float | None  # latest finished_at (a timestamp), None if none has finished


class CachedAsker(Asker):
    """An Asker kept between fills of one sweep in one process, told only what changed.

    The database stays the source of truth: before each fill the coordinator re-reads the
    trials this study still holds as RUNNING plus any newer trial numbers (`sync`), then
    compares the study's view with the rows' `Fingerprint` (`matches`); anything else that
    changed (a deleted row, a retried trial, an aborted fill that asked for numbers it never
    stored) makes them differ and the caller builds a fresh one. Cost per fill:
    O(new results) for the update plus the sampler's own work.
    """

    def __init__(self, spec: SweepSpec, records: Sequence[TrialRecord], warm: Sequence[TrialRecord] = (), *,
                 key: Any = None):
        super().__init__(spec, records, warm)
        self.key = key  # what the study was built for (spec and warm-start ids): another key, another study
        self._rows = {r.number for r in records}
        self._open = {r.number for r in records if r.status in ACTIVE}
        self._finished = max((r.finished_at for r in records if r.finished_at is not None), default=None)
        self._last = max(self._rows, default=0)

    @property
    def open_numbers(self) -> list[int]:
        return sorted(self._open)

    @property
    def last(self) -> int:
        return self._last

    def ask(self, number: int) -> dict[str, Any]:
        changes = super().ask(number)
        self._last = max(self._last, number)
        self._rows.add(number)  # the caller stores the row (or calls fail(), which stores it failed)
        self._open.add(number)
        return changes

    def fail(self, number: int) -> None:
        super().fail(number)
        self._open.discard(number)

    def sync(self, changed: Sequence[TrialRecord]) -> None:
        """Tell the study the rows re-read since the last fill (its open trials and newer numbers)."""
        trials = self.study.get_trials(deepcopy=False)
        storage, distributions = self.study._storage, self._distributions  # noqa: SLF001 - in-memory storage
        for record in sorted(changed, key=lambda r: r.number):
            if record.finished_at is not None:
                self._finished = max(self._finished or record.finished_at, record.finished_at)
            index = record.number - 1 + self._offset
            if record.number > self._last:
                with optuna_quietly():
                    while len(self.study.get_trials(deepcopy=False)) < index:
                        self.study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL,
                                                                       user_attrs={"placeholder": True}))
                    self.study.add_trial(_frozen(self.spec, record, directions=len(self.study.directions),
                                                 distributions=distributions))
                trials = self.study.get_trials(deepcopy=False)
                self._last = record.number
                self._rows.add(record.number)
                if record.status in ACTIVE:
                    self._open.add(record.number)
                continue
            if record.status in ACTIVE or record.number not in self._open:
                continue
            frozen = _frozen(self.spec, record, directions=len(self.study.directions), distributions=distributions)
            trial_id = trials[index]._trial_id  # noqa: SLF001
            for step, value in frozen.intermediate_values.items():
                storage.set_trial_intermediate_value(trial_id, step, value)
            storage.set_trial_state_values(trial_id, frozen.state, frozen.values)
            self._open.discard(record.number)

    def matches(self, fingerprint: Fingerprint) -> bool:
        return (fingerprint.count == len(self._rows) and fingerprint.active == len(self._open)
                and fingerprint.last == self._last and fingerprint.finished == self._finished)


ACTIVE = ("queued", "running")


class AskerCache:
    """Per-process CachedAskers by sweep id (bounded: the least recently used one goes first)."""

    def __init__(self, size: int = 32):
        self.size = size
        self._items: dict[int, CachedAsker] = {}
        self._lock = threading.Lock()

    def get(self, sweep_id: int, key: Any) -> CachedAsker | None:
        with self._lock:
            asker = self._items.pop(sweep_id, None)
            if asker is not None and asker.key == key:
                self._items[sweep_id] = asker
                return asker
            return None

    def put(self, sweep_id: int, asker: CachedAsker) -> None:
        with self._lock:
            self._items.pop(sweep_id, None)
            self._items[sweep_id] = asker
            while len(self._items) > self.size:
                self._items.pop(next(iter(self._items)))

    def drop(self, sweep_id: int) -> None:
        with self._lock:
            self._items.pop(sweep_id, None)


ASKERS = AskerCache()
