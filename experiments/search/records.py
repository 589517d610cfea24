"""The plain data the search works on: a sweep's settings (SweepSpec) and its trials (TrialRecord).

experiments.selectors builds both from the Sweep and Experiment rows; everything in this
package takes and returns them, so none of it needs the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from experiments.search.space import Param, SweepSpecError, grid_size, is_int, parse_space, same_value
from training.config import FIELDS


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
    finished_at: float | None = None  # a POSIX timestamp
    started_at: float | None = None
    rung: int | None = None  # autotune: the trial's fidelity rung (Experiment.sweep_rung)

    @property
    def parameters(self) -> int | None:
        """Weights and biases of the trial's network, or None if its hidden layers are not readable."""
        hidden = self.config.get("hidden_layers")
        if not isinstance(hidden, (list, tuple)) or not all(is_int(h) for h in hidden):
            return None
        sizes = (784, *hidden, 10)  # as TrainingConfig.layer_sizes: pixels in, classes out
        return sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))

    @property
    def value(self) -> float | None:
        """The objective: best validation accuracy of a usable run; 0 for a diverged one."""
        if self.status == "succeeded":
            return self.best_val_accuracy
        if self.status == "diverged":
            return 0.0
        return None

    @property
    def is_own_result(self) -> bool:
        """A trial of this sweep (not a warm-start import) that succeeded with a value."""
        return not self.warm and self.status == "succeeded" and self.best_val_accuracy is not None


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
        """From a Sweep row (or anything with its attributes); SweepSpecError if its space no longer parses."""
        params, errors = parse_space(sweep.space, sweep.base_config)
        if errors:
            raise SweepSpecError({"space": errors})
        return cls(strategy=sweep.strategy, params=params, base_config=sweep.base_config, budget=sweep.budget,
                   seed=sweep.seed, pruner=sweep.pruner, second_objective=sweep.second_objective)

    @property
    def multi_objective(self) -> bool:
        return self.second_objective != "none"

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
    """The trial's second objective (minimised), or None without one."""
    if spec.second_objective == "seconds":
        return float(record.seconds)
    if spec.second_objective == "parameters":
        parameters = record.parameters
        return float(parameters) if parameters is not None else None
    return None
