"""How the network fits the training set: overfitting (regularise, stop earlier, shrink) and
underfitting (more capacity, less regularisation, a better rate)."""

from __future__ import annotations

import numpy as np

from ..curves import fitted_gain
from ..formatting import loss_str, pct, pts, show_value, sig
from ..thresholds import THRESHOLDS as T
from ..types import Advice
from .context import Context, longer_epochs, lr_is_high, lr_is_low, make_advice, ramp, still_improving


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
    improving = still_improving(ctx)
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
    confidence = (0.65 + 0.15 * ramp(100 * gap_last, T["overfit_gap_points"], T["overfit_gap_points"])
                  + 0.1 * ramp(rise, T["overfit_val_loss_rise"], 3 * T["overfit_val_loss_rise"]))
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


def over_regularisation(ctx: Context) -> list[Advice]:
    """Heavy dropout / L2 smothers the fit: train accuracy low and close to val, train loss high."""
    c, cfg = ctx.curves, ctx.cfg
    if c.n < T["min_epochs_for_trends"] or ctx.has("divergence"):
        return []
    dropout, l2 = cfg["dropout"], cfg["l2"]
    heavy_dropout = dropout >= T["overreg_dropout"]
    heavy_l2 = l2 >= T["overreg_l2"]
    ta_last, tl_last = float(c.train_acc[-1]), float(c.train_loss[-1])
    gap = ta_last - float(c.val_acc[-1])
    if not ((heavy_dropout or heavy_l2) and ta_last < T["overreg_train_accuracy"]
            and 100 * gap < T["overreg_max_gap_points"] and tl_last > T["overreg_min_train_loss"]):
        return []
    changes: dict = {}
    said = []
    if heavy_dropout:
        changes["dropout"] = round(min(T["overreg_dropout_target"], dropout / 2), 2)
        said.append(f"dropout {dropout:g} -> {changes['dropout']:g}")
    if heavy_l2:
        changes["l2"] = min(l2 / T["overreg_l2_factor"], T["overreg_l2_target"])
        said.append(f"l2 {l2:g} -> {changes['l2']:g}")
    heavy = [f"dropout {dropout:g} (heavy from {T['overreg_dropout']:g})" if heavy_dropout else "",
             f"l2 {l2:g} (heavy from {T['overreg_l2']:g})" if heavy_l2 else ""]
    rationale = (f"The network is over-regularised: {' and '.join(h for h in heavy if h)} hold the fit down. "
                 f"Training accuracy{' (measured with dropout on)' if dropout > 0 else ''} is only "
                 f"{pct(ta_last)} (threshold {pct(T['overreg_train_accuracy'])}), within {pts(gap)} of validation "
                 f"(threshold {T['overreg_max_gap_points']:g} points: the net is not memorising), and the final "
                 f"training loss is {loss_str(tl_last)} (above {loss_str(T['overreg_min_train_loss'])}; a fitted "
                 f"MLP reaches about 0.25). Reduce the regularisation: {', '.join(said)}; add it back gradually "
                 f"only if the train/val gap opens.")
    evidence = {"dropout": dropout, "l2": l2, "final_train_accuracy": ta_last, "final_train_loss": tl_last,
                "gap_points": 100 * gap,
                "thresholds": {name: T[name] for name in ("overreg_dropout", "overreg_l2", "overreg_train_accuracy",
                                                          "overreg_max_gap_points", "overreg_min_train_loss")}}
    confidence = (0.7 + 0.1 * (heavy_dropout and heavy_l2)
                  + 0.15 * ramp(T["overreg_train_accuracy"] - ta_last, 0, 0.1))
    return [make_advice("over_regularisation", "high", "Over-regularised: reduce dropout / L2",
                        rationale, changes, confidence, evidence)]


def underfitting(ctx: Context) -> list[Advice]:
    c, cfg = ctx.curves, ctx.cfg
    if c.n < T["min_epochs_for_trends"]:
        return []
    hidden = list(cfg["hidden_layers"])
    # A hidden layer this narrow caps the accuracy whatever the rate: report it beside rate advice.
    blockers = ("divergence", "lr_too_low") if min(hidden) < T["capacity_over_dead_width"] else (
        "divergence", "lr_too_low", "lr_too_high", "instability")
    if min(hidden) >= T["tiny_width"]:
        blockers += ("over_regularisation",)  # wide enough: the regularisation is what holds it down
    if any(ctx.has(kind) for kind in blockers):
        return []  # the optimiser (or the regularisation), not the capacity, holds the training accuracy down
    k = ctx.k
    ta_last = float(c.train_acc[-1])
    gain = fitted_gain(c.train_acc[-k:])
    gap = ta_last - float(c.val_acc[-1])
    tiny = min(hidden) < T["tiny_width"]
    flat = 100 * gain < T["underfit_flat_points"]
    # A layer narrower than capacity_over_dead_width cannot memorise the training set: a gap
    # there (a few points on a small subset) is sampling noise, not a sign it fits too well.
    memorising = 100 * gap >= T["underfit_max_gap_points"] and min(hidden) >= T["capacity_over_dead_width"]
    if not (ta_last < T["underfit_train_accuracy"] and (flat or tiny) and not memorising):
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
    if lr_is_low(cfg):
        items.append(("learning_rate", lr * T["lr_low_factor"],
                      f"raise the learning rate {T['lr_low_factor']:g}x ({sig(lr)} is low for {cfg['optimizer']})"))
    elif lr_is_high(cfg):
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
            longer = longer_epochs(cfg["epochs"])
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
    confidence = 0.6 + 0.2 * ramp(T["underfit_train_accuracy"] - ta_last, 0, 0.1)
    return [make_advice("underfitting", "high", "Underfitting: give the network more capacity to fit",
                        rationale, changes, confidence, evidence)]
