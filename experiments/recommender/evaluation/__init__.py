"""An honest evaluation set for the recommender (pure data and arithmetic, no Django).

`cases`: the flawed configurations and healthy controls; `split`: the fixed development /
held-out split; `report`: how outcomes are scored. `manage.py evaluate_recommender` runs them.
"""

from experiments.recommender.evaluation.cases import CASES, CASES_BY_ID, FAMILIES, HEALTHY, Case
from experiments.recommender.evaluation.report import (
    INFORMATIONAL_KINDS,
    REPORTING_KINDS,
    Outcome,
    Summary,
    format_outcome,
    format_summary,
    summarise,
)
from experiments.recommender.evaluation.split import (
    DEVELOPMENT,
    HALVES,
    HELD_OUT,
    SPLIT_SEED,
    half_cases,
    half_of,
    split_cases,
)

__all__ = ["CASES", "CASES_BY_ID", "DEVELOPMENT", "FAMILIES", "HALVES", "HEALTHY", "HELD_OUT",
           "INFORMATIONAL_KINDS", "REPORTING_KINDS", "SPLIT_SEED", "Case", "Outcome", "Summary",
           "format_outcome", "format_summary", "half_cases", "half_of", "split_cases", "summarise"]
