"""Learning-rate schedules as multipliers of the base rate, over a run's own length."""

from __future__ import annotations

import math

from scalinglab.study.config import ScheduleConfig


def lr_factor(step: int, total: int, cfg: ScheduleConfig) -> float:
    """The multiplier of the base learning rate for optimiser step `step` (0-based) of `total`."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    floor = cfg.min_lr_ratio
    if cfg.kind == "constant":
        return 1.0
    if cfg.kind == "cosine":
        span = max(total - cfg.warmup_steps, 1)
        progress = min((step - cfg.warmup_steps) / span, 1.0)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    decay_steps = max(1, round(cfg.decay_fraction * total))
    decay_start = total - decay_steps
    if step < decay_start:
        return 1.0
    return floor + (1 - floor) * (1 - (step - decay_start + 1) / decay_steps)
