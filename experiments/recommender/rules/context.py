"""What every single-run rule reads (`Context`), how it writes its advice (`make_advice`), and the
judgements several rules share: is the rate low or high for the optimizer, a longer run, a clip
value, is validation accuracy still rising."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..curves import Curves, fitted_gain
from ..formatting import jsonable, round_sig
from ..reference import FULL_TRAINING_SET
from ..thresholds import THRESHOLDS as T
from ..types import Advice, RunSummary


@dataclass
class Context:
    """One run as the rules read it; `fired` holds what the rules before this one found."""

    run: RunSummary
    cfg: dict  # the run's config, complete and valid (config_view)
    all_curves: Curves  # every recorded epoch
    curves: Curves  # the leading epochs with finite losses/accuracies (what trend rules read)
    summary: dict
    category: str
    fired: dict = field(default_factory=dict)  # kind -> [Advice] already produced

    @property
    def n(self) -> int:
        return self.curves.n

    @property
    def k(self) -> int:
        """Length of the end-of-run window."""
        return min(int(T["window"]), self.curves.n)

    @property
    def n_val(self) -> int:
        total = self.cfg.get("train_size") or FULL_TRAINING_SET
        return max(1, int(round(total * self.cfg["validation_fraction"])))

    @property
    def steps_per_epoch(self) -> int:
        total = self.cfg.get("train_size") or FULL_TRAINING_SET
        train = max(1, total - self.n_val)
        return max(1, math.ceil(train / max(1, self.cfg["batch_size"])))

    def val_noise(self, accuracy: float) -> float:
        """Binomial std (as a fraction) of an accuracy measured on the validation split."""
        p = min(max(accuracy, 0.0), 1.0)
        return math.sqrt(p * (1 - p) / self.n_val)

    def has(self, kind: str) -> bool:
        return bool(self.fired.get(kind))


def make_advice(kind: str, priority: str, title: str, rationale: str, changes: dict,
                confidence: float, evidence: dict | None = None) -> Advice:
    confidence = float(min(max(confidence, 0.0), 1.0))
    return Advice(kind=kind, priority=priority, title=title, rationale=rationale,
                  changes=dict(changes), confidence=round(confidence, 2),
                  evidence=jsonable(evidence or {}))


def ramp(value: float, start: float, span: float) -> float:
    """0 at `start`, 1 at `start + span`, clipped: scales a confidence with the excess."""
    if span <= 0:
        return 1.0
    return float(min(max((value - start) / span, 0.0), 1.0))


def lr_is_low(cfg: dict) -> bool:
    return cfg["learning_rate"] < T["low_lr_for_optimizer"].get(cfg["optimizer"], 0.0)


def lr_is_high(cfg: dict) -> bool:
    return cfg["learning_rate"] >= T["high_lr_for_optimizer"].get(cfg["optimizer"], math.inf)


def lr_is_very_high(cfg: dict) -> bool:
    """So far above the optimizer's usual range that warm-up and clipping cannot save the run."""
    high = T["high_lr_for_optimizer"].get(cfg["optimizer"], math.inf)
    return cfg["learning_rate"] >= T["very_high_lr_multiple"] * high


def longer_epochs(epochs: int) -> int:
    """A longer run: x more_epochs_factor, at least extra_epochs_min more, at most 200."""
    return int(min(200, max(epochs + T["extra_epochs_min"], round(epochs * T["more_epochs_factor"]))))


def clip_value(curves: Curves, healthy: np.ndarray | None = None) -> float:
    """gradient_clip near the clip_percentile of the recorded mean gradient norms."""
    norms = curves.grad
    if healthy is not None:
        norms = norms[healthy[: norms.shape[0]]]
    norms = norms[np.isfinite(norms) & (norms > 0)]
    if norms.size == 0:
        return float(T["default_gradient_clip"])
    return max(round_sig(float(np.percentile(norms, T["clip_percentile"])), 2), 0.01)


def still_improving(ctx: Context) -> dict | None:
    """Evidence that validation accuracy was still rising at the end, or None."""
    c = ctx.curves
    if c.n < T["min_epochs_for_trends"]:
        return None
    k = ctx.k
    window = c.val_acc[-k:]
    gain = fitted_gain(window)
    noise = ctx.val_noise(float(np.mean(window)))
    threshold = max(T["improving_gain_points"] / 100, noise)
    best_index = int(np.argmax(c.val_acc))
    best_epoch = int(c.epoch[best_index])
    last_epoch = int(c.epoch[-1])
    if gain > threshold and best_epoch >= last_epoch - T["improving_best_within"]:
        return {"gain": gain, "window": k, "threshold": threshold, "best_epoch": best_epoch,
                "last_epoch": last_epoch, "noise": noise}
    return None
