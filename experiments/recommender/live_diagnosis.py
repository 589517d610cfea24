"""Diagnosis while the run trains: problems recognised at the epoch they appear.

`diagnose_epoch(config, epochs)` is called after every epoch with all the epochs so far and
returns the run's findings, each kind at most once, at the first epoch it fired (so calling
it again after a later epoch returns the same earlier findings: the caller stores the kinds
it has not stored yet; a re-delivered run recomputes the same ones). Pure: config and
epoch dicts in, `Finding`s out; no Django.

Severity: "critical" findings (divergence, exploding gradients past the critical growth, not
learning, nearly all units dead) stop a run that asked for it (`stop_on_diagnosis`) and
prune a trial of a sweep with diagnostic pruning; "warning" findings are only shown.
Every number compared against is in thresholds.py ("live diagnosis").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .changes import config_view, valid_changes
from .curves import Curves
from .formatting import jsonable, loss_str, round_sig, sig
from .thresholds import THRESHOLDS as T

SEVERITIES = ("critical", "warning")
KINDS = ("divergence", "exploding_gradients", "not_learning", "dead_units", "saturation", "plateau")
RELU_FAMILY = ("relu", "leaky_relu")


@dataclass(frozen=True)
class Finding:
    epoch: int  # the epoch it appeared at (1-based)
    kind: str  # one of KINDS
    severity: str  # "critical" | "warning"
    title: str  # a few words
    message: str  # plain words with the fix, no epoch: "loss became NaN; lower the learning rate"
    changes: dict = field(default_factory=dict)  # the suggested config change (valid_changes-checked)
    evidence: dict = field(default_factory=dict)  # the numbers used (JSON-safe)

    @property
    def critical(self) -> bool:
        return self.severity == "critical"

    def stop_reason(self) -> str:
        """The run's message when this finding stopped it."""
        return f"stopped at epoch {self.epoch}: {self.message}"

    def prune_reason(self) -> str:
        """A sweep trial's message when diagnostic pruning stopped it."""
        return f"pruned at epoch {self.epoch}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "kind": self.kind, "severity": self.severity, "title": self.title,
                "message": self.message, "changes": dict(self.changes), "evidence": jsonable(self.evidence)}


def percent(fraction: float) -> str:
    """0.102 -> '10.2 %' (the live messages' style)."""
    return f"{100 * fraction:.1f} %"


def _lr(config: dict) -> float:
    return float(config["learning_rate"])


def _lower_rate(config: dict, factor: float) -> dict:
    return valid_changes(config, {"learning_rate": round_sig(_lr(config) / factor)})


def _finding(config: dict, epoch: Any, kind: str, severity: str, title: str, message: str, changes: dict,
             **evidence: Any) -> Finding:
    return Finding(epoch=int(epoch), kind=kind, severity=severity, title=title, message=message,
                   changes=valid_changes(config, changes), evidence=evidence)


def _rate_change_words(config: dict, changes: dict) -> str:
    new = changes.get("learning_rate")
    return f" ({sig(_lr(config))} → {sig(new)})" if new is not None else ""


# --------------------------------------------------------------------------- the detectors


def _divergence(config: dict, c: Curves) -> Finding | None:
    """Non-finite loss, the trainer's limit, a loss far above its minimum, or collapse to guessing."""
    changes = _lower_rate(config, T["divergence_lr_factor"])
    fix = "lower the learning rate" + _rate_change_words(config, changes)
    best_acc = -math.inf
    for i in range(c.n):
        epoch, tl, vl, acc = int(c.epoch[i]), c.train_loss[i], c.val_loss[i], c.val_acc[i]
        if not (math.isfinite(tl) and math.isfinite(vl)):
            value = tl if not math.isfinite(tl) else vl
            shown = "NaN" if math.isnan(value) else str(value)
            return _finding(config, epoch, "divergence", "critical", f"Loss became {shown}",
                            f"loss became {shown}; {fix}", changes, train_loss=tl, val_loss=vl)
        if tl > T["divergence_loss"]:
            return _finding(config, epoch, "divergence", "critical", "Loss exploded",
                            f"loss exploded to {loss_str(tl)} (above 4x the loss of guessing); {fix}", changes,
                            train_loss=tl, limit=T["divergence_loss"])
        if i > 0:
            previous = c.train_loss[:i]
            previous = previous[np.isfinite(previous)]
            low = float(previous.min()) if previous.size else math.nan
            if (math.isfinite(low) and tl >= T["live_explosion_ratio"] * low and tl > T["live_explosion_min_loss"]):
                return _finding(config, epoch, "divergence", "critical", "Loss blowing up",
                                f"loss rose to {loss_str(tl)}, {tl / low:.1f}x its minimum of {loss_str(low)}; {fix}"
                                if low > 0 else f"loss rose to {loss_str(tl)}; {fix}",
                                changes, train_loss=tl, minimum=low)
            if (best_acc >= T["live_collapse_learned_accuracy"] and math.isfinite(acc)
                    and acc <= T["live_collapse_accuracy"]):
                return _finding(config, epoch, "divergence", "critical", "Collapsed to guessing",
                                f"collapsed to guessing: val {percent(acc)} after {percent(best_acc)}; {fix}",
                                changes, val_accuracy=acc, best_val_accuracy=best_acc)
        if math.isfinite(acc):
            best_acc = max(best_acc, acc)
    return None


def _exploding_gradients(config: dict, c: Curves) -> Finding | None:
    """The mean gradient norm grew a large factor above its minimum, or one batch spiked."""
    for i in range(c.n):
        epoch, grad, top = int(c.epoch[i]), c.grad[i], c.grad_max[i]
        if epoch < T["live_grad_min_epoch"] or not math.isfinite(grad) or grad <= 0:
            continue
        previous = c.grad[:i]
        previous = previous[np.isfinite(previous) & (previous > 0)]
        growth = grad / float(previous.min()) if previous.size else 1.0
        spike = top / grad if math.isfinite(top) else 1.0
        if growth <= T["live_grad_growth"] and spike <= T["live_grad_spike_ratio"]:
            continue
        critical = growth > T["live_grad_critical_growth"]
        clip = round_sig(float(np.percentile(previous, T["clip_percentile"]))) if previous.size else \
            T["default_gradient_clip"]
        proposal = {"gradient_clip": config["gradient_clip"] or clip}
        if critical:
            proposal["learning_rate"] = round_sig(_lr(config) / T["lr_high_factor"])
        changes = valid_changes(config, proposal)
        if growth > T["live_grad_growth"]:
            what = f"gradient norm grew {growth:.0f}x to {sig(grad)}"
        else:
            what = f"a batch's gradient norm reached {spike:.0f}x the epoch's mean ({sig(top)})"
        fix = (f"clip gradients at {sig(changes['gradient_clip'])}" if "gradient_clip" in changes
               else "clip gradients harder")
        if "learning_rate" in changes:
            fix = f"lower the learning rate{_rate_change_words(config, changes)} and {fix}"
        return _finding(config, epoch, "exploding_gradients", "critical" if critical else "warning",
                        "Exploding gradients", f"{what}; {fix}", changes, gradient_norm=grad,
                        gradient_norm_max=top, growth=growth, spike_ratio=spike)
    return None


def _validation_size(config: dict) -> int:
    size = config["train_size"] or 60_000
    return max(1, round(size * config["validation_fraction"]))


def _steps_per_epoch(config: dict) -> int:
    size = config["train_size"] or 60_000
    train = max(1, size - _validation_size(config))
    return math.ceil(train / min(config["batch_size"], train))


def _not_learning(config: dict, c: Curves) -> Finding | None:
    """After a few epochs (and optimizer steps) the best val accuracy is near chance, or far below
    what any sound configuration shows by then (beyond the validation set's sampling noise)."""
    steps = _steps_per_epoch(config)
    n_val = _validation_size(config)
    best = -math.inf
    for i in range(c.n):
        acc = c.val_acc[i]
        if not math.isfinite(acc):
            return None  # non-finite: divergence's business
        best = max(best, acc)
        epoch = int(c.epoch[i])
        if epoch < T["live_not_learning_epochs"] or epoch * steps < T["live_not_learning_min_steps"]:
            continue
        near_chance = best <= T["chance_accuracy"] + T["live_chance_margin"]
        slow_limit = T["live_slow_accuracy"]
        noise = math.sqrt(slow_limit * (1 - slow_limit) / n_val)
        slow = best < slow_limit - T["live_noise_sigmas"] * noise
        if not (near_chance or slow):
            return None  # the best only grows: it cannot fire later
        changes, fix = _not_learning_fix(config)
        what = (f"not learning — val {percent(best)} after {epoch} epochs, near chance" if near_chance
                else f"learning far too slowly — val {percent(best)} after {epoch} epochs")
        return _finding(config, epoch, "not_learning", "critical",
                        "Not learning" if near_chance else "Learning far too slowly", f"{what}; {fix}", changes,
                        best_val_accuracy=best, chance=T["chance_accuracy"], slow_limit=slow_limit - 2 * noise,
                        validation_images=n_val, steps=epoch * steps)
    return None


def _not_learning_fix(config: dict) -> tuple[dict, str]:
    optimizer, lr = config["optimizer"], _lr(config)
    widths = list(config["hidden_layers"])
    if lr >= T["high_lr_for_optimizer"][optimizer]:
        changes = _lower_rate(config, T["divergence_lr_factor"])
        return changes, "lower the learning rate" + _rate_change_words(config, changes)
    if lr < T["low_lr_for_optimizer"][optimizer]:
        changes = valid_changes(config, {"learning_rate": round_sig(lr * T["lr_low_extreme_factor"])})
        return changes, "raise the learning rate" + _rate_change_words(config, changes)
    if config["dropout"] >= T["overreg_dropout"] or config["l2"] >= T["overreg_l2"]:
        changes = valid_changes(config, {"dropout": min(T["overreg_dropout_target"], config["dropout"]),
                                         "l2": min(config["l2"], T["overreg_l2_target"])})
        return changes, "regularise less (dropout, L2)"
    if min(widths) < T["capacity_over_dead_width"]:
        changes = valid_changes(config, {"hidden_layers": [max(w, T["widen_to_min"]) for w in widths]})
        return changes, "widen the hidden layers"
    changes = valid_changes(config, {"learning_rate": round_sig(lr * T["lr_low_extreme_factor"])})
    return changes, "raise the learning rate" + _rate_change_words(config, changes)


def _dead_units(config: dict, c: Curves) -> Finding | None:
    """ReLU units that output nothing for any validation image (or tanh units saturated)."""
    tanh = config["activation"] == "tanh"
    limit = T["live_saturated_fraction"] if tanh else T["live_dead_fraction"]
    for i in range(c.n):
        dead, acc = c.dead[i], c.val_acc[i]
        if not math.isfinite(dead) or dead <= limit:
            continue
        epoch = int(c.epoch[i])
        if tanh:
            changes = _lower_rate(config, T["dead_lr_factor"])
            return _finding(config, epoch, "saturation", "warning", "Saturated tanh units",
                            f"{percent(dead)} of tanh units saturated; lower the learning rate"
                            f"{_rate_change_words(config, changes)}", changes, saturated_fraction=dead)
        critical = (dead > T["live_dead_critical_fraction"] and math.isfinite(acc)
                    and acc < T["live_dead_critical_accuracy"])
        proposal = {"learning_rate": round_sig(_lr(config) / T["dead_lr_factor"])}
        if config["activation"] == "relu":
            proposal["activation"] = "leaky_relu"
        changes = valid_changes(config, proposal)
        fix = "lower the learning rate" + _rate_change_words(config, changes)
        if "activation" in changes:
            fix += " or use leaky_relu"
        return _finding(config, epoch, "dead_units", "critical" if critical else "warning", "Dead units",
                        f"{percent(dead)} of hidden units dead" + (f", val {percent(acc)}" if critical else "")
                        + f"; {fix}", changes, dead_unit_fraction=dead, val_accuracy=acc)
    return None


def _plateau(config: dict, c: Curves) -> Finding | None:
    """No new best val accuracy for k epochs while the rate stays constant (a decay would help)."""
    if config["lr_schedule"] != "constant":
        return None
    patience, gain = T["live_plateau_patience"], T["live_plateau_min_gain"]
    best, best_index = -math.inf, -1
    for i in range(c.n):
        acc = c.val_acc[i]
        if not math.isfinite(acc):
            return None
        if acc > best + gain:
            best, best_index = acc, i
        elif int(c.epoch[i]) > config["warmup_epochs"] and i - best_index >= patience:
            changes = valid_changes(config, {"lr_schedule": "cosine"})
            return _finding(config, c.epoch[i], "plateau", "warning", "Plateau",
                            f"no new best val accuracy for {patience} epochs (best {percent(best)} at epoch "
                            f"{int(c.epoch[best_index])}); decay the rate (cosine schedule)", changes,
                            best_val_accuracy=best, best_epoch=int(c.epoch[best_index]))
    return None


DETECTORS = (_divergence, _exploding_gradients, _not_learning, _dead_units, _plateau)


def diagnose_epoch(config: dict, epochs: list[dict]) -> list[Finding]:
    """The run's findings so far (each kind once, at its first epoch), by epoch then severity."""
    cfg = config_view(config)
    # A row without its losses is not an epoch of this trainer (a NaN stored there is one).
    rows = [row for row in epochs or [] if isinstance(row, dict)
            and row.get("train_loss") is not None and row.get("val_loss") is not None]
    curves = Curves.from_epochs(rows)
    if curves.n == 0:
        return []
    findings = [finding for detector in DETECTORS if (finding := detector(cfg, curves)) is not None]
    if any(f.kind == "divergence" for f in findings):
        # After a divergence the other curves are its echo (dead units, a frozen val accuracy).
        first = min(f.epoch for f in findings if f.kind == "divergence")
        findings = [f for f in findings if f.kind == "divergence" or f.epoch < first]
    return sorted(findings, key=lambda f: (f.epoch, SEVERITIES.index(f.severity), KINDS.index(f.kind)))


def diagnose_trainer_divergence(config: dict, epochs: list[dict], detail: str) -> Finding:
    """The finding for a run the trainer stopped as diverged inside an epoch (no metrics reached
    the callback): the epoch after the last stored one, the trainer's words as evidence."""
    cfg = config_view(config)
    epoch = max((int(row.get("epoch", 0)) for row in epochs or [] if isinstance(row, dict)), default=0) + 1
    lowered = (detail or "").lower()
    shown = "NaN" if "nan" in lowered else "infinite" if "inf" in lowered else "non-finite"
    changes = _lower_rate(cfg, T["divergence_lr_factor"])
    return Finding(epoch=epoch, kind="divergence", severity="critical", title=f"Loss became {shown}",
                   message=f"loss became {shown}; lower the learning rate{_rate_change_words(cfg, changes)}",
                   changes=changes, evidence={"trainer": detail})


def first_critical(findings: list[Finding]) -> Finding | None:
    return next((f for f in findings if f.critical), None)


# --------------------------------------------------------------------------- in a sweep (diagnostic pruning)

SWEEP_KINDS = ("hopeless", "sweep_plateau")


@dataclass(frozen=True)
class SweepContext:
    """What a sweep trial is judged against: the best val accuracy another usable trial of the
    sweep has reached so far (a succeeded trial's best, a running one's best epoch yet)."""

    best: float
    best_trial: int  # its trial number

    @classmethod
    def of(cls, others: Any) -> SweepContext | None:
        """From (trial number, best val accuracy so far) pairs; None when there is none yet."""
        usable = [(float(acc), int(number)) for number, acc in others or []
                  if acc is not None and math.isfinite(float(acc))]
        if not usable:
            return None
        best, number = max(usable)
        return cls(best=best, best_trial=number)


def curve_ceiling(val_acc: np.ndarray, budget: int) -> float:
    """What the trial's own curve says it can reach by epoch `budget`: its best so far, plus the
    slope of a log fit (accuracy = a + b ln epoch, over all its epochs, b >= 0) carried on to
    the budget, plus `sweep_noise_factor` x its largest drop below its running best (a noisy
    curve may still jump). A flattening curve over-predicts with this fit (the safe side)."""
    acc = np.asarray(val_acc, dtype=float)
    epochs = len(acc)
    best = float(acc.max())
    slope = 0.0
    if epochs >= 2:
        slope = max(0.0, float(np.polyfit(np.log(np.arange(1, epochs + 1)), acc, 1)[0]))
    drop = float((np.maximum.accumulate(acc) - acc).max())
    return best + slope * math.log(max(budget, epochs) / epochs) + T["sweep_noise_factor"] * drop


def _rate_still_to_decay(config: dict, epoch: int) -> bool:
    """At or above the optimizer's high rate with a decaying schedule, before `sweep_high_rate_wait`
    of the budget: such a curve jumps once the rate comes down; its ceiling says nothing yet."""
    return (config["lr_schedule"] != "constant" and _lr(config) >= T["high_lr_for_optimizer"][config["optimizer"]]
            and epoch < T["sweep_high_rate_wait"] * config["epochs"])


def diagnose_sweep_trial(config: dict, epochs: list[dict], context: SweepContext | None) -> Finding | None:
    """A sweep-only finding on a trial that cannot become the sweep's best, from its own curve:

    - hopeless: its curve's ceiling at the epoch budget (`curve_ceiling`) is more than
      `sweep_hopeless_margin` below the best another trial has already reached;
    - sweep_plateau: no new best val accuracy for `sweep_plateau_patience` epochs while more than
      `sweep_plateau_margin` below that best.

    Not a problem of a single run (a run's plateau stays a warning): only diagnostic pruning acts on
    these. Judged from `sweep_min_epoch` on, never on the last epoch, never before a high rate decays.
    Pure: config, the trial's epochs and the sweep's best in; a critical Finding or None out.
    """
    if context is None:
        return None
    cfg = config_view(config)
    rows = [row for row in epochs or [] if isinstance(row, dict)
            and row.get("train_loss") is not None and row.get("val_loss") is not None]
    curves = Curves.from_epochs(rows)
    acc = curves.val_acc
    if curves.n == 0 or not np.isfinite(acc).all():
        return None  # non-finite: divergence's business
    epoch, budget = int(curves.epoch[-1]), int(cfg["epochs"])
    if epoch < T["sweep_min_epoch"] or epoch >= budget or _rate_still_to_decay(cfg, epoch):
        return None
    best, best_index = -math.inf, 0
    for i, value in enumerate(acc):  # "new best" as for a run's plateau: by more than live_plateau_min_gain
        if value > best + T["live_plateau_min_gain"]:
            best, best_index = float(value), i
    best, best_epoch = float(acc.max()), int(curves.epoch[best_index])
    leader = f"the best trial's {percent(context.best)} (#{context.best_trial})"
    evidence = {"best_val_accuracy": best, "best_epoch": best_epoch, "sweep_best": context.best,
                "sweep_best_trial": context.best_trial}
    ceiling = curve_ceiling(acc, budget)
    if ceiling < context.best - T["sweep_hopeless_margin"]:
        return _finding(cfg, epoch, "hopeless", "critical", "Cannot catch up",
                        f"its curve extrapolates to {percent(min(ceiling, 1.0))} at epoch {budget} "
                        f"(best {percent(best)} so far), below {leader}", {}, ceiling=ceiling, **evidence)
    stale = curves.n - 1 - best_index
    if stale >= T["sweep_plateau_patience"] and best < context.best - T["sweep_plateau_margin"]:
        return _finding(cfg, epoch, "sweep_plateau", "critical", "Plateau below the sweep's best",
                        f"plateau — no new best for {stale} epochs (best {percent(best)} at epoch {best_epoch}), "
                        f"below {leader}", {}, ceiling=ceiling, **evidence)
    return None
