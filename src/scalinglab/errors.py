"""Errors a user can cause, the one-line message they end in, and the setting checks estimators share.

Anything raised as `UserError` is printed by the CLI as a single line and exits with code 2.
"""

from __future__ import annotations

import math


class UserError(ValueError):
    """Bad input from the user: a file, column, row, key or option that cannot be used as given."""

    exit_code = 2


def check_whole(name: str, value: float, minimum: int = 0, unit: str = "") -> None:
    """A UserError naming the setting unless `value` is a whole number >= `minimum` (refits, seeds, bins)."""
    if int(value) != value or value < minimum:
        raise UserError(f"{name} must be a whole number >= {minimum}{f' ({unit})' if unit else ''}, got {value}")


def check_level(name: str, value: float) -> None:
    """A UserError naming the setting unless `value` is a coverage strictly between 0 and 1."""
    if not 0 < value < 1:
        raise UserError(f"{name} must be between 0 and 1, got {value}")


def check_flops_per_param_sample(value: float, name: str = "flops_per_param_sample") -> None:
    """k in C = k N D must be a finite number > 0 (6 for a transformer: 2 forward, 4 backward)."""
    if not (math.isfinite(value) and value > 0):
        raise UserError(f"{name} must be a finite number > 0 (FLOPs per parameter per sample), got {value:g}")
