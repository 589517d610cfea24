"""How good the run is: its rating on the accuracy scale, the performance summary every analysis
ends with, and the next experiment for an excellent run."""

from __future__ import annotations

from ..formatting import pct, pts, round_sig
from ..thresholds import THRESHOLDS as T
from ..types import Advice, RunSummary
from .context import Context, longer_epochs, make_advice


def success(ctx: Context) -> list[Advice]:
    cfg, run, summary = ctx.cfg, ctx.run, ctx.summary
    if ctx.category != "excellent" or run.status != "succeeded":
        return []
    metric_name, metric = headline(summary)
    changes: dict = {}
    next_text = ""
    if ctx.has("overfitting"):
        next_text = "Next: apply the overfitting advice; this run's best epoch is already excellent."
    else:
        if not ctx.has("more_epochs"):
            changes["epochs"] = longer_epochs(cfg["epochs"])
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


def headline(summary: dict) -> tuple[str, float | None]:
    """The accuracy a run is rated by, named: its test accuracy when known, else its best validation one."""
    if summary.get("test_accuracy") is not None:
        return "test accuracy", summary["test_accuracy"]
    return "best validation accuracy", summary.get("best_val_accuracy")


def rating(run: RunSummary, summary: dict) -> str:
    """The run's category: failed, or excellent/good/fair/poor by its headline accuracy."""
    if run.status in ("failed", "diverged"):
        return "failed"
    _, metric = headline(summary)
    if metric is None:
        return "failed"
    if metric >= T["excellent_accuracy"]:
        return "excellent"
    if metric >= T["good_accuracy"]:
        return "good"
    if metric >= T["fair_accuracy"]:
        return "fair"
    return "poor"


def performance(run: RunSummary, summary: dict, category: str) -> Advice:
    """The summary every analysis ends with: what the run reached, how fast, and its rating."""
    metric_name, metric = headline(summary)
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
        scale = (f"Rated {category}: excellent >= {pct(T['excellent_accuracy'])}, "
                 f"good >= {pct(T['good_accuracy'])}, "
                 f"fair >= {pct(T['fair_accuracy'])} ({metric_name}; a well-tuned MLP reaches 88-90% test "
                 f"accuracy on Fashion-MNIST, chance is {pct(T['chance_accuracy'])}).")
    rationale = "; ".join(parts) + ". " + scale if parts else scale
    title = (f"Rated {category}: {pct(metric)} {metric_name}" if metric is not None and category != "failed"
             else f"Rated {category}")
    return make_advice("performance", "low", title, rationale, {}, 1.0,
                       {**summary, "category": category,
                        "thresholds": {"excellent_accuracy": T["excellent_accuracy"],
                                       "good_accuracy": T["good_accuracy"],
                                       "fair_accuracy": T["fair_accuracy"]}})
