"""The run recommender: explains what went wrong in a training run and proposes exact config changes.

Pure Python + NumPy (no Django): callers pass plain data.

    from experiments.recommender import RunSummary, analyze
    analysis = analyze(RunSummary(config=cfg, status="succeeded", epochs=[...]), history=[...])
"""

from .analysis import analyze
from .lab import LabRecord
from .thresholds import THRESHOLDS
from .types import Advice, Analysis, RunSummary

__all__ = ["THRESHOLDS", "Advice", "Analysis", "LabRecord", "RunSummary", "analyze"]
