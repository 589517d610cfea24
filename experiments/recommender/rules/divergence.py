"""Divergence: the loss became non-finite, passed the trainer's limit, blew up or collapsed to guessing."""

from __future__ import annotations

import math

import numpy as np

from ..curves import Curves
from ..formatting import loss_str, pct, sig
from ..thresholds import THRESHOLDS as T
from ..types import Advice
from .context import Context, clip_value, make_advice


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
        clip = clip_value(c, healthy)
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
                        text[:1].upper() + text[1:] + ". " + rationale_tail, changes, confidence, evidence),
            *_rate_just_too_high(cfg)]


def _rate_just_too_high(cfg: dict) -> list[Advice]:
    """Beside a divergence at a rate just above the optimizer's stable range (at least its "high"
    rate, less than very_high_lr_multiple times it): the cause is named, and a milder cut offered.

    Far above the range (sgd at 5) a third of the rate still diverges, so only the divergence
    card speaks there.
    """
    lr, optimizer = cfg["learning_rate"], cfg["optimizer"]
    high = T["high_lr_for_optimizer"][optimizer]
    if not high <= lr < T["very_high_lr_multiple"] * high:
        return []
    factor = T["lr_high_factor"]
    rationale = (f"{optimizer} at {sig(lr)} is at or above {sig(high)}, where this optimizer stops being stable "
                 f"for these MLPs, but below {sig(T['very_high_lr_multiple'] * high)}: the rate caused the "
                 f"divergence, and a milder cut ({factor:g}x: {sig(lr)} -> {sig(lr / factor)}) may keep more of "
                 f"its speed than the {T['divergence_lr_factor']:g}x above. Find the fix measures both.")
    return [make_advice("lr_too_high", "high", f"Learning rate too high for {optimizer}: lower it {factor:g}x",
                        rationale, {"learning_rate": lr / factor}, 0.6,
                        {"learning_rate": lr, "high_lr_for_optimizer": high, "lr_factor": factor})]


def _trace(curves: Curves, values: np.ndarray, end: int, count: int = 4, start: int | None = None) -> str:
    """'0.512 (epoch 1), 0.498 (epoch 2), 12.4 (epoch 3)': the last `count` epochs up to index `end`,
    preceded by index `start` when given (e.g. the minimum the loss rose from)."""
    indices = list(range(max(0, end - count + 1), end + 1))
    if start is not None and start not in indices:
        indices = [start] + indices[1:] if len(indices) == count else [start] + indices
    return ", ".join(f"{loss_str(values[i])} (epoch {int(curves.epoch[i])})" for i in indices)
