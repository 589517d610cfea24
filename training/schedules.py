"""Learning-rate schedules with optional linear warm-up.

`learning_rate_at(config, epoch, fraction)` gives the rate for the batch at
`epoch` (0-based) that is `fraction` (0..1) of the way through that epoch.
"""

from __future__ import annotations

import math

STEP_MILESTONES = (0.5, 0.75)  # step schedule: x0.1 at 50 % and at 75 % of the epochs
STEP_FACTOR = 0.1


def learning_rate_at(*, base_lr: float, schedule: str, epochs: int, epoch: int,
                     fraction: float = 0.0, warmup_epochs: int = 0, lr_decay: float = 1.0) -> float:
    position = epoch + fraction  # progress in epochs, continuous
    if warmup_epochs > 0 and position < warmup_epochs:
        # Linear ramp that reaches base_lr exactly when warm-up ends; never exactly zero.
        return base_lr * max(position, 1e-3) / warmup_epochs
    span = max(epochs - warmup_epochs, 1)
    after = epoch - warmup_epochs  # whole epochs since warm-up
    if schedule == "constant":
        return base_lr
    if schedule == "step":
        progress = after / span
        drops = sum(progress >= milestone for milestone in STEP_MILESTONES)
        return base_lr * STEP_FACTOR**drops
    if schedule == "exponential":
        return base_lr * lr_decay**after
    if schedule == "cosine":
        progress = min((position - warmup_epochs) / span, 1.0)
        return base_lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"unknown schedule {schedule!r}")
