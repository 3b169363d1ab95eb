"""Learning-rate schedules as multipliers of the base rate, over a run's own length."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

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
    progress = min((step - decay_start + 1) / decay_steps, 1.0)
    return floor + (1 - floor) * DECAY_SHAPES[cfg.decay_shape](progress)


# The share of the stable rate left at `progress` (0 to 1) through a wsd cooldown.
DECAY_SHAPES: dict[str, Callable[[float], float]] = {
    "linear": lambda p: 1.0 - p,
    "cosine": lambda p: 0.5 * (1.0 + math.cos(math.pi * p)),
    "sqrt": lambda p: 1.0 - math.sqrt(p),
}


def learning_rates(cfg: ScheduleConfig, total: int, base_lr: float = 1.0) -> np.ndarray:
    """The learning rate of every optimiser step of a `total`-step run (step 1 first), as the trainer sets it."""
    return base_lr * np.array([lr_factor(step, total, cfg) for step in range(total)])
