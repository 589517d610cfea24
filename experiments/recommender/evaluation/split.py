"""The one split of the evaluation set into a development half and a held-out half.

Made once, before any tuning, by `split_cases(CASES, seed=SPLIT_SEED)`: within each expected
problem (stratified, so both halves cover every problem) the cases are sorted by id, shuffled
with `random.Random(seed)` and the first ceil(n/2) go to development. The result is written
down below as constants; a test checks the function still reproduces them exactly. Tune the
recommender on DEVELOPMENT only; HELD_OUT is for reporting.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from experiments.recommender.evaluation.cases import CASES, Case

SPLIT_SEED = 20_250_611
HALVES = ("development", "held-out")


def split_cases(cases: Iterable[Case], *, seed: int = SPLIT_SEED) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(development ids, held-out ids), each sorted, stratified by expected problem."""
    rng = random.Random(seed)
    by_kind: dict[str, list[str]] = {}
    for case in cases:
        by_kind.setdefault(case.expected, []).append(case.id)
    development: list[str] = []
    held_out: list[str] = []
    for kind in sorted(by_kind):
        ids = sorted(by_kind[kind])
        rng.shuffle(ids)
        cut = (len(ids) + 1) // 2
        development += ids[:cut]
        held_out += ids[cut:]
    return tuple(sorted(development)), tuple(sorted(held_out))


DEVELOPMENT: tuple[str, ...] = (
    "batch-adam-leaky-512", "batch-sgd-1024", "cap-adam-4", "cap-adam-tanh-8", "dead-adam-0.02",
    "dead-rmsprop-tanh", "div-momentum-tanh-1", "div-sgd-5", "few-adam-tanh-3", "few-sgd-60000-2",
    "fit-momentum-1000-60", "fit-rmsprop-tanh", "flat-momentum-tanh-16", "flat-rmsprop-leaky",
    "high-momentum-0.2", "high-sgd-leaky-0.5", "low-momentum-leaky-1e-5", "low-rmsprop-3e-7", "ok-adam",
    "ok-adam-60000", "ok-momentum-early-stop", "ok-momentum-tanh", "reg-adam-l2-0.1", "reg-rmsprop-tanh-both",
    "spiky-rmsprop-0.01", "spiky-sgd-tanh-deep",
)
HELD_OUT: tuple[str, ...] = (
    "batch-adam-tanh-16", "batch-momentum-30000", "cap-momentum-leaky-3", "cap-rmsprop-6x6", "dead-momentum-32",
    "dead-sgd-0.5", "div-adam-leaky-0.5", "div-rmsprop-0.3", "few-momentum-4", "few-rmsprop-leaky-5",
    "fit-adam-leaky-3", "fit-adam-wide", "flat-adam-32", "flat-sgd-16", "high-adam-0.03",
    "high-rmsprop-tanh-0.008", "low-adam-tanh-1e-6", "low-sgd-1e-4", "ok-adam-leaky-3", "ok-rmsprop-3",
    "ok-rmsprop-tanh", "ok-sgd-leaky-step", "reg-momentum-dropout-0.8", "reg-sgd-leaky-l2-0.3",
    "spiky-adam-leaky-3", "spiky-momentum-0.99",
)


def half_cases(half: str) -> list[Case]:
    """The cases of "development", "held-out" or "both", in the order of CASES."""
    if half not in (*HALVES, "both"):
        raise ValueError(f"unknown half {half!r}; use one of {', '.join((*HALVES, 'both'))}")
    wanted = set(DEVELOPMENT) if half == "development" else set(HELD_OUT) if half == "held-out" else None
    return [case for case in CASES if wanted is None or case.id in wanted]


def half_of(case_id: str) -> str:
    return "development" if case_id in DEVELOPMENT else "held-out"
