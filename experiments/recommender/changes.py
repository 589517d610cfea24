"""Config handling: the run's config as the rules read it (`config_view`), and the changes they
propose made safe to apply (`valid_changes`)."""

from __future__ import annotations

import math
from typing import Any

from training.config import FIELDS, ConfigError, TrainingConfig

from .curves import to_float
from .formatting import round_sig


def config_view(config: Any) -> dict[str, Any]:
    """The run's config as a complete, valid dict for the rules to read.

    Missing fields take their defaults; an invalid field falls back to its default
    (rules must still run on odd stored data; `valid_changes` checks the real one).
    """
    data = dict(config) if isinstance(config, dict) else {}
    data = {k: v for k, v in data.items() if k in FIELDS}
    for _ in range(len(FIELDS) + 1):
        try:
            return TrainingConfig.from_dict(data).to_dict()
        except ConfigError as exc:
            bad = [name for name in exc.errors if name in data]
            if not bad:
                break
            for name in bad:
                data.pop(name)
    return TrainingConfig().to_dict()


_DROP = object()


def _clamp(name: str, value: Any) -> Any:
    """`value` coerced into field `name`'s type and range, or _DROP when impossible."""
    spec = FIELDS[name]
    if value is None:
        return None if spec.nullable else _DROP
    if spec.kind == "choice":
        return value if value in spec.choices else _DROP
    if spec.kind == "int_list":
        if not isinstance(value, (list, tuple)) or not value:
            return _DROP
        sizes = []
        for item in value:
            number = to_float(item)
            if not math.isfinite(number):
                return _DROP
            sizes.append(int(min(max(round(number), spec.minimum), spec.maximum)))
        if spec.max_items is not None and len(sizes) > spec.max_items:
            return _DROP
        return sizes
    number = to_float(value)
    if not math.isfinite(number):
        return _DROP
    if spec.maximum is not None:
        number = min(number, spec.maximum)
    if spec.minimum is not None:
        if spec.exclusive_minimum and number <= spec.minimum:
            return _DROP
        number = max(number, spec.minimum)
    if spec.kind == "int":
        return int(round(number))
    return round_sig(number, 3)


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        try:
            return [int(x) for x in a] == [int(x) for x in b]
        except (TypeError, ValueError):
            return False
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-15)
    except (TypeError, ValueError):
        return False


def valid_changes(config: dict, changes: dict) -> dict:
    """`changes` made safe to apply to `config`.

    Unknown fields are dropped; values are coerced and clamped into their field's range
    (a learning rate that would reach 0 is dropped); keys equal to the current value are
    dropped (no no-op advice); finally TrainingConfig.from_dict({**config, **result}) must
    succeed: keys it rejects are dropped (for the warm-up < epochs rule, the epochs change)
    until it does, or {} when the base config itself is invalid.
    """
    base = dict(config) if isinstance(config, dict) else {}
    current = config_view(base)
    result: dict[str, Any] = {}
    for name, value in (changes or {}).items():
        if name not in FIELDS:
            continue
        value = _clamp(name, value)
        if value is _DROP:
            continue
        if _same(base.get(name, current.get(name)), value):
            continue
        result[name] = value
    while True:
        try:
            TrainingConfig.from_dict({**base, **result})
            return result
        except ConfigError as exc:
            bad = [name for name in exc.errors if name in result]
            if not bad and "warmup_epochs" in exc.errors and "epochs" in result:
                bad = ["epochs"]
            if not bad:
                return {}
            for name in bad:
                result.pop(name)
