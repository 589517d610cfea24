"""How training moves over the epochs: unstable early epochs, still improving at the end, a noisy or
stalled validation curve, and hidden units that died or saturated."""

from __future__ import annotations

import math

import numpy as np

from ..curves import detrended_std, fitted_gain
from ..formatting import loss_str, pct, pts, sig
from ..thresholds import THRESHOLDS as T
from ..types import Advice
from .context import Context, clip_value, longer_epochs, lr_is_very_high, make_advice, ramp, still_improving


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
    clip = clip_value(c)
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
    priority = "medium" if lr_is_very_high(cfg) else "high"
    return [make_advice("instability", priority, "Unstable early training: add warm-up and gradient clipping",
                        rationale, changes, confidence, evidence)]


def more_epochs(ctx: Context) -> list[Advice]:
    c, cfg, run = ctx.curves, ctx.cfg, ctx.run
    if run.status != "succeeded" or ctx.has("divergence"):
        return []
    steep = _steep_short_run(ctx)
    info = still_improving(ctx) or steep
    if info is None:
        return []
    new_epochs = longer_epochs(cfg["epochs"])
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
    if steep is not None:
        rationale += (f" The run stopped after only {c.n} epochs (at most {int(T['short_run_epochs'])}) while its "
                      f"last epoch still added {pts(steep['last_gain'])} (threshold {pts(steep['threshold'])}): "
                      f"it is far from converged, so training longer comes first.")
    evidence = {**info, "expected_gain_points": 100 * expected, "extra_epochs": extra,
                "new_epochs": new_epochs, "short_and_steep": steep is not None}
    confidence = 0.6 + 0.2 * ramp(info["gain"], info["threshold"], 2 * info["threshold"])
    return [make_advice("more_epochs", "high" if steep is not None else "medium",
                        f"Still improving: train longer (expected +{100 * expected:.1f} points)",
                        rationale, {"epochs": new_epochs}, confidence, evidence)]


def _steep_short_run(ctx: Context) -> dict | None:
    """A short run (<= short_run_epochs) whose val accuracy still rose steeply over its last epoch."""
    c = ctx.curves
    if not 2 <= c.n <= T["short_run_epochs"]:
        return None
    last_gain = float(c.val_acc[-1] - c.val_acc[-2])
    threshold = max(T["steep_gain_points"] / 100, ctx.val_noise(float(c.val_acc[-1])))
    if last_gain <= threshold or float(np.max(c.val_acc)) > float(c.val_acc[-1]):
        return None
    k = ctx.k
    return {"gain": fitted_gain(c.val_acc[-k:]), "last_gain": last_gain, "window": k, "threshold": threshold,
            "best_epoch": int(c.epoch[-1]), "last_epoch": int(c.epoch[-1]),
            "noise": ctx.val_noise(float(c.val_acc[-1]))}


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


def plateau(ctx: Context) -> list[Advice]:
    c, cfg = ctx.curves, ctx.cfg
    if c.n < T["min_epochs_for_trends"] or ctx.has("divergence"):
        return []
    k = ctx.k
    noisy, noise, noise_threshold = _noisy_val(ctx)
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
    confidence = 0.55 + 0.2 * (ramp(noise, noise_threshold, noise_threshold) if noisy else 0.5)
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


def _noisy_val(ctx: Context) -> tuple[bool, float, float]:
    """(noisy, scatter, threshold): the last window's val accuracy drops at least once and scatters
    around its linear trend more than noise_std_points and the binomial noise of the val set."""
    window = ctx.curves.val_acc[-ctx.k:]
    noise = detrended_std(window) if ctx.k >= 4 else 0.0
    threshold = max(T["noise_std_points"] / 100,
                    T["noise_binomial_multiple"] * ctx.val_noise(float(np.mean(window))))
    drops = int(np.sum(np.diff(window) < 0))
    return drops >= 1 and noise > threshold, noise, threshold  # only rising: bending, not noisy


def batch_size(ctx: Context) -> list[Advice]:
    """A batch so large the run made too few updates, or so small the val curve is noise."""
    c, cfg = ctx.curves, ctx.cfg
    if c.n < 2 or ctx.has("divergence"):
        return []
    batch = cfg["batch_size"]
    steps = c.n * ctx.steps_per_epoch
    ta_last = float(c.train_acc[-1])
    if (batch >= T["large_batch"] and steps < T["large_batch_max_steps"]
            and ta_last < T["large_batch_train_accuracy"]):
        new = int(T["large_batch_target"])
        rationale = (f"Batches of {batch} gave only {ctx.steps_per_epoch} optimizer steps per epoch, {steps:,} in "
                     f"the whole run (threshold {int(T['large_batch_max_steps'])}), and training accuracy is "
                     f"{pct(ta_last)} (below {pct(T['large_batch_train_accuracy'])}): the network is short of "
                     f"updates, not of data. Use batches of {new} ({batch // new}x the steps per epoch at the same "
                     f"rate); alternatively keep the batch and raise the rate.")
        evidence = {"batch_size": batch, "steps_per_epoch": ctx.steps_per_epoch, "optimizer_steps": steps,
                    "final_train_accuracy": ta_last, "mode": "large"}
        confidence = 0.65 + 0.15 * ramp(T["large_batch_max_steps"] - steps, 0, T["large_batch_max_steps"] / 2)
        return [make_advice("batch_size", "high", f"Batch too large: {batch} -> {new} for more updates",
                            rationale, {"batch_size": new}, confidence, evidence)]
    if batch <= T["small_batch"] and c.n >= T["min_epochs_for_trends"]:
        noisy, noise, threshold = _noisy_val(ctx)
        if not noisy:
            return []
        new = int(T["small_batch_target"])
        rationale = (f"Batches of {batch} (at most {int(T['small_batch'])}) make every step noisy: validation "
                     f"accuracy scatters {pts(noise)} around its trend over the last {ctx.k} epochs where "
                     f"{pts(threshold)} is expected from {ctx.n_val:,} validation images. Use batches of {new} "
                     f"({new // batch}x fewer, less noisy steps per epoch).")
        evidence = {"batch_size": batch, "noise_points": 100 * noise, "noise_threshold_points": 100 * threshold,
                    "mode": "small"}
        return [make_advice("batch_size", "medium", f"Batch too small: {batch} -> {new} for steadier steps",
                            rationale, {"batch_size": new}, 0.55 + 0.2 * ramp(noise, threshold, threshold),
                            evidence)]
    return []


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
        priority = "high" if last > T["dead_fraction_severe"] and not _tiny(cfg) else "medium"
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
                            0.7 + 0.15 * ramp(last, T["dead_fraction"], 0.3), evidence)]
    if last <= T["saturated_fraction"]:
        return []
    rationale = (f"{100 * last:.0f}% of the hidden tanh units are saturated (|tanh| > 0.99 on every validation "
                 f"image){trend}, threshold {100 * T['saturated_fraction']:.0f}%: their gradient is below 2%. "
                 f"Lower the learning rate {factor:g}x ({sig(lr)} -> {sig(lr / factor)}); Xavier initialisation "
                 f"is already used for tanh.")
    priority = "high" if last > T["dead_fraction_severe"] and not _tiny(cfg) else "medium"
    return [make_advice("dead_units", priority, "Many saturated tanh units: lower the rate", rationale,
                        {"learning_rate": lr / factor}, 0.65 + 0.15 * ramp(last, T["saturated_fraction"], 0.3),
                        evidence)]


def _tiny(cfg: dict) -> bool:
    """A hidden layer so narrow that capacity, not dead units, is the first problem (underfitting outranks)."""
    return min(cfg["hidden_layers"]) < T["capacity_over_dead_width"]
