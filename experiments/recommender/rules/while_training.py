"""What the live diagnosis found while the run trained, carried into the advice after it ended.

A critical finding can stop a run early (stop_on_diagnosis) after too few epochs for the
curve rules (they need `min_epochs_for_trends`): "stopped at epoch 2: not learning" would
otherwise leave the run with nothing to apply. Each critical finding whose problem no rule
has named becomes advice of the matching kind, with the finding's own changes.
"""

from __future__ import annotations

from ..types import Advice
from .context import Context, make_advice

# Live finding kind -> the advice kind that names the same problem after the run.
ADVICE_KIND = {"divergence": "divergence", "exploding_gradients": "instability", "dead_units": "dead_units",
               "saturation": "dead_units", "plateau": "plateau"}


def _not_learning_kind(cfg: dict, changes: dict) -> str:
    """The not-learning fix says what held the run back: the rate (up or down), the
    regularisation or the capacity (see live_diagnosis._not_learning_fix)."""
    if "learning_rate" in changes:
        return "lr_too_low" if changes["learning_rate"] > cfg["learning_rate"] else "lr_too_high"
    if "hidden_layers" in changes:
        return "underfitting"
    return "over_regularisation"


def live_findings(ctx: Context) -> list[Advice]:
    advices = []
    for finding in ctx.run.diagnoses:
        if not isinstance(finding, dict) or finding.get("severity") != "critical":
            continue
        changes = finding.get("changes") if isinstance(finding.get("changes"), dict) else {}
        kind = (_not_learning_kind(ctx.cfg, changes) if finding.get("kind") == "not_learning"
                else ADVICE_KIND.get(finding.get("kind")))
        if kind is None or ctx.has(kind) or any(a.kind == kind for a in advices):
            continue
        epoch = finding.get("epoch")
        stopped = ctx.run.message.startswith(f"stopped at epoch {epoch}:")
        rationale = (f"Recognised while the run trained, at epoch {epoch}: {finding.get('message', '')}"
                     + (" The run was stopped there (stop on a critical diagnosis), too early for the "
                        "end-of-run curve rules." if stopped else ""))
        advices.append(make_advice(kind, "high", str(finding.get("title") or kind), rationale, changes, 0.8,
                                   {"live_finding": finding}))
    return advices
