"""The single source of truth for every hyperparameter of a training run.

`FIELDS` describes each field (type, default, range, help text); `TrainingConfig`
is the validated, immutable value object built from it. The web sliders, the
REST API, the CLI flags and the sweep search spaces are all generated from
`config_schema()`, so a field added here appears everywhere.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

ACTIVATIONS = ("relu", "leaky_relu", "tanh")
OPTIMIZERS = ("sgd", "momentum", "rmsprop", "adam")
LR_SCHEDULES = ("constant", "step", "exponential", "cosine")


@dataclass(frozen=True)
class FieldSpec:
    """How one hyperparameter is typed, bounded, defaulted and explained.

    kind: "int", "float", "choice" or "int_list".
    minimum/maximum: inclusive bounds, except when `exclusive_minimum` is set.
    scale: "log" where the useful range spans decades (the UI uses log sliders).
    """

    name: str
    kind: str
    default: Any
    help: str
    label: str
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    choices: tuple[str, ...] = ()
    scale: str = "linear"
    step: float | None = None
    nullable: bool = False
    min_items: int | None = None
    max_items: int | None = None
    # Upper end of the slider when the valid range is unbounded or far wider
    # than anything useful (e.g. l2 >= 0, seed).
    ui_maximum: float | None = None
    ui_minimum: float | None = None
    group: str = "training"

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["type"] = data.pop("kind")
        data["choices"] = list(self.choices)
        return data


FIELDS: dict[str, FieldSpec] = {
    spec.name: spec
    for spec in (
        FieldSpec(
            "hidden_layers", "int_list", (256, 128),
            "Units in each hidden layer, input side first (1 to 3 layers).",
            "Hidden layers", minimum=1, maximum=2048, min_items=1, max_items=3,
            ui_maximum=1024, group="architecture",
        ),
        FieldSpec(
            "activation", "choice", "relu",
            "Non-linearity after each hidden layer. He initialisation is used for "
            "relu/leaky_relu, Xavier for tanh.",
            "Activation", choices=ACTIVATIONS, group="architecture",
        ),
        FieldSpec(
            "optimizer", "choice", "adam",
            "Update rule: plain SGD, SGD with momentum, RMSprop or Adam.",
            "Optimizer", choices=OPTIMIZERS, group="optimizer",
        ),
        FieldSpec(
            "learning_rate", "float", 0.001,
            "Step size of each update. Too high diverges or oscillates, too low "
            "barely moves the loss.",
            "Learning rate", minimum=0.0, maximum=10.0, exclusive_minimum=True,
            scale="log", ui_minimum=1e-5, ui_maximum=1.0, group="optimizer",
        ),
        FieldSpec(
            "momentum", "float", 0.9,
            "Velocity decay of the momentum optimizer (ignored by the others).",
            "Momentum", minimum=0.0, maximum=0.99, step=0.01, group="optimizer",
        ),
        FieldSpec(
            "batch_size", "int", 128,
            "Samples per gradient step.",
            "Batch size", minimum=1, maximum=4096, scale="log", ui_minimum=8, ui_maximum=1024, group="optimizer",
        ),
        FieldSpec(
            "epochs", "int", 30,
            "Full passes over the training split.",
            "Epochs", minimum=1, maximum=200, ui_maximum=100, group="training",
        ),
        FieldSpec(
            "l2", "float", 0.0,
            "L2 weight decay coefficient added to the weight gradients (not biases).",
            "L2 regularisation", minimum=0.0, scale="log", ui_minimum=1e-6,
            ui_maximum=0.1, group="regularisation",
        ),
        FieldSpec(
            "dropout", "float", 0.2,
            "Probability of zeroing each hidden unit during training (inverted dropout).",
            "Dropout", minimum=0.0, maximum=0.9, step=0.05, group="regularisation",
        ),
        FieldSpec(
            "lr_schedule", "choice", "cosine",
            "How the learning rate changes over the run: constant; step (x0.1 at 50% "
            "and again at 75% of the epochs); exponential (x lr_decay every epoch); "
            "cosine (smoothly to zero).",
            "LR schedule", choices=LR_SCHEDULES, group="schedule",
        ),
        FieldSpec(
            "lr_decay", "float", 0.95,
            "Per-epoch factor of the exponential schedule.",
            "LR decay", minimum=0.5, maximum=1.0, step=0.01, group="schedule",
        ),
        FieldSpec(
            "warmup_epochs", "int", 0,
            "Epochs of linear learning-rate warm-up from zero (0 = off).",
            "Warm-up epochs", minimum=0, maximum=50, ui_maximum=10, group="schedule",
        ),
        FieldSpec(
            "gradient_clip", "float", 0.0,
            "Maximum global gradient norm; larger gradients are rescaled (0 = off).",
            "Gradient clip", minimum=0.0, maximum=1000.0, ui_maximum=20.0, step=0.1,
            group="optimizer",
        ),
        FieldSpec(
            "early_stopping_patience", "int", 0,
            "Stop after this many epochs without a better validation accuracy and "
            "restore the best weights (0 = off).",
            "Early-stopping patience", minimum=0, maximum=200, ui_maximum=20,
            group="training",
        ),
        FieldSpec(
            "validation_fraction", "float", 0.1,
            "Share of the training images held out (stratified) for validation.",
            "Validation fraction", minimum=0.05, maximum=0.5, step=0.01, group="data",
        ),
        FieldSpec(
            "train_size", "int", None,
            "Use a stratified subset of this many training images (train + validation) "
            "for quick runs; empty = all 60 000.",
            "Training subset", minimum=100, maximum=60000, nullable=True, step=100,
            ui_minimum=1000, group="data",
        ),
        FieldSpec(
            "seed", "int", 0,
            "Seeds the split, initialisation, shuffling and dropout: same seed, same run.",
            "Seed", minimum=0, maximum=2**31 - 1, ui_maximum=9999, group="data",
        ),
    )
}


class ConfigError(ValueError):
    """Invalid configuration; `errors` maps each bad field to its messages."""

    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        super().__init__(format_errors(errors))


def format_errors(errors: dict[str, list[str]]) -> str:
    return "; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in errors.items())


def show_value(value: Any) -> str:
    """A user's value as they would write it (JSON where possible)."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _describe_range(spec: FieldSpec) -> str:
    low = "greater than" if spec.exclusive_minimum else "at least"
    if spec.minimum is not None and spec.maximum is not None:
        if spec.exclusive_minimum:
            return f"greater than {spec.minimum:g} and at most {spec.maximum:g}"
        return f"between {spec.minimum:g} and {spec.maximum:g}"
    if spec.minimum is not None:
        return f"{low} {spec.minimum:g}"
    return f"at most {spec.maximum:g}"


def _check_number(spec: FieldSpec, value: Any, errors: list[str], *, what: str = "") -> Any:
    """Coerce `value` to the field's number type, appending messages to `errors`."""
    subject = what or "Value"
    if isinstance(value, bool) or value is None:
        errors.append(f"{subject} must be a number, got {show_value(value)}.")
        return None
    is_int = spec.kind in ("int", "int_list")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            errors.append(f"{subject} must be a number, got {value!r}.")
            return None
    if not isinstance(value, (int, float)):
        errors.append(f"{subject} must be a number, got {type(value).__name__}.")
        return None
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an int too large for a float (JSON allows any size)
        errors.append(f"{subject} must be {_describe_range(spec)}, got a number too large to use.")
        return None
    if not finite:
        errors.append(f"{subject} must be a finite number.")
        return None
    if is_int:
        if float(value) != int(value):
            errors.append(f"{subject} must be a whole number, got {value:g}.")
            return None
        value = int(value)
    else:
        value = float(value)
    too_low = spec.minimum is not None and (
        value <= spec.minimum if spec.exclusive_minimum else value < spec.minimum
    )
    too_high = spec.maximum is not None and value > spec.maximum
    if too_low or too_high:
        errors.append(f"{subject} must be {_describe_range(spec)}, got {value:g}.")
        return None
    return value


def clean_field(name: str, value: Any) -> tuple[Any, list[str]]:
    """Validate and coerce one field's value: (clean value, error messages)."""
    spec = FIELDS[name]
    errors: list[str] = []
    if value is None or (isinstance(value, str) and value.strip() == ""):
        if spec.nullable:
            return None, []
        return None, ["This field may not be empty."]
    if spec.kind == "choice":
        if not isinstance(value, str) or value not in spec.choices:
            options = ", ".join(spec.choices)
            errors.append(f"Must be one of {options}; got {show_value(value)}.")
            return None, errors
        return value, []
    if spec.kind == "int_list":
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)):
            return None, [f"Must be a list of 1 to {spec.max_items} layer sizes."]
        if not spec.min_items <= len(value) <= spec.max_items:
            return None, [
                f"Must have {spec.min_items} to {spec.max_items} hidden layers, "
                f"got {len(value)}."
            ]
        cleaned = []
        for index, item in enumerate(value, start=1):
            number = _check_number(spec, item, errors, what=f"Layer {index} size")
            cleaned.append(number)
        return (tuple(cleaned) if not errors else None), errors
    number = _check_number(spec, value, errors)
    return number, errors


@dataclass(frozen=True)
class TrainingConfig:
    """A validated set of hyperparameters. Build it with `from_dict`."""

    hidden_layers: tuple[int, ...] = FIELDS["hidden_layers"].default
    activation: str = FIELDS["activation"].default
    optimizer: str = FIELDS["optimizer"].default
    learning_rate: float = FIELDS["learning_rate"].default
    momentum: float = FIELDS["momentum"].default
    batch_size: int = FIELDS["batch_size"].default
    epochs: int = FIELDS["epochs"].default
    l2: float = FIELDS["l2"].default
    dropout: float = FIELDS["dropout"].default
    lr_schedule: str = FIELDS["lr_schedule"].default
    lr_decay: float = FIELDS["lr_decay"].default
    warmup_epochs: int = FIELDS["warmup_epochs"].default
    gradient_clip: float = FIELDS["gradient_clip"].default
    early_stopping_patience: int = FIELDS["early_stopping_patience"].default
    validation_fraction: float = FIELDS["validation_fraction"].default
    train_size: int | None = FIELDS["train_size"].default
    seed: int = FIELDS["seed"].default
    _validated: bool = field(default=False, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None = None, *, partial: bool = True) -> TrainingConfig:
        """Validate `data`; missing fields take their defaults when `partial`.

        Raises ConfigError listing every invalid field (unknown ones included).
        """
        data = dict(data or {})
        errors: dict[str, list[str]] = {}
        values: dict[str, Any] = {}
        for name in data:
            if name not in FIELDS:
                errors[name] = [f"Unknown field. Known fields: {', '.join(FIELDS)}."]
        for name, spec in FIELDS.items():
            if name not in data:
                if partial:
                    values[name] = spec.default
                else:
                    errors[name] = ["This field is required."]
                continue
            value, messages = clean_field(name, data[name])
            if messages:
                errors[name] = messages
            else:
                values[name] = value
        for name, messages in _cross_field_errors(values).items():
            errors.setdefault(name, []).extend(messages)
        if errors:
            raise ConfigError(errors)
        return cls(**values, _validated=True)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready plain dict (hidden_layers as a list)."""
        data = {name: getattr(self, name) for name in FIELDS}
        data["hidden_layers"] = list(self.hidden_layers)
        return data

    def replace(self, **changes: Any) -> TrainingConfig:
        """A validated copy with `changes` applied (raises ConfigError)."""
        return TrainingConfig.from_dict({**self.to_dict(), **changes})

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        """Input, hidden and output widths: (784, *hidden_layers, 10)."""
        return (784, *self.hidden_layers, 10)

    @property
    def parameter_count(self) -> int:
        sizes = self.layer_sizes
        return sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))


def _cross_field_errors(values: dict[str, Any]) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    # Only between fields that are themselves valid (missing from `values` otherwise).
    warmup, epochs = values.get("warmup_epochs"), values.get("epochs")
    if warmup is not None and epochs is not None and 0 < epochs <= warmup:
        errors["warmup_epochs"] = [
            f"Warm-up ({values['warmup_epochs']} epochs) must be shorter than the run "
            f"({values['epochs']} epochs)."
        ]
    return errors


def validate_config(data: dict[str, Any] | None, *, partial: bool = True) -> dict[str, list[str]]:
    """Every field error of `data` ({} when valid)."""
    try:
        TrainingConfig.from_dict(data, partial=partial)
    except ConfigError as exc:
        return exc.errors
    return {}


PRESETS: dict[str, dict[str, Any]] = {
    "fast_check": {
        "hidden_layers": [128], "epochs": 3, "train_size": 10000, "lr_schedule": "constant",
        "dropout": 0.0,
    },
    "default": {},
    "strong": {
        "hidden_layers": [512, 256], "epochs": 40, "dropout": 0.3, "lr_schedule": "cosine",
        "warmup_epochs": 2,
    },
}


def config_schema() -> dict[str, Any]:
    """The JSON schema the UI, API and CLI are generated from."""
    return {
        "fields": [spec.to_json() for spec in FIELDS.values()],
        "defaults": TrainingConfig().to_dict(),
        "presets": {
            name: TrainingConfig.from_dict(values).to_dict() for name, values in PRESETS.items()
        },
    }
