"""Search spaces and sweep requests: parse, validate, normalise.

A space maps training.config fields to either a list of values or a low/high range, e.g.
{"learning_rate": {"low": 1e-4, "high": 0.1, "scale": "log"}, "optimizer": {"values": ["adam", "sgd"]}}.
Every value is checked with training.config (alone and, for few enough combinations, at the
extremes together), and `validate_sweep` reports every problem of a request at once in a
SweepSpecError. No Optuna here: study.py turns a Param into an Optuna distribution.
"""

from __future__ import annotations

import itertools
import json
import math
import secrets
from dataclasses import dataclass
from typing import Any

from training.config import (
    FIELDS,
    ConfigError,
    TrainingConfig,
    show_value,  # values in messages shown as training.config shows them
)

STRATEGIES = ("grid", "random", "tpe", "qmc")
PRUNERS = ("none", "median", "asha")
SECOND_OBJECTIVES = ("none", "seconds", "parameters")
MIN_BUDGET, MAX_BUDGET, DEFAULT_BUDGET = 1, 200, 20
MIN_PARALLELISM, MAX_PARALLELISM, DEFAULT_PARALLELISM = 1, 8, 2
MAX_SEED = 2**31 - 1
MAX_VALUES = 50  # per values list
MAX_GRID_POINTS = 10_000
MAX_CORNER_CHECKS = 256  # combinations of extreme values checked for cross-field errors
SPEC_KEYS = ("values", "low", "high", "scale", "type")
RANGE_KEYS = ("low", "high", "scale", "type")


class SweepSpecError(ValueError):
    """An invalid sweep request; `errors` maps each bad input to its messages, e.g.
    {"space": {"learning_rate": ["..."]}, "budget": ["..."]}."""

    def __init__(self, errors: dict[str, Any]):
        self.errors = errors
        super().__init__(json.dumps(errors))


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def same_value(a: Any, b: Any) -> bool:
    """Config values equal as the user means it: 1 == 1.0, [64] == (64,), True != 1."""
    if isinstance(a, tuple):
        a = list(a)
    if isinstance(b, tuple):
        b = list(b)
    if is_number(a) and is_number(b):
        return float(a) == float(b)
    return type(a) is type(b) and a == b


def format_value(value: Any) -> str:
    """A value in a message: floats short (1e-04, 0.5), anything else as JSON."""
    return f"{value:g}" if isinstance(value, float) else show_value(value)


# --------------------------------------------------------------------------- one varied field


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
        return self.is_range or all(is_number(v) for v in self.values or ())

    @property
    def size(self) -> int | None:
        """Number of distinct values (None for a continuous range)."""
        if self.values is not None:
            return len(self.values)
        if self.is_int:
            return int(self.high) - int(self.low) + 1
        return None

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
        if not is_number(value):
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


# --------------------------------------------------------------------------- parsing a space


class _Rejected(Exception):
    """One value of a space entry is unusable; the message is shown to the user as it is."""


def _field_messages(exc: ConfigError, name: str) -> str:
    if name in exc.errors:
        return " ".join(exc.errors[name])
    return " ".join(f"{other}: {' '.join(messages)}" for other, messages in exc.errors.items())


def _clean_value(name: str, value: Any, base: dict[str, Any], *, label: str) -> Any:
    """The normalised value of `name` (validated with the rest of `base`); _Rejected("<label>: why") if invalid."""
    try:
        config = TrainingConfig.from_dict({**base, name: value})
    except ConfigError as exc:
        raise _Rejected(f"{label}: {_field_messages(exc, name)}") from None
    except (TypeError, ValueError, OverflowError) as exc:  # never let a strange value escape
        raise _Rejected(f"{label}: Invalid value: {exc}.") from None
    return config.to_dict()[name]


def _clean_listed_value(name: str, index: int, value: Any, base: dict[str, Any]) -> Any:
    """Value number `index` of a values list, normalised."""
    if FIELDS[name].kind == "int_list" and not isinstance(value, list):
        raise _Rejected(f"Value {index} ({show_value(value)}) must be a list of layer sizes such as [128] "
                        "or [256, 128].")
    if FIELDS[name].kind != "int_list" and isinstance(value, (list, dict)):
        raise _Rejected(f"Value {index} must be a single value, got {show_value(value)}.")
    return _clean_value(name, value, base, label=f"Value {index} ({show_value(value)})")


def _clean_bound(name: str, key: str, value: Any, base: dict[str, Any]) -> Any:
    """The `key` ("low" or "high") of a range, normalised."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Rejected(f"{key} must be a number, got {show_value(value)}.")
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an int too large for a float (JSON allows any size)
        finite = False
    if not finite:
        raise _Rejected(f"{key} must be a finite number.")
    if FIELDS[name].kind == "int" and float(value) != int(value):
        raise _Rejected(f"{key} must be a whole number ({name} is an integer field), got {value:g}.")
    return _clean_value(name, value, base, label=key)


def _parse_values(name: str, spec: dict[str, Any], base: dict[str, Any]) -> tuple[Param | None, list[str]]:
    values = spec["values"]
    if not isinstance(values, list) or not values:
        return None, ["values must be a non-empty list."]
    if len(values) > MAX_VALUES:
        return None, [f"At most {MAX_VALUES} values, got {len(values)}."]
    errors: list[str] = []
    cleaned: list[Any] = []
    for index, value in enumerate(values, start=1):
        try:
            cleaned.append(_clean_listed_value(name, index, value, base))
        except _Rejected as exc:
            errors.append(str(exc))
    repeated = []
    for index, value in enumerate(cleaned):
        if value in cleaned[:index] and value not in repeated:
            repeated.append(value)
    if repeated:
        errors.append("Values repeat: " + ", ".join(show_value(v) for v in repeated) + ".")
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
        errors.append(f'type must be "int" or "float", got {show_value(kind)}.')
    elif kind != expected:
        errors.append(f'{name} is {"an integer" if expected == "int" else "a real-valued"} field, '
                      f'so type must be "{expected}".')
    scale_given = "scale" in spec
    scale = spec.get("scale", field_spec.scale)
    if scale not in ("linear", "log"):
        errors.append(f'scale must be "linear" or "log", got {show_value(scale)}.')
        scale = "linear"
    bounds: dict[str, Any] = {}
    for key in ("low", "high"):
        if key not in spec:
            errors.append(f"{key} is missing.")
            continue
        try:
            bounds[key] = _clean_bound(name, key, spec[key], base)
        except _Rejected as exc:
            errors.append(str(exc))
    low, high = bounds.get("low"), bounds.get("high")
    if low is not None and high is not None and low >= high:
        errors.append(f'low ({format_value(low)}) must be below high ({format_value(high)}); for one value use '
                      f'{{"values": [{format_value(low)}]}}.')
    if scale == "log" and low is not None and low <= 0:
        if scale_given:
            errors.append(f"A log scale needs low > 0, got {format_value(low)}.")
        else:
            scale = "linear"  # the field's usual log scale, but this range starts at 0
    if errors:
        return None, errors
    return Param(name, low=low, high=high, log=scale == "log", is_int=expected == "int"), []


def parse_param_spec(name: Any, spec: Any, base: dict[str, Any]) -> tuple[Param | None, list[str]]:
    """One entry of a space, `name: spec`: (Param, []) or (None, [messages])."""
    if not isinstance(name, str) or name not in FIELDS:
        return None, [f"Unknown field. Known fields: {', '.join(FIELDS)}."]
    if not isinstance(spec, dict):
        return None, ['Must be an object: {"values": [...]} or {"low": x, "high": y, "scale": "log"}.']
    unknown = [key for key in spec if key not in SPEC_KEYS]
    if unknown:
        return None, [f"Unknown key {', '.join(show_value(k) for k in unknown)}; use values, or low and high "
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
        param, messages = parse_param_spec(name, spec, base)
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
                    shown = ", ".join(f"{k}={format_value(v)}" for k, v in changes.items())
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
    diagnostic_pruning: bool = False


def budget_problem(budget: Any, *, current: int | None = None, grid: int | None = None) -> str:
    """Why `budget` cannot be a sweep's budget, or "" if it can: the one rule for creating a
    sweep and for extending one (then it must exceed the `current` budget, and a grid sweep
    cannot grow past its `grid` points)."""
    lower = MIN_BUDGET if current is None else current + 1
    if not is_int(budget) or not lower <= budget <= MAX_BUDGET:
        if current is None:
            return f"Must be a whole number from {MIN_BUDGET} to {MAX_BUDGET}, got {show_value(budget)}."
        if is_int(budget) and budget > MAX_BUDGET:
            return f"At most {MAX_BUDGET} trials."
        return f"Must be a whole number above the current budget ({current}), got {show_value(budget)}."
    if grid is not None and budget > grid:
        return f"A grid sweep runs at most its {grid} grid points."
    return ""


def validate_sweep(*, name: Any = "", base_config: Any = None, space: Any = None, strategy: Any = "tpe",
                   budget: Any = None, parallelism: Any = DEFAULT_PARALLELISM, pruner: Any = "none",
                   second_objective: Any = "none", seed: Any = None, warm_start: Any = False,
                   diagnostic_pruning: Any = False) -> SweepPlan:
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
        errors["strategy"] = [f"Must be one of {', '.join(STRATEGIES)}; got {show_value(strategy)}."]
    if pruner not in PRUNERS:
        errors["pruner"] = [f"Must be one of {', '.join(PRUNERS)}; got {show_value(pruner)}."]
    if second_objective not in SECOND_OBJECTIVES:
        errors["second_objective"] = [f"Must be one of {', '.join(SECOND_OBJECTIVES)}; "
                                      f"got {show_value(second_objective)}."]

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
    if problem := budget_problem(budget):
        errors["budget"] = [problem]
    elif strategy == "grid" and size:
        budget = min(budget, size)  # a grid sweep runs its grid (or a seeded subset of it)
    if not is_int(parallelism) or not MIN_PARALLELISM <= parallelism <= MAX_PARALLELISM:
        errors["parallelism"] = [f"Must be a whole number from {MIN_PARALLELISM} to {MAX_PARALLELISM}, "
                                 f"got {show_value(parallelism)}."]
    if seed is None:
        seed = secrets.randbelow(MAX_SEED + 1)
    elif not is_int(seed) or not 0 <= seed <= MAX_SEED:
        errors["seed"] = [f"Must be a whole number from 0 to {MAX_SEED}, got {show_value(seed)}."]
    if not isinstance(diagnostic_pruning, bool):
        errors["diagnostic_pruning"] = [f"Must be true or false, got {show_value(diagnostic_pruning)}."]
    if not isinstance(warm_start, bool):
        errors["warm_start"] = ["Must be true or false."]
    elif warm_start and strategy == "grid":
        errors["warm_start"] = ["A grid sweep runs every point of its grid; warm start applies to random, tpe "
                                "and qmc."]
    if errors:
        raise SweepSpecError(errors)
    return SweepPlan(name=name, base_config=base, space={n: p.to_json() for n, p in params.items()},
                     params=params, strategy=strategy, budget=budget, parallelism=parallelism, pruner=pruner,
                     second_objective=second_objective, seed=seed, warm_start=warm_start,
                     diagnostic_pruning=diagnostic_pruning)
