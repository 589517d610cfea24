"""The single-run diagnoses: each reads the curves of one run and returns Advice.

Every rule compares against a named entry of THRESHOLDS and cites the numbers it
used in its rationale (and in `evidence`). Rules propose raw `changes`; `analyze`
passes them through `_valid_changes` (clamped, no no-op keys, validated).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .base import (
    Advice,
    Curves,
    RunSummary,
    detrended_std,
    fitted_gain,
    jsonable,
    loss_str,
    pct,
    pts,
    round_sig,
    show_value,
    sig,
)
from .thresholds import THRESHOLDS as T

FULL_TRAINING_SET = 60_000


@dataclass
class Context:
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


def _ramp(value: float, start: float, span: float) -> float:
    """0 at `start`, 1 at `start + span`, clipped: scales a confidence with the excess."""
    if span <= 0:
        return 1.0
    return float(min(max((value - start) / span, 0.0), 1.0))


def _lr_is_low(cfg: dict) -> bool:
    return cfg["learning_rate"] < T["low_lr_for_optimizer"].get(cfg["optimizer"], 0.0)


def _lr_is_high(cfg: dict) -> bool:
    return cfg["learning_rate"] >= T["high_lr_for_optimizer"].get(cfg["optimizer"], math.inf)


def _lr_is_very_high(cfg: dict) -> bool:
    """So far above the optimizer's usual range that warm-up and clipping cannot save the run."""
    high = T["high_lr_for_optimizer"].get(cfg["optimizer"], math.inf)
    return cfg["learning_rate"] >= T["very_high_lr_multiple"] * high


def _longer(epochs: int) -> int:
    """A longer run: x more_epochs_factor, at least extra_epochs_min more, at most 200."""
    return int(min(200, max(epochs + T["extra_epochs_min"], round(epochs * T["more_epochs_factor"]))))


def _clip_value(curves: Curves, healthy: np.ndarray | None = None) -> float:
    """gradient_clip near the clip_percentile of the recorded mean gradient norms."""
    norms = curves.grad
    if healthy is not None:
        norms = norms[healthy[: norms.shape[0]]]
    norms = norms[np.isfinite(norms) & (norms > 0)]
    if norms.size == 0:
        return float(T["default_gradient_clip"])
    return max(round_sig(float(np.percentile(norms, T["clip_percentile"])), 2), 0.01)


def _trace(curves: Curves, values: np.ndarray, end: int, count: int = 4, start: int | None = None) -> str:
    """'0.512 (epoch 1), 0.498 (epoch 2), 12.4 (epoch 3)': the last `count` epochs up to index `end`,
    preceded by index `start` when given (e.g. the minimum the loss rose from)."""
    indices = list(range(max(0, end - count + 1), end + 1))
    if start is not None and start not in indices:
        indices = [start] + indices[1:] if len(indices) == count else [start] + indices
    return ", ".join(f"{loss_str(values[i])} (epoch {int(curves.epoch[i])})" for i in indices)


# --- divergence ---------------------------------------------------------------------------------------


def divergence(ctx: Context) -> list[Advice]:
    c, cfg, run = ctx.all_curves, ctx.cfg, ctx.run
    uniform = T["uniform_loss"]
    found = None  # (index, reason text)
    for i in range(c.n):
        tl, vl = c.train_loss[i], c.val_loss[i]
        if not (math.isfinite(tl) and math.isfinite(vl)):
            which = "training" if not math.isfinite(tl) else "validation"
            value = tl if not math.isfinite(tl) else vl
            found = (i, f"the {which} loss became {value} at epoch {int(c.epoch[i])}")
            break
        if tl > T["divergence_loss"]:
            found = (i, f"the mean training loss reached {loss_str(tl)} at epoch {int(c.epoch[i])}, above "
                        f"{loss_str(T['divergence_loss'])} (4x the {loss_str(uniform)} of uniform guessing)")
            break
    kind_of = "nonfinite" if found else None
    low_index = None
    if found is None and c.finite_n >= 2:
        f = c.head(c.finite_n)
        last = f.n - 1
        final = f.train_loss[last]
        low_index = int(np.argmin(f.train_loss[:last]))
        low = f.train_loss[low_index]
        if final >= T["explosion_ratio"] * low and final > T["explosion_min_loss"]:
            kind_of = "explosion"
            found = (last, f"the training loss blew up to {loss_str(final)} at epoch {int(f.epoch[last])}, "
                           f"{f'{final / low:.1f}x' if low > 0 else 'far above'} its minimum of {loss_str(low)} at epoch "
                           f"{int(f.epoch[low_index])}")
        elif (final >= T["collapse_loss_fraction"] * uniform
              and final >= (1 + T["collapse_rise"]) * low
              and f.val_acc[last] <= T["collapse_accuracy"]):
            kind_of = "collapse"
            found = (last, f"the network collapsed to guessing: training loss rose from {loss_str(low)} at "
                           f"epoch {int(f.epoch[low_index])} to {loss_str(final)} (uniform guessing: "
                           f"{loss_str(uniform)}) and validation accuracy is {pct(f.val_acc[last])} "
                           f"(chance: {pct(T['chance_accuracy'])})")
    if run.status != "diverged" and found is None:
        return []

    parts = []
    if run.status == "diverged":
        parts.append(f"The trainer stopped the run as diverged ({run.message})" if run.message
                     else "The trainer stopped the run as diverged")
    if found is not None:
        parts.append(found[1])
        parts.append("training loss by epoch: " + _trace(c, c.train_loss, found[0], start=low_index))
    elif c.n == 0:
        parts.append("no epoch completed")
    else:
        parts.append("last recorded training losses: " + _trace(c, c.train_loss, c.n - 1))
    lr = cfg["learning_rate"]
    factor = T["divergence_lr_factor"]
    changes: dict = {"learning_rate": lr / factor}
    rationale_tail = (f"Lower the learning rate {factor:g}x ({sig(lr)} -> {sig(lr / factor)}): a rate that "
                      f"diverges is far above the stable range, so a small cut is not enough.")
    evidence: dict = {"epoch": int(c.epoch[found[0]]) if found else None, "reason": kind_of or "status",
                      "message": run.message, "learning_rate": lr,
                      "train_loss": c.train_loss.tolist(), "lr_factor": factor}
    if cfg["optimizer"] in ("sgd", "momentum") and lr > T["divergence_clip_lr"]:
        healthy = np.isfinite(c.train_loss) & (c.train_loss < uniform)
        clip = _clip_value(c, healthy)
        if cfg["gradient_clip"] == 0 or cfg["gradient_clip"] > clip:
            changes["gradient_clip"] = clip
            evidence["gradient_clip"] = clip
            source = (f"the {T['clip_percentile']}th percentile of the mean gradient norms of the epochs "
                      f"that were still below the uniform-guessing loss" if np.any(healthy & np.isfinite(c.grad))
                      else "a default: no healthy gradient norm was recorded")
            rationale_tail += (f" With {cfg['optimizer']} at a rate above {sig(T['divergence_clip_lr'])}, also "
                               f"clip the gradient norm at {sig(clip)} ({source}).")
    confidence = 0.95 if run.status == "diverged" or kind_of == "nonfinite" else 0.8
    title = f"Training diverged: lower the learning rate {factor:g}x"
    text = "; ".join(parts)
    return [make_advice("divergence", "critical", title,
                        text[:1].upper() + text[1:] + ". " + rationale_tail, changes, confidence, evidence)]


# --- instability and a too-high learning rate ---------------------------------------------------------


def instability(ctx: Context) -> list[Advice]:
    c, cfg = ctx.curves, ctx.cfg
    if c.n < 2:
        return []
    early = min(int(T["instability_epochs"]), c.n)
    spikes = []
    for i in range(1, early):
        before, after = c.train_loss[i - 1], c.train_loss[i]
        if before > 0 and after > before * (1 + T["loss_spike"]):
            spikes.append((i, after / before - 1))
    first = None  # the first steps blew up: epoch 1's mean loss far above guessing, recovered in epoch 2
    if c.train_loss[0] > T["first_epoch_loss"] and c.train_loss[1] < c.train_loss[0]:
        first = c.train_loss[0]
    grad_spikes = []
    if cfg["gradient_clip"] == 0:  # with clipping on, the (pre-clip) spikes were already capped
        mean, peak = float(c.grad[0]), float(c.grad_max[0])
        if (math.isfinite(mean) and math.isfinite(peak) and mean > 1e-12
                and peak > T["first_epoch_grad_spike_ratio"] * mean):
            grad_spikes.append((0, peak / mean))
        for i in range(1, early):
            mean, peak = float(c.grad[i]), float(c.grad_max[i])
            if math.isfinite(mean) and math.isfinite(peak) and mean > 1e-12 and peak > T["grad_spike_ratio"] * mean:
                grad_spikes.append((i, peak / mean))
    if not spikes and not grad_spikes and first is None:
        return []
    parts = []
    if first is not None:
        parts.append(f"the mean training loss of epoch {int(c.epoch[0])} was {loss_str(first)}, above "
                     f"{loss_str(T['first_epoch_loss'])} (1.5x uniform guessing), before falling to "
                     f"{loss_str(c.train_loss[1])} in epoch {int(c.epoch[1])}: the first updates blew up")
    for i, rel in spikes:
        parts.append(f"training loss jumped {100 * rel:.0f}% from {loss_str(c.train_loss[i - 1])} (epoch "
                     f"{int(c.epoch[i - 1])}) to {loss_str(c.train_loss[i])} (epoch {int(c.epoch[i])})")
    for i, ratio in grad_spikes:
        parts.append(f"in epoch {int(c.epoch[i])} the largest batch gradient norm was {ratio:.1f}x the "
                     f"epoch mean ({sig(c.grad_max[i])} vs {sig(c.grad[i])})")
    changes: dict = {}
    epochs = cfg["epochs"]
    warmup = min(int(T["warmup_epochs"]) if epochs > 10 else 2, epochs - 1)
    if warmup > cfg["warmup_epochs"]:
        changes["warmup_epochs"] = warmup
    clip = _clip_value(c)
    if cfg["gradient_clip"] == 0 or cfg["gradient_clip"] > clip:
        changes["gradient_clip"] = clip
    fixes = []
    if "warmup_epochs" in changes:
        fixes.append(f"{warmup} warm-up epochs")
    if "gradient_clip" in changes:
        fixes.append(f"gradient clipping at {sig(clip)} (the {T['clip_percentile']}th percentile of the "
                     f"per-epoch mean gradient norms)")
    rationale = ("Early in training " + "; ".join(parts) + f" (thresholds: a loss rise above "
                 f"{100 * T['loss_spike']:.0f}% or a max/mean gradient-norm ratio above "
                 f"{T['grad_spike_ratio']:g} within the first {int(T['instability_epochs'])} epochs; "
                 f"{T['first_epoch_grad_spike_ratio']:g} in epoch 1, whose initial gradients are large). "
                 + (f"Add {' and '.join(fixes)} before lowering the learning rate: as the Deep Learning "
                    f"Tuning Playbook recommends, warm-up and clipping remove early instability "
                    f"without slowing the rest of training." if fixes else ""))
    signals = len(spikes) + len(grad_spikes) + (first is not None)
    confidence = 0.6 + 0.1 * min(signals - 1, 2) + (0.05 if spikes and grad_spikes else 0)
    evidence = {"first_epoch_loss": first,
                "loss_spikes": [{"epoch": int(c.epoch[i]), "relative_rise": rel} for i, rel in spikes],
                "gradient_spikes": [{"epoch": int(c.epoch[i]), "ratio": r} for i, r in grad_spikes],
                "gradient_norm_percentile": clip,
                "thresholds": {"loss_spike": T["loss_spike"], "grad_spike_ratio": T["grad_spike_ratio"]}}
    # The Playbook's order (warm-up and clipping before a lower rate) holds for rates in the
    # usual range; far above it, the rate itself is the problem and its advice comes first.
    priority = "medium" if _lr_is_very_high(cfg) else "high"
    return [make_advice("instability", priority, "Unstable early training: add warm-up and gradient clipping",
                        rationale, changes, confidence, evidence)]


def lr_too_high(ctx: Context) -> list[Advice]:
    c, cfg = ctx.curves, ctx.cfg
    tl, vl = c.train_loss, c.val_loss
    oscillation = None
    steps = [i for i in range(1, c.n) if tl[i - 1] > T["oscillation_min_loss"]]
    if len(steps) >= T["oscillation_min_steps"]:
        rises = [i for i in steps if tl[i] > tl[i - 1] * (1 + T["oscillation_rise"])]
        fraction = len(rises) / len(steps)
        if len(rises) >= T["oscillation_min_rises"] and fraction >= T["oscillation_fraction"]:
            oscillation = (rises, len(steps), fraction)
    early_rise = None
    for i in range(1, min(int(T["early_epochs"]), c.n)):
        if vl[i - 1] > 0 and vl[i] > vl[i - 1] * (1 + T["early_val_loss_rise"]) and tl[i] > T["train_loss_not_low"]:
            early_rise = i
            break
    unstable = ctx.has("instability")
    if oscillation is None and early_rise is None and not unstable:
        return []
    parts = []
    evidence: dict = {"learning_rate": cfg["learning_rate"], "lr_factor": T["lr_high_factor"]}
    if oscillation:
        rises, n_steps, fraction = oscillation
        detail = ", ".join(f"+{100 * (tl[i] / tl[i - 1] - 1):.1f}% at epoch {int(c.epoch[i])}" for i in rises[:5])
        parts.append(f"training loss rose in {len(rises)} of {n_steps} epoch-to-epoch steps "
                     f"({100 * fraction:.0f}%; {detail}) instead of falling steadily (threshold: "
                     f"{100 * T['oscillation_fraction']:.0f}% of the steps starting above a loss of "
                     f"{loss_str(T['oscillation_min_loss'])})")
        evidence["oscillation"] = {"rises": len(rises), "steps": n_steps, "fraction": fraction,
                                   "epochs": [int(c.epoch[i]) for i in rises]}
    if early_rise is not None:
        i = early_rise
        parts.append(f"validation loss rose {100 * (vl[i] / vl[i - 1] - 1):.0f}% from {loss_str(vl[i - 1])} at "
                     f"epoch {int(c.epoch[i - 1])} to {loss_str(vl[i])} at epoch {int(c.epoch[i])} while the "
                     f"training loss was still {loss_str(tl[i])} (above {loss_str(T['train_loss_not_low'])})")
        evidence["early_val_loss_rise"] = {"epoch": int(c.epoch[i]), "val_loss_before": vl[i - 1],
                                           "val_loss": vl[i], "train_loss": tl[i]}
    lr = cfg["learning_rate"]
    factor = T["lr_high_factor"]
    own_evidence = bool(parts)
    if unstable:
        parts.append("the run shows early instability (see the warm-up/clipping advice, to try first)")
    if _lr_is_high(cfg):
        parts.append(f"{sig(lr)} is high for {cfg['optimizer']} (>= "
                     f"{sig(T['high_lr_for_optimizer'][cfg['optimizer']])})")
    priority = "medium" if unstable and not _lr_is_very_high(cfg) else "high"
    confidence = 0.45
    if oscillation:
        confidence = 0.55 + 0.25 * _ramp(oscillation[2], T["oscillation_fraction"], 0.3)
    if early_rise is not None:
        confidence = max(confidence, 0.6) + (0.1 if oscillation else 0.0)
    if _lr_is_high(cfg):
        confidence += 0.1
    if not own_evidence:
        confidence = min(confidence, 0.5)
    rationale = ("The learning rate looks too high: " + "; ".join(parts)
                 + f". Lower it {factor:g}x ({sig(lr)} -> {sig(lr / factor)}).")
    return [make_advice("lr_too_high", priority, f"Learning rate too high: lower it {factor:g}x",
                        rationale, {"learning_rate": lr / factor}, confidence, evidence)]


# --- too low a learning rate ---------------------------------------------------------------------------


def lr_too_low(ctx: Context) -> list[Advice]:
    c, cfg = ctx.curves, ctx.cfg
    if c.n < T["min_epochs_for_trends"]:
        return []
    tl, ta = c.train_loss, c.train_acc
    if ta[-1] >= T["lr_low_train_accuracy"] or _lr_is_high(cfg):
        return []
    dead = c.dead[-1]
    if math.isfinite(dead) and dead > T["dead_fraction"]:
        return []  # a flat loss with many dead units comes from a rate that was too high
    if tl[0] <= 0:
        return []
    total = (tl[0] - tl[-1]) / tl[0]
    k = ctx.k
    recent = (tl[-k] - tl[-1]) / tl[-k] if tl[-k] > 0 else 0.0
    steps = c.n * ctx.steps_per_epoch
    flat = 0 <= total < T["lr_low_flat_decrease"] and tl[-1] > T["lr_low_flat_loss"]
    slow = recent >= T["lr_low_recent_decrease"] and (steps >= T["lr_low_min_steps"] or _lr_is_low(cfg))
    if not (flat or slow):
        return []
    extreme = (flat and total < T["lr_low_extreme_decrease"]) or (
        slow and ta[-1] < T["lr_low_very_low_train_accuracy"])
    factor = T["lr_low_extreme_factor"] if extreme else T["lr_low_factor"]
    lr = cfg["learning_rate"]
    if flat:
        what = (f"the training loss barely moved: {loss_str(tl[0])} at epoch {int(c.epoch[0])} to {loss_str(tl[-1])} at "
                f"epoch {int(c.epoch[-1])}, {100 * total:.1f}% lower (threshold "
                f"{100 * T['lr_low_flat_decrease']:.0f}%), still far above a fitted network's loss")
    else:
        what = (f"after {steps:,} optimizer steps the training loss is still falling steadily "
                f"({100 * recent:.1f}% over the last {k} epochs, {loss_str(tl[-k])} -> {loss_str(tl[-1])}) but "
                f"from a high level")
    rationale = (f"The learning rate looks too low: {what}; training accuracy is only {pct(ta[-1])} "
                 f"(threshold {pct(T['lr_low_train_accuracy'])})"
                 + (f"; {sig(lr)} is low for {cfg['optimizer']}" if _lr_is_low(cfg) else "")
                 + f". Raise it {factor:g}x ({sig(lr)} -> {sig(lr * factor)})"
                 + ((f"; 10x because the curve is extremely flat (< {100 * T['lr_low_extreme_decrease']:.0f}% "
                     f"over the run)." if flat else
                     f"; 10x because training accuracy is below {pct(T['lr_low_very_low_train_accuracy'])}.")
                    if extreme else "."))
    confidence = 0.6 + (0.15 if extreme else 0.0) + (0.1 if _lr_is_low(cfg) else 0.0)
    evidence = {"relative_decrease": total, "recent_relative_decrease": recent, "window": k,
                "optimizer_steps": steps, "final_train_accuracy": ta[-1], "learning_rate": lr,
                "lr_factor": factor, "mode": "flat" if flat else "slow"}
    return [make_advice("lr_too_low", "high", f"Learning rate too low: raise it {factor:g}x",
                        rationale, {"learning_rate": lr * factor}, confidence, evidence)]


# --- overfitting / underfitting --------------------------------------------------------------------------


def _still_improving(ctx: Context) -> dict | None:
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


def overfitting(ctx: Context) -> list[Advice]:
    c, cfg = ctx.curves, ctx.cfg
    if c.n < T["min_epochs_for_trends"]:
        return []
    gap = c.train_acc - c.val_acc
    vmin_index = int(np.argmin(c.val_loss))
    rise = float(c.val_loss[-1] - c.val_loss[vmin_index])
    train_fell = c.train_loss[-1] < c.train_loss[vmin_index]
    gap_last = float(gap[-1])
    gap_growth = float(gap[-1] - gap[vmin_index])
    if not (gap_last * 100 > T["overfit_gap_points"] and gap_growth * 100 > T["overfit_gap_rise_points"]
            and rise > T["overfit_val_loss_rise"] and train_fell):
        return []
    vmin_epoch = int(c.epoch[vmin_index])
    best_index = int(np.argmax(c.val_acc))
    best_epoch = int(c.epoch[best_index])
    improving = _still_improving(ctx)
    evidence = {"val_loss_min": c.val_loss[vmin_index], "val_loss_min_epoch": vmin_epoch,
                "val_loss_final": c.val_loss[-1], "val_loss_rise": rise,
                "train_loss_at_min": c.train_loss[vmin_index], "train_loss_final": c.train_loss[-1],
                "gap_points": 100 * gap_last, "gap_points_at_min": 100 * gap[vmin_index],
                "best_epoch": best_epoch, "best_val_accuracy": c.val_acc[best_index],
                "thresholds": {"overfit_gap_points": T["overfit_gap_points"],
                               "overfit_gap_rise_points": T["overfit_gap_rise_points"],
                               "overfit_val_loss_rise": T["overfit_val_loss_rise"]}}
    facts = (f"validation loss rose {loss_str(rise)} from its minimum {loss_str(c.val_loss[vmin_index])} at epoch "
             f"{vmin_epoch} to {loss_str(c.val_loss[-1])} at epoch {int(c.epoch[-1])} while training loss kept "
             f"falling ({loss_str(c.train_loss[vmin_index])} -> {loss_str(c.train_loss[-1])}); train/val accuracy gap "
             f"{pts(gap_last)} (was {pts(gap[vmin_index])} at epoch {vmin_epoch})")
    if cfg["dropout"] > 0:
        facts += "; training accuracy is measured with dropout on, so the real gap is larger"
    advices = []
    # Main fix: regularise.
    changes: dict = {}
    dropout, l2 = cfg["dropout"], cfg["l2"]
    new_l2 = T["overfit_l2_start"] if l2 == 0 else l2 * T["overfit_l2_factor"]
    if dropout < T["overfit_dropout_max_for_increase"]:
        changes["dropout"] = min(0.9, round(dropout + T["overfit_dropout_step"], 2))
    changes["l2"] = new_l2
    said = []
    if "dropout" in changes:
        said.append(f"dropout {dropout:g} -> {changes['dropout']:g}")
    said.append(f"l2 {l2:g} -> {new_l2:g}")
    priority = "medium" if improving else "high"
    confidence = (0.65 + 0.15 * _ramp(100 * gap_last, T["overfit_gap_points"], T["overfit_gap_points"])
                  + 0.1 * _ramp(rise, T["overfit_val_loss_rise"], 3 * T["overfit_val_loss_rise"]))
    if improving:
        confidence -= 0.15
    rationale = (f"The network is overfitting: {facts}. Regularise more: {', '.join(said)}."
                 + (" Validation accuracy is still rising, so keep the epochs; regularisation should lower "
                    "the validation loss without losing accuracy." if improving else ""))
    advices.append(make_advice("overfitting", priority, "Overfitting: regularise more (dropout, L2)",
                               rationale, changes, confidence, evidence))
    # Alternative: stop near the best epoch.
    if not improving:
        if cfg["early_stopping_patience"] == 0:
            stop = {"early_stopping_patience": int(T["early_stopping_patience"])}
            how = (f"turn on early stopping with patience {int(T['early_stopping_patience'])}: it stops after "
                   f"{int(T['early_stopping_patience'])} epochs without a better validation accuracy and "
                   f"restores the best weights")
        else:
            stop = {"epochs": best_epoch + int(T["epochs_margin"])}
            how = f"train for {best_epoch + int(T['epochs_margin'])} epochs (best epoch + {int(T['epochs_margin'])})"
        rationale = (f"Validation accuracy peaked at {pct(c.val_acc[best_index])} at epoch {best_epoch} of "
                     f"{int(c.epoch[-1])}; the later epochs only fit the training set ({facts}). "
                     f"Alternatively {how}.")
        advices.append(make_advice("overfitting", "medium", f"Overfitting: stop near the best epoch ({best_epoch})",
                                   rationale, stop, confidence - 0.1, evidence))
    # Alternative: a smaller network.
    params = _parameter_count(cfg["hidden_layers"])
    if params > T["large_network_params"]:
        smaller = [max(64, w // 2) for w in cfg["hidden_layers"]]
        advices.append(make_advice(
            "overfitting", "low", "Overfitting: try a smaller network",
            f"The network has {params:,} parameters (more than {T['large_network_params']:,}) and overfits "
            f"({facts}). Halving the widths ({show_value(cfg['hidden_layers'])} -> {show_value(smaller)}) "
            f"reduces its capacity to memorise.",
            {"hidden_layers": smaller}, confidence - 0.2, {**evidence, "parameters": params}))
    return advices


def _parameter_count(hidden: list[int]) -> int:
    sizes = [784, *hidden, 10]
    return sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))


def underfitting(ctx: Context) -> list[Advice]:
    c, cfg = ctx.curves, ctx.cfg
    if c.n < T["min_epochs_for_trends"]:
        return []
    if any(ctx.has(kind) for kind in ("divergence", "lr_too_low", "lr_too_high", "instability")):
        return []  # the optimiser, not the capacity, is what holds the training accuracy down
    k = ctx.k
    ta_last = float(c.train_acc[-1])
    gain = fitted_gain(c.train_acc[-k:])
    gap = ta_last - float(c.val_acc[-1])
    hidden = list(cfg["hidden_layers"])
    tiny = min(hidden) < T["tiny_width"]
    flat = 100 * gain < T["underfit_flat_points"]
    if not (ta_last < T["underfit_train_accuracy"] and (flat or tiny)
            and 100 * gap < T["underfit_max_gap_points"]):
        return []
    items: list[tuple[str, object, str]] = []
    if tiny:
        wider = [min(2048, max(4 * w, int(T["widen_to_min"]))) if w < T["tiny_width"] else w for w in hidden]
        items.append(("hidden_layers", wider, f"widen the tiny hidden layers {show_value(hidden)} -> "
                                              f"{show_value(wider)} (narrower than {int(T['tiny_width'])} units)"))
    if cfg["dropout"] >= T["heavy_dropout"]:
        new = max(0.0, round(cfg["dropout"] - 0.3, 2))
        items.append(("dropout", new, f"lower the heavy dropout {cfg['dropout']:g} -> {new:g}"))
    if cfg["l2"] >= T["heavy_l2"]:
        new = cfg["l2"] / 10
        items.append(("l2", new, f"lower the heavy l2 {cfg['l2']:g} -> {new:g}"))
    lr = cfg["learning_rate"]
    if _lr_is_low(cfg):
        items.append(("learning_rate", lr * T["lr_low_factor"],
                      f"raise the learning rate {T['lr_low_factor']:g}x ({sig(lr)} is low for {cfg['optimizer']})"))
    elif _lr_is_high(cfg):
        items.append(("learning_rate", lr / T["lr_high_factor"],
                      f"lower the learning rate {T['lr_high_factor']:g}x ({sig(lr)} is high for "
                      f"{cfg['optimizer']}: the optimiser cannot settle into a good minimum)"))
    if not items:
        if max(hidden) < 2048:
            wider = [min(2048, 2 * w) for w in hidden]
            items.append(("hidden_layers", wider, f"double the widths {show_value(hidden)} -> {show_value(wider)}"))
        elif len(hidden) < 3:
            deeper = [*hidden, max(64, hidden[-1] // 2)]
            items.append(("hidden_layers", deeper, f"add a layer {show_value(hidden)} -> {show_value(deeper)}"))
        if cfg["lr_schedule"] != "constant":
            longer = _longer(cfg["epochs"])
            items.append(("epochs", longer, f"train longer ({cfg['epochs']} -> {longer} epochs; the decaying "
                                            f"schedule reached a low rate before the network fitted)"))
    items = items[:3]
    changes = {name: value for name, value, _ in items}
    dropout_note = " (measured with dropout on)" if cfg["dropout"] > 0 else ""
    if flat:
        trend = (f"gained only {pts(gain)} over the last {k} epochs (threshold {T['underfit_flat_points']:.1f} "
                 f"points)")
    else:
        trend = (f"is still rising ({pts(gain)} over the last {k} epochs) but the network has a hidden layer "
                 f"narrower than {int(T['tiny_width'])} units, which caps what it can fit")
    rationale = (f"The network underfits: training accuracy{dropout_note} is {pct(ta_last)} (threshold "
                 f"{pct(T['underfit_train_accuracy'])}) and {trend}, with a train/val gap of {pts(gap)}: it "
                 f"cannot fit the training data, so more regularisation will not help. In order of likely "
                 f"impact: " + "; ".join(text for _, _, text in items) + ".")
    evidence = {"final_train_accuracy": ta_last, "train_accuracy_gain_points": 100 * gain,
                "gap_points": 100 * gap, "window": k, "hidden_layers": hidden, "flat": flat, "tiny": tiny,
                "thresholds": {"underfit_train_accuracy": T["underfit_train_accuracy"],
                               "underfit_flat_points": T["underfit_flat_points"],
                               "underfit_max_gap_points": T["underfit_max_gap_points"]}}
    confidence = 0.6 + 0.2 * _ramp(T["underfit_train_accuracy"] - ta_last, 0, 0.1)
    return [make_advice("underfitting", "high", "Underfitting: give the network more capacity to fit",
                        rationale, changes, confidence, evidence)]


# --- still improving ----------------------------------------------------------------------------------------


def more_epochs(ctx: Context) -> list[Advice]:
    c, cfg, run = ctx.curves, ctx.cfg, ctx.run
    if run.status != "succeeded" or ctx.has("divergence"):
        return []
    info = _still_improving(ctx)
    if info is None:
        return []
    new_epochs = _longer(cfg["epochs"])
    if new_epochs <= cfg["epochs"]:
        return []
    k = info["window"]
    last_epoch = info["last_epoch"]
    extra = new_epochs - last_epoch
    expected = _extrapolate(c.epoch[-k:], c.val_acc[-k:], extra)
    best_text = ("the best epoch is the last" if info["best_epoch"] == last_epoch
                 else f"the best epoch ({info['best_epoch']}) is next to last")
    rationale = (f"Validation accuracy was still rising: it gained {pts(info['gain'])} over the last {k} epochs "
                 f"({pct(c.val_acc[-k])} -> {pct(c.val_acc[-1])}, linear fit; threshold "
                 f"{pts(info['threshold'])}) and {best_text} ({last_epoch}). Train {new_epochs} epochs instead "
                 f"of {cfg['epochs']}: expected +{100 * expected:.1f} points over {extra} more epochs "
                 f"(extrapolated from the last {k} epochs with a logarithmic fit).")
    evidence = {**info, "expected_gain_points": 100 * expected, "extra_epochs": extra,
                "new_epochs": new_epochs}
    confidence = 0.6 + 0.2 * _ramp(info["gain"], info["threshold"], 2 * info["threshold"])
    return [make_advice("more_epochs", "medium",
                        f"Still improving: train longer (expected +{100 * expected:.1f} points)",
                        rationale, {"epochs": new_epochs}, confidence, evidence)]


def _extrapolate(epochs: np.ndarray, accuracy: np.ndarray, extra: int) -> float:
    """Expected gain after `extra` more epochs from a fit acc = a + b ln(epoch) (diminishing returns)."""
    x = np.log(np.maximum(np.asarray(epochs, dtype=float), 1.0))
    y = np.asarray(accuracy, dtype=float)
    if x.size < 2 or np.ptp(x) == 0:
        return 0.0
    slope = float(np.polyfit(x, y, 1)[0])
    last = float(np.max(np.asarray(epochs, dtype=float)))
    gain = slope * (math.log(last + extra) - math.log(last))
    # A log fit over a few early epochs over-promises; never expect more than a share of the
    # distance to what an MLP reaches on Fashion-MNIST at all.
    headroom = T["extrapolation_headroom_share"] * max(0.0, T["mlp_ceiling_accuracy"] - float(y[-1]))
    return float(min(max(gain, 0.0), headroom))


# --- plateau / noise ---------------------------------------------------------------------------------------


def plateau(ctx: Context) -> list[Advice]:
    c, cfg = ctx.curves, ctx.cfg
    if c.n < T["min_epochs_for_trends"] or ctx.has("divergence"):
        return []
    k = ctx.k
    window = c.val_acc[-k:]
    noise = detrended_std(window) if k >= 4 else 0.0
    noise_threshold = max(T["noise_std_points"] / 100,
                          T["noise_binomial_multiple"] * ctx.val_noise(float(np.mean(window))))
    drops = int(np.sum(np.diff(window) < 0))
    noisy = drops >= 1 and noise > noise_threshold  # a curve that only rises is bending, not noisy
    best_index = int(np.argmax(c.val_acc))
    since_best = int(c.epoch[-1] - c.epoch[best_index])
    stalled = (cfg["lr_schedule"] == "constant" and since_best >= T["plateau_patience"]
               and not ctx.has("overfitting") and ctx.category != "excellent")
    if not (noisy or stalled):
        return []
    facts = []
    if noisy:
        facts.append(f"validation accuracy is noisy over the last {k} epochs: it scatters {pts(noise)} (std "
                     f"around its trend) where {pts(noise_threshold)} is expected from "
                     f"{ctx.n_val:,} validation images")
    if stalled:
        facts.append(f"no better validation accuracy for {since_best} epochs (best "
                     f"{pct(c.val_acc[best_index])} at epoch {int(c.epoch[best_index])}; threshold "
                     f"{int(T['plateau_patience'])}) with a constant learning rate")
    options: list[tuple[dict, str, str]] = []
    if cfg["lr_schedule"] == "constant":
        options.append(({"lr_schedule": "cosine"}, "decay the learning rate (cosine)",
                         "decay the learning rate (cosine schedule): large constant steps keep the weights "
                         "bouncing around the minimum"))
    if noisy and cfg["batch_size"] < 4096:
        bigger = min(4096, cfg["batch_size"] * int(T["batch_factor"]))
        options.append(({"batch_size": bigger}, f"double the batch size ({bigger})",
                        f"double the batch ({cfg['batch_size']} -> {bigger}) for less noisy gradients"))
    if cfg["optimizer"] == "sgd":
        beta = cfg["momentum"] if cfg["momentum"] >= 0.5 else 0.9
        switch = {"optimizer": "momentum", "learning_rate": cfg["learning_rate"] * (1 - beta)}
        if cfg["momentum"] != beta:
            switch["momentum"] = beta
        options.append((switch, "switch sgd to momentum", f"switch sgd to momentum {beta:g} with the rate x{1 - beta:g} "
                                f"({sig(cfg['learning_rate'])} -> {sig(cfg['learning_rate'] * (1 - beta))}), the "
                                f"same effective step with smoother updates"))
    if not options:
        return []
    evidence = {"noise_points": 100 * noise, "noise_threshold_points": 100 * noise_threshold,
                "noisy": noisy, "stalled": stalled, "epochs_since_best": since_best, "window": k,
                "validation_images": ctx.n_val}
    advices = []
    base = "; ".join(facts)
    confidence = 0.55 + 0.2 * (_ramp(noise, noise_threshold, noise_threshold) if noisy else 0.5)
    what = "Noisy late validation curve" if noisy and not stalled else "Validation plateau"
    changes, short, text = options[0]
    advices.append(make_advice("plateau", "medium", f"{what}: {short}",
                               f"{base[0].upper()}{base[1:]}. Main fix: {text}.", changes, confidence, evidence))
    if len(options) > 1:
        changes, short, text = options[1]
        advices.append(make_advice("plateau", "low", f"{what}: alternatively {short}",
                                   f"{base[0].upper()}{base[1:]}. Alternatively: {text}.", changes,
                                   confidence - 0.15, evidence))
    return advices


# --- dead / saturated units ----------------------------------------------------------------------------------


def dead_units(ctx: Context) -> list[Advice]:
    c, cfg = ctx.curves, ctx.cfg
    if c.n == 0 or ctx.has("divergence"):
        return []
    values = c.dead[np.isfinite(c.dead)]
    if values.size == 0:
        return []
    last = float(values[-1])
    first = float(values[0])
    activation = cfg["activation"]
    lr = cfg["learning_rate"]
    factor = T["dead_lr_factor"]
    evidence = {"dead_unit_fraction": last, "first_epoch_fraction": first, "activation": activation,
                "learning_rate": lr, "lr_factor": factor}
    trend = f" (up from {100 * first:.0f}% at epoch {int(c.epoch[0])})" if last > first + 0.005 and values.size > 1 else ""
    if activation in ("relu", "leaky_relu"):
        if last <= T["dead_fraction"]:
            return []
        priority = "high" if last > T["dead_fraction_severe"] else "medium"
        if activation == "relu":
            changes = {"activation": "leaky_relu", "learning_rate": lr / factor}
            rationale = (f"{100 * last:.0f}% of the hidden ReLU units output 0 on every validation image at the "
                         f"last epoch{trend} (threshold {100 * T['dead_fraction']:.0f}%): they no longer learn. "
                         f"Switch to leaky_relu, which keeps a small gradient for negative inputs, and lower the "
                         f"learning rate {factor:g}x ({sig(lr)} -> {sig(lr / factor)}): large updates push units "
                         f"into the dead zone. He initialisation is already used for the relu family, so "
                         f"initialisation is not the cause.")
            title = "Many dead ReLU units: use leaky_relu and a lower rate"
        else:
            changes = {"learning_rate": lr / factor}
            rationale = (f"{100 * last:.0f}% of the hidden leaky-ReLU units are negative on every validation "
                         f"image{trend} (threshold {100 * T['dead_fraction']:.0f}%) and pass only the 1% leak. "
                         f"Lower the learning rate {factor:g}x ({sig(lr)} -> {sig(lr / factor)}).")
            title = "Many inactive leaky-ReLU units: lower the rate"
        return [make_advice("dead_units", priority, title, rationale, changes,
                            0.7 + 0.15 * _ramp(last, T["dead_fraction"], 0.3), evidence)]
    if last <= T["saturated_fraction"]:
        return []
    rationale = (f"{100 * last:.0f}% of the hidden tanh units are saturated (|tanh| > 0.99 on every validation "
                 f"image){trend}, threshold {100 * T['saturated_fraction']:.0f}%: their gradient is below 2%. "
                 f"Lower the learning rate {factor:g}x ({sig(lr)} -> {sig(lr / factor)}); Xavier initialisation "
                 f"is already used for tanh.")
    priority = "high" if last > T["dead_fraction_severe"] else "medium"
    return [make_advice("dead_units", priority, "Many saturated tanh units: lower the rate", rationale,
                        {"learning_rate": lr / factor}, 0.65 + 0.15 * _ramp(last, T["saturated_fraction"], 0.3),
                        evidence)]


# --- success ---------------------------------------------------------------------------------------------------


def success(ctx: Context) -> list[Advice]:
    cfg, run, summary = ctx.cfg, ctx.run, ctx.summary
    if ctx.category != "excellent" or run.status != "succeeded":
        return []
    metric_name, metric = _headline(summary)
    changes: dict = {}
    next_text = ""
    if ctx.has("overfitting"):
        next_text = "Next: apply the overfitting advice; this run's best epoch is already excellent."
    else:
        if not ctx.has("more_epochs"):
            changes["epochs"] = _longer(cfg["epochs"])
        if cfg["lr_schedule"] != "cosine":
            changes["lr_schedule"] = "cosine"
        if changes:
            parts = []
            if "epochs" in changes:
                parts.append(f"{changes['epochs']} epochs instead of {cfg['epochs']}")
            if "lr_schedule" in changes:
                parts.append(f"cosine decay instead of {cfg['lr_schedule']}")
            next_text = ("Next experiment worth trying: a longer run with cosine decay ("
                         + ", ".join(parts) + "), or the sweep around this config in the evidence.")
        else:
            next_text = "Next experiment worth trying: the sweep around this config in the evidence."
    lr, dropout = cfg["learning_rate"], cfg["dropout"]
    sweep = {
        "learning_rate": sorted({round_sig(lr / 2), round_sig(lr), round_sig(min(10.0, lr * 2))}),
        "dropout": sorted({round(min(0.9, max(0.0, dropout + d)), 2) for d in (-0.1, 0.0, 0.1)}),
        "l2": sorted({0.0, 1e-5, 1e-4} | {round_sig(cfg["l2"])}),
        "seed": [cfg["seed"], (cfg["seed"] + 1) % 2**31, (cfg["seed"] + 2) % 2**31],
    }
    rationale = (f"An excellent run: {metric_name} {pct(metric)} (excellent is >= "
                 f"{pct(T['excellent_accuracy'])}; a well-tuned MLP reaches 88-90% on Fashion-MNIST). "
                 + next_text)
    return [make_advice("success", "low", f"Excellent run: {pct(metric)} {metric_name}", rationale, changes,
                        0.9, {"sweep_suggestion": sweep, metric_name.replace(" ", "_"): metric})]


def _headline(summary: dict) -> tuple[str, float | None]:
    if summary.get("test_accuracy") is not None:
        return "test accuracy", summary["test_accuracy"]
    return "best validation accuracy", summary.get("best_val_accuracy")
