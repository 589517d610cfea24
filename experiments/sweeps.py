"""Sweeps: search spaces, the Optuna coordinator, pruning decisions and analysis.

Plain data in, plain data out: no ORM here. experiments/services.py locks the sweep row,
reads the trials through experiments/selectors.py as `TrialRecord`s, and calls these
functions; the views and the CLI only see what services and selectors return.

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

import itertools
import json
import math
import secrets
import threading
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from training.config import FIELDS, ConfigError, TrainingConfig

optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created in memory" per rebuild

STRATEGIES = ("grid", "random", "tpe", "qmc")
PRUNERS = ("none", "median", "asha")
SECOND_OBJECTIVES = ("none", "seconds", "parameters")
OBJECTIVE = "val_accuracy"
MIN_BUDGET, MAX_BUDGET, DEFAULT_BUDGET = 1, 200, 20
MIN_PARALLELISM, MAX_PARALLELISM, DEFAULT_PARALLELISM = 1, 8, 2
MAX_SEED = 2**31 - 1
MAX_VALUES = 50  # per values list
MAX_GRID_POINTS = 10_000
MAX_CORNER_CHECKS = 256  # combinations of extreme values checked for cross-field errors
SPEC_KEYS = ("values", "low", "high", "scale", "type")
RANGE_KEYS = ("low", "high", "scale", "type")

# Pruners (steps are 1-based epochs).
MEDIAN_STARTUP_TRIALS = 2
MEDIAN_WARMUP_STEPS = 1
ASHA_MIN_RESOURCE = 1
ASHA_REDUCTION_FACTOR = 3

IMPORTANCE_MIN_TRIALS = 4
EDGE_FRACTION = 0.10
EDGE_TOP_TRIALS = 3

ACTIVE = ("queued", "running")
_optuna_lock = threading.Lock()  # warnings.catch_warnings is process-global


class SweepSpecError(ValueError):
    """An invalid sweep request; `errors` maps each bad input to its messages, e.g.
    {"space": {"learning_rate": ["..."]}, "budget": ["..."]}."""

    def __init__(self, errors: dict[str, Any]):
        self.errors = errors
        super().__init__(json.dumps(errors))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def same_value(a: Any, b: Any) -> bool:
    """Config values equal as the user means it: 1 == 1.0, [64] == (64,), True != 1."""
    if isinstance(a, tuple):
        a = list(a)
    if isinstance(b, tuple):
        b = list(b)
    if _is_number(a) and _is_number(b):
        return float(a) == float(b)
    return type(a) is type(b) and a == b


def _show(value: Any) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else _show(value)


# --------------------------------------------------------------------------- the search space


@dataclass(frozen=True)
class Param:
    """One varied field: either a list of values, or a low/high range (linear or log)."""

    name: str
    values: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    is_int: bool = False

    @property
    def is_range(self) -> bool:
        return self.values is None

    @property
    def is_numeric(self) -> bool:
        return self.is_range or all(_is_number(v) for v in self.values or ())

    @property
    def size(self) -> int | None:
        """Number of distinct values (None for a continuous range)."""
        if self.values is not None:
            return len(self.values)
        if self.is_int:
            return int(self.high) - int(self.low) + 1
        return None

    def distribution(self) -> BaseDistribution:
        if self.values is not None:
            return CategoricalDistribution([self.encode(v) for v in self.values])
        if self.is_int:
            return IntDistribution(int(self.low), int(self.high), log=self.log)
        return FloatDistribution(float(self.low), float(self.high), log=self.log)

    def encode(self, value: Any) -> Any:
        """Config value -> Optuna param (layer lists become JSON strings: categories must be scalars)."""
        if isinstance(value, (list, tuple)):
            return json.dumps(list(value))
        return value

    def decode(self, value: Any) -> Any:
        if FIELDS[self.name].kind == "int_list" and isinstance(value, str):
            return json.loads(value)
        if self.is_range and self.is_int:
            return int(value)
        if self.is_range:
            return float(value)
        return value

    def contains(self, value: Any) -> bool:
        if self.values is not None:
            return any(same_value(value, v) for v in self.values)
        if not _is_number(value):
            return False
        if self.is_int and float(value) != int(value):
            return False
        return self.low <= value <= self.high

    def position(self, value: float) -> float:
        """Where `value` sits in the range, 0..1 (log-aware)."""
        if self.log:
            return (math.log(value) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (value - self.low) / (self.high - self.low)

    def to_json(self) -> dict[str, Any]:
        if self.values is not None:
            return {"values": list(self.values)}
        return {"low": self.low, "high": self.high, "scale": "log" if self.log else "linear",
                "type": "int" if self.is_int else "float"}


def _field_messages(exc: ConfigError, name: str) -> str:
    if name in exc.errors:
        return " ".join(exc.errors[name])
    return " ".join(f"{other}: {' '.join(messages)}" for other, messages in exc.errors.items())


def _clean_value(name: str, value: Any, base: dict[str, Any]) -> tuple[Any, str]:
    """The normalised value of `name` (validated with the rest of `base`), or an error message."""
    try:
        config = TrainingConfig.from_dict({**base, name: value})
    except ConfigError as exc:
        return None, _field_messages(exc, name)
    except (TypeError, ValueError, OverflowError) as exc:  # never let a strange value escape
        return None, f"Invalid value: {exc}."
    return config.to_dict()[name], ""


def _parse_values(name: str, spec: dict[str, Any], base: dict[str, Any]) -> tuple[Param | None, list[str]]:
    kind = FIELDS[name].kind
    values = spec["values"]
    if not isinstance(values, list) or not values:
        return None, ["values must be a non-empty list."]
    if len(values) > MAX_VALUES:
        return None, [f"At most {MAX_VALUES} values, got {len(values)}."]
    errors: list[str] = []
    cleaned: list[Any] = []
    for index, value in enumerate(values, start=1):
        if kind == "int_list" and not isinstance(value, list):
            errors.append(f"Value {index} ({_show(value)}) must be a list of layer sizes such as [128] or [256, 128].")
            continue
        if kind != "int_list" and isinstance(value, (list, dict)):
            errors.append(f"Value {index} must be a single value, got {_show(value)}.")
            continue
        clean, message = _clean_value(name, value, base)
        if message:
            errors.append(f"Value {index} ({_show(value)}): {message}")
        else:
            cleaned.append(clean)
    repeated = []
    for index, value in enumerate(cleaned):
        if value in cleaned[:index] and value not in repeated:
            repeated.append(value)
    if repeated:
        errors.append("Values repeat: " + ", ".join(_show(v) for v in repeated) + ".")
    if errors:
        return None, errors
    return Param(name, values=tuple(cleaned)), []


def _parse_range(name: str, spec: dict[str, Any], base: dict[str, Any]) -> tuple[Param | None, list[str]]:
    field_spec = FIELDS[name]
    if field_spec.kind == "choice":
        example = json.dumps({"values": list(field_spec.choices[:2])})
        return None, [f"{name} is a choice field: list its options as values, e.g. {example}."]
    if field_spec.kind == "int_list":
        return None, ['hidden_layers takes values, a list of layer lists, e.g. {"values": [[64], [128], [256, 128]]}.']
    errors: list[str] = []
    expected = "int" if field_spec.kind == "int" else "float"
    kind = spec.get("type", expected)
    if kind not in ("int", "float"):
        errors.append(f'type must be "int" or "float", got {_show(kind)}.')
    elif kind != expected:
        errors.append(f'{name} is {"an integer" if expected == "int" else "a real-valued"} field, '
                      f'so type must be "{expected}".')
    scale_given = "scale" in spec
    scale = spec.get("scale", field_spec.scale)
    if scale not in ("linear", "log"):
        errors.append(f'scale must be "linear" or "log", got {_show(scale)}.')
        scale = "linear"
    bounds: dict[str, Any] = {}
    for key in ("low", "high"):
        if key not in spec:
            errors.append(f"{key} is missing.")
            continue
        value = spec[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            errors.append(f"{key} must be a number, got {_show(value)}.")
            continue
        try:
            finite = math.isfinite(value)
        except OverflowError:
            finite = False
        if not finite:
            errors.append(f"{key} must be a finite number.")
            continue
        if expected == "int" and float(value) != int(value):
            errors.append(f"{key} must be a whole number ({name} is an integer field), got {value:g}.")
            continue
        clean, message = _clean_value(name, value, base)
        if message:
            errors.append(f"{key}: {message}")
        else:
            bounds[key] = clean
    low, high = bounds.get("low"), bounds.get("high")
    if low is not None and high is not None and low >= high:
        errors.append(f'low ({_fmt(low)}) must be below high ({_fmt(high)}); for one value use '
                      f'{{"values": [{_fmt(low)}]}}.')
    if scale == "log" and low is not None and low <= 0:
        if scale_given:
            errors.append(f"A log scale needs low > 0, got {_fmt(low)}.")
        else:
            scale = "linear"  # the field's usual log scale, but this range starts at 0
    if errors:
        return None, errors
    return Param(name, low=low, high=high, log=scale == "log", is_int=expected == "int"), []


def parse_param(name: Any, spec: Any, base: dict[str, Any]) -> tuple[Param | None, list[str]]:
    """One entry of a space: (Param, []) or (None, [messages])."""
    if not isinstance(name, str) or name not in FIELDS:
        return None, [f"Unknown field. Known fields: {', '.join(FIELDS)}."]
    if not isinstance(spec, dict):
        return None, ['Must be an object: {"values": [...]} or {"low": x, "high": y, "scale": "log"}.']
    unknown = [key for key in spec if key not in SPEC_KEYS]
    if unknown:
        return None, [f"Unknown key {', '.join(_show(k) for k in unknown)}; use values, or low and high "
                      f"with optional scale (linear, log) and type (int, float)."]
    if "values" in spec:
        if any(key in spec for key in RANGE_KEYS):
            return None, ["Give either values or a low/high range, not both."]
        return _parse_values(name, spec, base)
    if "low" in spec or "high" in spec:
        return _parse_range(name, spec, base)
    return None, ['Give "values": [...] or a "low"/"high" range.']


def parse_space(space: Any, base: dict[str, Any]) -> tuple[dict[str, Param], dict[str, list[str]] | list[str]]:
    """Every param of `space` in FIELDS order, and the errors ({field: [messages]}, or a list
    when the space as a whole is wrong)."""
    if not isinstance(space, dict):
        return {}, ['Must be an object mapping field names to {"values": [...]} or {"low": x, "high": y}.']
    if not space:
        return {}, ["Give at least one field to vary."]
    params: dict[str, Param] = {}
    errors: dict[str, list[str]] = {}
    for name, spec in space.items():
        param, messages = parse_param(name, spec, base)
        if messages:
            errors[str(name)] = messages
        else:
            params[name] = param
    ordered = {name: params[name] for name in FIELDS if name in params}
    if not errors:
        errors = _corner_errors(ordered, base)
    return ordered, errors


def _corner_errors(params: dict[str, Param], base: dict[str, Any]) -> dict[str, list[str]]:
    """Cross-field errors (warm-up vs epochs) of the extreme combinations, when few enough."""
    candidates = []
    for param in params.values():
        if param.values is not None:
            values = list(param.values)
            if len(values) > 3 and param.is_numeric:
                values = [min(values), max(values)]
            candidates.append(values[:3])
        else:
            candidates.append([param.low, param.high])
    if math.prod(len(c) for c in candidates) > MAX_CORNER_CHECKS:
        return {}
    errors: dict[str, list[str]] = {}
    for combo in itertools.product(*candidates):
        changes = dict(zip(params, combo))
        try:
            TrainingConfig.from_dict({**base, **changes})
        except ConfigError as exc:
            for name, messages in exc.errors.items():
                where = name if name in params else next(iter(params))
                if where not in errors:
                    shown = ", ".join(f"{k}={_fmt(v)}" for k, v in changes.items())
                    errors[where] = [f"With {shown}: {' '.join(messages)}"]
    return errors


def grid_size(params: dict[str, Param]) -> int | None:
    """Points in the grid, or None if some param is a range."""
    if any(p.values is None for p in params.values()):
        return None
    return math.prod(len(p.values) for p in params.values())


# --------------------------------------------------------------------------- validating a request


@dataclass(frozen=True)
class SweepPlan:
    """A validated sweep request, ready to store."""

    name: str
    base_config: dict[str, Any]
    space: dict[str, Any]
    params: dict[str, Param]
    strategy: str
    budget: int
    parallelism: int
    pruner: str
    second_objective: str
    seed: int
    warm_start: bool


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_sweep(*, name: Any = "", base_config: Any = None, space: Any = None, strategy: Any = "tpe",
                   budget: Any = None, parallelism: Any = DEFAULT_PARALLELISM, pruner: Any = "none",
                   second_objective: Any = "none", seed: Any = None, warm_start: Any = False) -> SweepPlan:
    """Check every input at once; raise SweepSpecError listing all problems."""
    errors: dict[str, Any] = {}
    if name is None:
        name = ""
    if not isinstance(name, str):
        errors["name"] = ["Must be a string."]
    elif len(name) > 200:
        errors["name"] = ["At most 200 characters."]

    base: dict[str, Any] = TrainingConfig().to_dict()
    if base_config is not None and not isinstance(base_config, dict):
        errors["base_config"] = ["Must be a JSON object mapping hyperparameter names to values."]
    else:
        try:
            base = TrainingConfig.from_dict(base_config or {}).to_dict()
        except ConfigError as exc:
            errors["base_config"] = exc.errors

    if strategy not in STRATEGIES:
        errors["strategy"] = [f"Must be one of {', '.join(STRATEGIES)}; got {_show(strategy)}."]
    if pruner not in PRUNERS:
        errors["pruner"] = [f"Must be one of {', '.join(PRUNERS)}; got {_show(pruner)}."]
    if second_objective not in SECOND_OBJECTIVES:
        errors["second_objective"] = [f"Must be one of {', '.join(SECOND_OBJECTIVES)}; got {_show(second_objective)}."]

    params, space_errors = parse_space(space, base)
    if space_errors:
        errors["space"] = space_errors
    size = grid_size(params) if params else None
    if strategy == "grid" and isinstance(space, dict):
        ranged = {name: ['A grid sweep needs a list of values; use random, tpe or qmc for a low/high range.']
                  for name, param in params.items() if param.is_range}
        if ranged:
            field_errors = errors.setdefault("space", {})
            if isinstance(field_errors, dict):
                for key, messages in ranged.items():
                    field_errors.setdefault(key, []).extend(messages)
        elif size is not None and size > MAX_GRID_POINTS and not space_errors:
            errors["strategy"] = [f"The grid has {size:,} points; at most {MAX_GRID_POINTS:,}. "
                                  "Use random, tpe or qmc, or fewer values."]

    if budget is None:
        budget = min(size, MAX_BUDGET) if strategy == "grid" and size else DEFAULT_BUDGET
    if not _is_int(budget) or not MIN_BUDGET <= budget <= MAX_BUDGET:
        errors["budget"] = [f"Must be a whole number from {MIN_BUDGET} to {MAX_BUDGET}, got {_show(budget)}."]
    elif strategy == "grid" and size:
        budget = min(budget, size)  # a grid sweep runs its grid (or a seeded subset of it)
    if not _is_int(parallelism) or not MIN_PARALLELISM <= parallelism <= MAX_PARALLELISM:
        errors["parallelism"] = [f"Must be a whole number from {MIN_PARALLELISM} to {MAX_PARALLELISM}, "
                                 f"got {_show(parallelism)}."]
    if seed is None:
        seed = secrets.randbelow(MAX_SEED + 1)
    elif not _is_int(seed) or not 0 <= seed <= MAX_SEED:
        errors["seed"] = [f"Must be a whole number from 0 to {MAX_SEED}, got {_show(seed)}."]
    if not isinstance(warm_start, bool):
        errors["warm_start"] = ["Must be true or false."]
    elif warm_start and strategy == "grid":
        errors["warm_start"] = ["A grid sweep runs every point of its grid; warm start applies to random, tpe "
                                "and qmc."]
    if errors:
        raise SweepSpecError(errors)
    return SweepPlan(name=name, base_config=base, space={n: p.to_json() for n, p in params.items()},
                     params=params, strategy=strategy, budget=budget, parallelism=parallelism, pruner=pruner,
                     second_objective=second_objective, seed=seed, warm_start=warm_start)


# --------------------------------------------------------------------------- trials as plain data


@dataclass
class TrialRecord:
    """One trial as the coordinator sees it (built by selectors from an Experiment row)."""

    number: int  # trial_number (1-based); 0 for a warm-start import
    experiment_id: int
    status: str
    config: dict[str, Any]
    best_val_accuracy: float | None = None
    test_accuracy: float | None = None
    epochs_done: int = 0
    intermediate: dict[int, float] = field(default_factory=dict)  # epoch -> val accuracy
    seconds: float = 0.0  # training time: the sum of its epochs' seconds
    message: str = ""
    warm: bool = False

    @property
    def parameters(self) -> int | None:
        hidden = self.config.get("hidden_layers")
        if not isinstance(hidden, (list, tuple)) or not all(_is_int(h) for h in hidden):
            return None
        sizes = (784, *hidden, 10)
        return sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))

    @property
    def value(self) -> float | None:
        """The objective: best validation accuracy of a usable run; 0 for a diverged one."""
        if self.status == "succeeded":
            return self.best_val_accuracy
        if self.status == "diverged":
            return 0.0
        return None


@dataclass(frozen=True)
class SweepSpec:
    """What the coordinator needs of a Sweep row."""

    strategy: str
    params: dict[str, Param]
    base_config: dict[str, Any]
    budget: int
    seed: int
    pruner: str = "none"
    second_objective: str = "none"

    @classmethod
    def from_row(cls, sweep) -> SweepSpec:
        params, errors = parse_space(sweep.space, sweep.base_config)
        if errors:
            raise SweepSpecError({"space": errors})
        return cls(strategy=sweep.strategy, params=params, base_config=sweep.base_config, budget=sweep.budget,
                   seed=sweep.seed, pruner=sweep.pruner, second_objective=sweep.second_objective)

    @property
    def multi_objective(self) -> bool:
        return self.second_objective != "none"

    def distributions(self) -> dict[str, BaseDistribution]:
        return {name: param.distribution() for name, param in self.params.items()}

    @property
    def effective_budget(self) -> int:
        size = grid_size(self.params) if self.strategy == "grid" else None
        return min(self.budget, size) if size else self.budget

    def params_of(self, config: dict[str, Any]) -> dict[str, Any]:
        """The trial's values of the varied fields (as in its config)."""
        return {name: config.get(name) for name in self.params}


def warm_start_matches(spec: SweepSpec, config: dict[str, Any]) -> bool:
    """An earlier run fits the sweep: same config outside the space, values inside it."""
    for name, base_value in spec.base_config.items():
        if name in spec.params:
            continue
        if not same_value(config.get(name, FIELDS[name].default if name in FIELDS else None), base_value):
            return False
    return all(name in config and param.contains(config[name]) for name, param in spec.params.items())


def second_value(spec: SweepSpec, record: TrialRecord) -> float | None:
    if spec.second_objective == "seconds":
        return float(record.seconds)
    if spec.second_objective == "parameters":
        parameters = record.parameters
        return float(parameters) if parameters is not None else None
    return None


# --------------------------------------------------------------------------- rebuilding the study


def _frozen(spec: SweepSpec, record: TrialRecord, *, directions: int, distributions: dict[str, BaseDistribution],
            rungs: bool = False) -> optuna.trial.FrozenTrial:
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
    state = {"succeeded": TrialState.COMPLETE, "diverged": TrialState.COMPLETE, "pruned": TrialState.PRUNED,
             "queued": TrialState.RUNNING, "running": TrialState.RUNNING}.get(record.status, TrialState.FAIL)
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
    system_attrs = {}
    if rungs:  # ASHA's records: every trial reports each epoch, so it reached rung r at its step
        for rung, step in enumerate(_rung_steps(max(intermediate, default=0))):
            if step in intermediate:
                system_attrs[f"completed_rung_{rung}"] = intermediate[step]
    return optuna.trial.create_trial(
        state=state, values=values if state == TrialState.COMPLETE else None,
        params=params or {}, distributions={k: distributions[k] for k in (params or {})},
        intermediate_values=intermediate, user_attrs=attrs, system_attrs=system_attrs)


def build_study(spec: SweepSpec, records: Iterable[TrialRecord], *, warm: Iterable[TrialRecord] = (),
                multi_objective: bool | None = None, pruner: optuna.pruners.BasePruner | None = None,
                pad: bool = True, rungs: bool = False) -> optuna.Study:
    """An in-memory study holding `warm` imports first, then the sweep's trials by number.

    With `pad`, missing trial numbers (a trial row deleted by its owner) become FAIL
    placeholders, so Optuna's trial.number stays trial_number - 1 (GridSampler relies on it).
    """
    multi = spec.multi_objective if multi_objective is None else multi_objective
    directions = ["maximize", "minimize"] if multi else ["maximize"]
    study = optuna.create_study(directions=directions, sampler=optuna.samplers.RandomSampler(seed=spec.seed),
                                pruner=pruner)
    distributions = spec.distributions()
    for record in warm:
        if record.value is not None and record.status == "succeeded":
            study.add_trial(_frozen(spec, record, directions=len(directions), distributions=distributions,
                                    rungs=rungs))
    by_number = {r.number: r for r in records}
    last = max(by_number, default=0)
    numbers = range(1, last + 1) if pad else sorted(by_number)
    for number in numbers:
        record = by_number.get(number)
        if record is None:
            study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL, user_attrs={"placeholder": True}))
        else:
            study.add_trial(_frozen(spec, record, directions=len(directions), distributions=distributions,
                                    rungs=rungs))
    return study


def _derived_seed(seed: int, number: int) -> int:
    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


def _tpe_startup_trials(budget: int) -> int:
    """Random trials before TPE models the results: 10 for big budgets, fewer for small ones."""
    return min(10, max(3, budget // 4))


PRIMES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97)


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
        return SweepQMCSampler(seed=spec.seed, sample_id=number - 1, search_space=spec.distributions())
    return optuna.samplers.TPESampler(seed=_derived_seed(spec.seed, number), constant_liar=True, multivariate=True,
                                      n_startup_trials=_tpe_startup_trials(spec.budget))


class Asker:
    """Proposes the next trials of one sweep from one rebuilt study (one per fill call).

    Each asked trial stays in the study as RUNNING, so the next ask knows about it (TPE's
    constant liar, the grid's next point, the QMC position).
    """

    def __init__(self, spec: SweepSpec, records: Sequence[TrialRecord], warm: Sequence[TrialRecord] = ()):
        self.spec = spec
        with _optuna_lock, warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.study = build_study(spec, records, warm=warm if spec.strategy != "grid" else ())
        self._offset = len(self.study.trials) - max((r.number for r in records), default=0)
        self._distributions = spec.distributions()
        self._asked: dict[int, optuna.Trial] = {}

    def ask(self, number: int) -> dict[str, Any]:
        """The varied fields of trial `number` (config values, e.g. hidden_layers as a list)."""
        with _optuna_lock, warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            warnings.simplefilter("ignore", UserWarning)
            self.study.sampler = make_sampler(self.spec, number)
            expected = number - 1 + self._offset
            while len(self.study.trials) < expected:  # keep trial.number == trial_number - 1 (+ imports)
                self.study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL))
            trial = self.study.ask(self._distributions)
        self._asked[number] = trial
        return {name: param.decode(trial.params[name]) for name, param in self.spec.params.items()}

    def fail(self, number: int) -> None:
        """Trial `number` could not be created (e.g. an invalid combination): tell the study."""
        trial = self._asked.pop(number, None)
        if trial is not None:
            self.study.tell(trial, state=TrialState.FAIL)


# --------------------------------------------------------------------------- pruning


def make_pruner(name: str) -> optuna.pruners.BasePruner | None:
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=MEDIAN_STARTUP_TRIALS, n_warmup_steps=MEDIAN_WARMUP_STEPS)
    if name == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=ASHA_MIN_RESOURCE,
                                                      reduction_factor=ASHA_REDUCTION_FACTOR)
    return None


def _rung_steps(last_step: int) -> list[int]:
    steps, rung = [], 0
    while (step := ASHA_MIN_RESOURCE * ASHA_REDUCTION_FACTOR ** rung) <= last_step:
        steps.append(step)
        rung += 1
    return steps


def should_prune(spec: SweepSpec, records: Sequence[TrialRecord], current: TrialRecord, epoch: int, *,
                 warm: Sequence[TrialRecord] = ()) -> str:
    """Whether the running trial `current` should stop after `epoch`: the reason, or "".

    The study is rebuilt single-objective (Optuna's pruners do not take several), with
    the other trials' per-epoch validation accuracies as intermediate values and this
    trial as RUNNING with its epochs up to `epoch`; then the pruner decides. For ASHA,
    the rungs every trial has passed are re-derived from its epochs (a trial reports
    every epoch, so it reached rung r at epoch min_resource * factor**r).
    """
    pruner = make_pruner(spec.pruner)
    if pruner is None:
        return ""
    intermediate = {k: v for k, v in current.intermediate.items() if k <= epoch}
    if epoch not in intermediate:
        return ""
    others = [r for r in records if r.number != current.number]
    with _optuna_lock, warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study = build_study(spec, others, warm=warm, multi_objective=False, pruner=pruner, pad=False,
                            rungs=spec.pruner == "asha")
        passed = {}
        if spec.pruner == "asha":  # the rungs this trial was promoted through before this epoch
            passed = {f"completed_rung_{rung}": intermediate[step]
                      for rung, step in enumerate(_rung_steps(epoch - 1)) if step in intermediate}
        study.add_trial(optuna.trial.create_trial(state=TrialState.RUNNING, intermediate_values=intermediate,
                                                  user_attrs={"experiment_id": current.experiment_id},
                                                  system_attrs=passed))
        trial = study.get_trials(deepcopy=False)[-1]
        prune = pruner.prune(study, trial)
    if not prune:
        return ""
    best = max(intermediate.values())
    if spec.pruner == "median":
        at_step = [t.intermediate_values[epoch] for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                   if epoch in t.intermediate_values]
        median = float(np.median(at_step)) if at_step else float("nan")
        return (f"pruned at epoch {epoch} by the median pruner: val acc {best:.4f} < median {median:.4f} "
                f"of {len(at_step)} completed trials at that epoch")
    rung = max(0, len(_rung_steps(epoch)) - 1)
    return (f"pruned at epoch {epoch} by the ASHA pruner: val acc {intermediate[epoch]:.4f} is not in the top "
            f"1/{ASHA_REDUCTION_FACTOR} of the trials that reached rung {rung} (epoch {epoch})")


# --------------------------------------------------------------------------- analysis


def best_record(records: Iterable[TrialRecord]) -> TrialRecord | None:
    done = [r for r in records if r.status == "succeeded" and r.best_val_accuracy is not None and not r.warm]
    return max(done, key=lambda r: (r.best_val_accuracy, -r.number), default=None)


def best_so_far(records: Iterable[TrialRecord]) -> list[dict[str, Any]]:
    curve, best = [], None
    for record in sorted(records, key=lambda r: r.number):
        if record.warm or record.status != "succeeded" or record.best_val_accuracy is None:
            continue
        best = record.best_val_accuracy if best is None else max(best, record.best_val_accuracy)
        curve.append({"trial_number": record.number, "value": best})
    return curve


def pareto_front(spec: SweepSpec, records: Iterable[TrialRecord]) -> list[int]:
    """Experiment ids of the non-dominated succeeded trials (max accuracy, min second), best accuracy first."""
    done = [r for r in records if not r.warm and r.status == "succeeded" and r.best_val_accuracy is not None
            and second_value(spec, r) is not None]
    if not spec.multi_objective or not done:
        return []
    with _optuna_lock, warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study = optuna.create_study(directions=["maximize", "minimize"])
        for record in done:
            study.add_trial(optuna.trial.create_trial(
                values=[record.best_val_accuracy, second_value(spec, record)],
                user_attrs={"experiment_id": record.experiment_id, "trial_number": record.number}))
        front = study.best_trials
    front.sort(key=lambda t: (-t.values[0], t.values[1], t.user_attrs["trial_number"]))
    return [t.user_attrs["experiment_id"] for t in front]


def importance(spec: SweepSpec, records: Iterable[TrialRecord]) -> dict[str, float] | None:
    """Each varied field's share of the accuracy's variation (PED-ANOVA), once there is enough data.

    optuna's default fANOVA (and mean decrease in impurity) need scikit-learn, which this
    project does not install; PED-ANOVA needs nothing beyond NumPy.
    """
    varied = {name: p for name, p in spec.params.items() if p.size is None or p.size > 1}
    done = [r for r in records if not r.warm and r.status == "succeeded" and r.best_val_accuracy is not None]
    if len(varied) < 2 or len(done) < IMPORTANCE_MIN_TRIALS:
        return None
    try:
        with _optuna_lock, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            study = build_study(spec, done, multi_objective=False, pad=False)
            scores = optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.PedAnovaImportanceEvaluator(), params=list(varied))
    except Exception:  # noqa: BLE001 - importance is a hint; never break the sweep's page
        return None
    return {name: round(float(scores.get(name, 0.0)), 4) for name in varied}


def edge_warnings(spec: SweepSpec, records: Iterable[TrialRecord]) -> list[str]:
    """Ranges whose best trials all sit at one end: the optimum may lie outside the range."""
    done = sorted((r for r in records if not r.warm and r.status == "succeeded" and r.best_val_accuracy is not None),
                  key=lambda r: (-r.best_val_accuracy, r.number))[:EDGE_TOP_TRIALS]
    if len(done) < EDGE_TOP_TRIALS:
        return []
    messages = []
    for name, param in spec.params.items():
        if not param.is_range:
            continue
        values = [r.config.get(name) for r in done]
        if not all(_is_number(v) and param.contains(v) for v in values):
            continue
        positions = [param.position(v) for v in values]
        limits = FIELDS[name]
        if all(p >= 1 - EDGE_FRACTION for p in positions):
            at_limit = limits.maximum is not None and param.high >= limits.maximum
            messages.append(f"widen {name} above {_fmt(param.high)}: the best {EDGE_TOP_TRIALS} trials all sit "
                            f"in the top {EDGE_FRACTION:.0%} of its range"
                            + (f" (but {_fmt(limits.maximum)} is the field's maximum)" if at_limit else ""))
        elif all(p <= EDGE_FRACTION for p in positions):
            at_limit = limits.minimum is not None and param.low <= limits.minimum
            messages.append(f"widen {name} below {_fmt(param.low)}: the best {EDGE_TOP_TRIALS} trials all sit "
                            f"in the bottom {EDGE_FRACTION:.0%} of its range"
                            + (f" (but {_fmt(limits.minimum)} is the field's minimum)" if at_limit else ""))
    return messages


def analyse(spec: SweepSpec, records: Sequence[TrialRecord]) -> dict[str, Any]:
    best = best_record(records)
    return {
        "best_trial": best.experiment_id if best else None,
        "best_value": best.best_val_accuracy if best else None,
        "pareto_front": pareto_front(spec, records),
        "best_so_far": best_so_far(records),
        "importance": importance(spec, records),
        "warnings": edge_warnings(spec, records),
    }
