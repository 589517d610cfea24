"""How good the run is: its rating against what a sound MLP reaches with the same number of training
images and epochs (the measured reference curve, `reference.py`), the performance summary every
analysis ends with, and the next experiment for an excellent run."""

from __future__ import annotations

from ..changes import config_view
from ..formatting import pct, pts, round_sig
from ..reference import EXCELLENT_MARGIN, FULL_TRAINING_SET, bands, reference_accuracy, training_images
from ..thresholds import THRESHOLDS as T
from ..types import Advice, RunSummary
from .context import Context, longer_epochs, make_advice

# A subset run rated excellent: the next experiment also offers this many times the images (capped
# at all 60 000): the reference curve's steepest gains are in the data, not in the epochs.
MORE_DATA_FACTOR = 4


def success(ctx: Context) -> list[Advice]:
    cfg, run, summary = ctx.cfg, ctx.run, ctx.summary
    if ctx.category != "excellent" or run.status != "succeeded":
        return []
    metric_name, metric = headline(summary)
    ref = reference_of(run, summary)
    changes: dict = {}
    next_text = ""
    if ctx.has("overfitting"):
        next_text = "Next: apply the overfitting advice; this run's best epoch is already excellent."
    else:
        if not ctx.has("more_epochs"):
            changes["epochs"] = longer_epochs(cfg["epochs"])
        if cfg["lr_schedule"] != "cosine":
            changes["lr_schedule"] = "cosine"
        if cfg.get("train_size"):
            more = cfg["train_size"] * MORE_DATA_FACTOR
            changes["train_size"] = None if more >= FULL_TRAINING_SET else more
        if changes:
            parts = []
            if "train_size" in changes:
                parts.append(f"{changes['train_size'] or FULL_TRAINING_SET:,} images instead of "
                             f"{cfg['train_size']:,}")
            if "epochs" in changes:
                parts.append(f"{changes['epochs']} epochs instead of {cfg['epochs']}")
            if "lr_schedule" in changes:
                parts.append(f"cosine decay instead of {cfg['lr_schedule']}")
            what = "more data and epochs" if "train_size" in changes else "a longer run with cosine decay"
            next_text = f"Next experiment worth trying: {what} ({', '.join(parts)})"
            new_cfg = {**cfg, **changes}
            new_ref = reference_accuracy(training_images(new_cfg), new_cfg["epochs"],
                                         metric=ref["metric"])
            if new_ref > ref["reference_accuracy"] + EXCELLENT_MARGIN:
                next_text += (f", where a sound MLP reaches {pct(new_ref)}"
                              f" ({pts(new_ref - ref['reference_accuracy'])} more)")
            next_text += "; or the sweep around this config in the evidence."
        else:
            next_text = "Next experiment worth trying: the sweep around this config in the evidence."
    lr, dropout = cfg["learning_rate"], cfg["dropout"]
    sweep = {
        "learning_rate": sorted({round_sig(lr / 2), round_sig(lr), round_sig(min(10.0, lr * 2))}),
        "dropout": sorted({round(min(0.9, max(0.0, dropout + d)), 2) for d in (-0.1, 0.0, 0.1)}),
        "l2": sorted({0.0, 1e-5, 1e-4} | {round_sig(cfg["l2"])}),
        "seed": [cfg["seed"], (cfg["seed"] + 1) % 2**31, (cfg["seed"] + 2) % 2**31],
    }
    rationale = f"An excellent run: {metric_name} {pct(metric)}; {_reach(ref)}. {next_text}"
    return [make_advice("success", "low", f"Excellent run: {pct(metric)} {metric_name}", rationale, changes,
                        0.9, {"sweep_suggestion": sweep, metric_name.replace(" ", "_"): metric,
                              "reference_accuracy": ref["reference_accuracy"],
                              "train_images": ref["train_images"], "epochs": ref["epochs"]})]


def headline(summary: dict) -> tuple[str, float | None]:
    """The accuracy a run is rated by, named: its test accuracy when known, else its best validation one."""
    if summary.get("test_accuracy") is not None:
        return "test accuracy", summary["test_accuracy"]
    return "best validation accuracy", summary.get("best_val_accuracy")


def reference_of(run: RunSummary, summary: dict) -> dict:
    """What a sound MLP reaches with this run's training images and epochs, on its headline metric.

    Epochs: the configured run length (an early-stopped run had that budget), or the epochs run when
    the run was cancelled. The reference metric matches the headline: test accuracy, else the best
    validation accuracy (which on small subsets reads higher: the best of noisy measurements).
    """
    cfg = config_view(run.config)
    images = training_images(cfg)
    epochs = cfg["epochs"]
    if run.status == "cancelled" and summary.get("epochs_run"):
        epochs = min(epochs, int(summary["epochs_run"]))
    metric = "test" if summary.get("test_accuracy") is not None else "best_val"
    return {"reference_accuracy": reference_accuracy(images, epochs, metric=metric),
            "train_images": images, "epochs": epochs, "metric": metric, "train_size": cfg["train_size"],
            "bands": bands(images, epochs, metric=metric)}


def _reach(ref: dict) -> str:
    """'a sound MLP reaches 80.2% test accuracy on 1,800 training images (train_size 2,000) in 10 epochs'"""
    what = "test accuracy" if ref["metric"] == "test" else "best validation accuracy"
    epochs = ref["epochs"]
    subset = f" (train_size {ref['train_size']:,})" if ref["train_size"] else ""
    return (f"a sound MLP reaches {pct(ref['reference_accuracy'])} {what} on {ref['train_images']:,} "
            f"training images{subset} in {epochs} epoch{'' if epochs == 1 else 's'}")


def _category(metric: float, ref: dict) -> str:
    """excellent / good / fair / poor by how far `metric` is below the reference (margins: reference.py,
    widened where the measured seed spread is larger than the excellent margin)."""
    shortfall = ref["reference_accuracy"] - metric
    for category in ("excellent", "good", "fair"):
        if shortfall <= ref["bands"][category] + 1e-12:  # exactly at a margin counts as inside
            return category
    return "poor"


def rating(run: RunSummary, summary: dict) -> str:
    """The run's category: failed, or excellent/good/fair/poor by its headline accuracy against the
    reference for its number of training images and epochs."""
    if run.status in ("failed", "diverged"):
        return "failed"
    _, metric = headline(summary)
    if metric is None:
        return "failed"
    return _category(metric, reference_of(run, summary))


def _scale(category: str, metric_name: str, metric: float, ref: dict) -> str:
    """The rating sentence: the reference figure, this run's, and the band it falls in."""
    shortfall = ref["reference_accuracy"] - metric
    b = ref["bands"]
    band = {"excellent": f"within {pts(b['excellent'])} of the reference or above it",
            "good": f"within {pts(b['good'])}", "fair": f"within {pts(b['fair'])}",
            "poor": f"more than {pts(b['fair'])} below"}[category]
    relation = f"{pts(-shortfall)} above it" if shortfall < 0 else f"{pts(shortfall)} below it"
    noise = (f", every margin widened by {pts(b['widened'])} of measured seed-to-seed spread"
             if b["widened"] >= 0.0005 else "")
    return (f"Rated {category}: {_reach(ref)}; this run reached {pct(metric)} {metric_name} ({relation}): "
            f"{category}, {band} (excellent within {pts(b['excellent'])} or above, good within "
            f"{pts(b['good'])}, fair within {pts(b['fair'])}, poor below{noise}; the reference is the "
            f"default config's mean over seeds; on all the data an MLP reaches about 90%, chance is "
            f"{pct(T['chance_accuracy'])}).")


def performance(run: RunSummary, summary: dict, category: str) -> Advice:
    """The summary every analysis ends with: what the run reached, how fast, and its rating."""
    metric_name, metric = headline(summary)
    ref = reference_of(run, summary)
    parts = []
    if run.status == "diverged":
        parts.append("The run diverged, so it is rated failed"
                     + (f" ({run.message})" if run.message else ""))
    elif run.status == "failed":
        parts.append("The run failed" + (f" ({run.message})" if run.message else ""))
    elif run.status == "cancelled":
        parts.append(f"The run was cancelled after {summary['epochs_run']} epoch"
                     f"{'' if summary['epochs_run'] == 1 else 's'}")
    if summary["best_val_accuracy"] is not None:
        text = f"Best validation accuracy {pct(summary['best_val_accuracy'])}"
        if summary["best_epoch"] is not None:
            text += f" at epoch {summary['best_epoch']}"
        if summary["test_accuracy"] is not None:
            text += f", test accuracy {pct(summary['test_accuracy'])}"
        parts.append(text)
    elif run.status not in ("diverged", "failed"):
        parts.append("No epoch completed, so there is nothing to rate")
    if summary["epochs_to_95pct_best"] is not None:
        parts.append(f"it reached 95% of its best by epoch {summary['epochs_to_95pct_best']} of "
                     f"{summary['epochs_run']} ({summary['convergence']} convergence)")
    if summary["generalization_gap"] is not None:
        parts.append(f"final train/val accuracy {pct(summary['final_train_accuracy'])} / "
                     f"{pct(summary['final_val_accuracy'])} (gap {pts(summary['generalization_gap'] / 100)})")
    if category == "failed":
        scale = ("Rated failed: diverged and failed runs, and runs without any accuracy, are not rated on "
                 "the accuracy scale.")
    else:
        scale = _scale(category, metric_name, metric, ref)
    rationale = "; ".join(parts) + ". " + scale if parts else scale
    title = (f"Rated {category}: {pct(metric)} {metric_name}" if metric is not None and category != "failed"
             else f"Rated {category}")
    return make_advice("performance", "low", title, rationale, {}, 1.0,
                       {**summary, "category": category,
                        "reference_accuracy": ref["reference_accuracy"], "train_images": ref["train_images"],
                        "epochs": ref["epochs"], "reference_metric": ref["metric"],
                        "thresholds": {
                            "excellent_margin": ref["bands"]["excellent"], "good_margin": ref["bands"]["good"],
                            "fair_margin": ref["bands"]["fair"], "widened_by_seed_spread": ref["bands"]["widened"],
                            "excellent_accuracy": ref["reference_accuracy"] - ref["bands"]["excellent"],
                            "good_accuracy": ref["reference_accuracy"] - ref["bands"]["good"],
                            "fair_accuracy": ref["reference_accuracy"] - ref["bands"]["fair"]}})
