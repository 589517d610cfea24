"""The single-run diagnoses, by family; each rule reads a `Context` and returns a list of Advice.

Every rule compares against a named entry of THRESHOLDS and cites the numbers it
used in its rationale (and in `evidence`). Rules propose raw `changes`; `analyze`
passes them through `valid_changes` (clamped, no no-op keys, validated).
"""

from .context import Context, make_advice
from .divergence import divergence
from .dynamics import batch_size, dead_units, instability, more_epochs, plateau
from .fit import over_regularisation, overfitting, underfitting
from .learning_rate import lr_too_high, lr_too_low
from .outcome import performance, rating, success
from .while_training import live_findings

# Rule order matters: later rules read what earlier ones found (ctx.fired).
RULES = (divergence, instability, over_regularisation, lr_too_high, lr_too_low, overfitting, underfitting,
         batch_size, more_epochs, plateau, dead_units, live_findings, success)

__all__ = ["RULES", "Context", "divergence", "headline", "make_advice", "performance", "rating"]
