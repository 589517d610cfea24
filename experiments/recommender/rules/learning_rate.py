"""A learning rate too high (the loss oscillates, validation loss rises early) or too low (the loss
barely moves, or falls slowly from a high level)."""

from __future__ import annotations

import math

from ..formatting import loss_str, pct, sig
from ..thresholds import THRESHOLDS as T
from ..types import Advice
from .context import Context, lr_is_high, lr_is_low, lr_is_very_high, make_advice, ramp


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
    if lr_is_high(cfg):
        parts.append(f"{sig(lr)} is high for {cfg['optimizer']} (>= "
                     f"{sig(T['high_lr_for_optimizer'][cfg['optimizer']])})")
    priority = "medium" if unstable and not lr_is_very_high(cfg) else "high"
    if ctx.has("over_regularisation") and not lr_is_high(cfg):
        priority = "medium"  # heavy L2/dropout also shake the loss at a usual rate: reduce them first
    confidence = 0.45
    if oscillation:
        confidence = 0.55 + 0.25 * ramp(oscillation[2], T["oscillation_fraction"], 0.3)
    if early_rise is not None:
        confidence = max(confidence, 0.6) + (0.1 if oscillation else 0.0)
    if lr_is_high(cfg):
        confidence += 0.1
    if not own_evidence:
        confidence = min(confidence, 0.5)
    rationale = ("The learning rate looks too high: " + "; ".join(parts)
                 + f". Lower it {factor:g}x ({sig(lr)} -> {sig(lr / factor)}).")
    return [make_advice("lr_too_high", priority, f"Learning rate too high: lower it {factor:g}x",
                        rationale, {"learning_rate": lr / factor}, confidence, evidence)]


def lr_too_low(ctx: Context) -> list[Advice]:
    c, cfg = ctx.curves, ctx.cfg
    if c.n < T["min_epochs_for_trends"]:
        return []
    tl, ta = c.train_loss, c.train_acc
    if ta[-1] >= T["lr_low_train_accuracy"] or lr_is_high(cfg):
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
    slow = recent >= T["lr_low_recent_decrease"] and (steps >= T["lr_low_min_steps"] or lr_is_low(cfg))
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
                 + (f"; {sig(lr)} is low for {cfg['optimizer']}" if lr_is_low(cfg) else "")
                 + f". Raise it {factor:g}x ({sig(lr)} -> {sig(lr * factor)})"
                 + ((f"; 10x because the curve is extremely flat (< {100 * T['lr_low_extreme_decrease']:.0f}% "
                     f"over the run)." if flat else
                     f"; 10x because training accuracy is below {pct(T['lr_low_very_low_train_accuracy'])}.")
                    if extreme else "."))
    confidence = 0.6 + (0.15 if extreme else 0.0) + (0.1 if lr_is_low(cfg) else 0.0)
    evidence = {"relative_decrease": total, "recent_relative_decrease": recent, "window": k,
                "optimizer_steps": steps, "final_train_accuracy": ta[-1], "learning_rate": lr,
                "lr_factor": factor, "mode": "flat" if flat else "slow"}
    return [make_advice("lr_too_low", "high", f"Learning rate too low: raise it {factor:g}x",
                        rationale, {"learning_rate": lr * factor}, confidence, evidence)]
