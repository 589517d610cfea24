"""The recommender's value types: a run as the rules see it (`RunSummary`), one piece of
advice (`Advice`) and the whole diagnosis (`Analysis`), with the vocabularies they use.

Plain data: the recommender receives config dicts and epoch dicts, never model rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PRIORITIES = ("critical", "high", "medium", "low")
PRIORITY_RANK = {name: rank for rank, name in enumerate(PRIORITIES)}
CATEGORIES = ("excellent", "good", "fair", "poor", "failed")
STATUSES = ("succeeded", "failed", "diverged", "cancelled")
# Kinds that inform rather than fix: kept even when their `changes` end up empty.
INFO_KINDS = frozenset({"performance", "history", "success", "verified_none"})
# Kinds that flag a problem (everything else is information or a plain "train longer").
PROBLEM_KINDS = frozenset({
    "divergence", "lr_too_high", "lr_too_low", "overfitting", "underfitting", "instability",
    "plateau", "dead_units", "over_regularisation", "batch_size",
})


@dataclass(frozen=True)
class RunSummary:
    """One run as the rules see it (plain data, no ORM)."""

    config: dict  # a full TrainingConfig.to_dict()
    status: str  # "succeeded" | "failed" | "diverged" | "cancelled"
    epochs: list  # per-epoch dicts with the EpochMetrics keys, ordered by epoch (may be empty)
    best_val_accuracy: float | None = None
    best_epoch: int | None = None
    test_accuracy: float | None = None
    message: str = ""  # the trainer's message (e.g. divergence details)
    run_id: int | None = None
    diagnoses: tuple = ()  # the live diagnosis's stored findings (dicts), in the order they appeared


@dataclass
class Advice:
    kind: str  # stable machine name: "divergence", "overfitting", ...
    priority: str  # "critical" | "high" | "medium" | "low"
    title: str  # one line
    rationale: str  # cites the numbers it used
    changes: dict  # exact config changes, valid under TrainingConfig ({} for information)
    confidence: float  # 0..1
    evidence: dict = field(default_factory=dict)  # the numbers used (JSON-serialisable)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "priority": self.priority, "title": self.title,
                "rationale": self.rationale, "changes": dict(self.changes),
                "confidence": self.confidence, "evidence": self.evidence}


@dataclass
class Analysis:
    recommendations: list  # list[Advice], by priority (critical > ... > low) then confidence desc
    category: str  # "excellent" | "good" | "fair" | "poor" | "failed"
    summary: dict

    def kinds(self) -> list[str]:
        return [advice.kind for advice in self.recommendations]

    def to_dict(self) -> dict[str, Any]:
        return {"category": self.category, "summary": self.summary,
                "recommendations": [advice.to_dict() for advice in self.recommendations]}
