"""Per-point losses on log residuals r = log(prediction) - log(observation).

Each loss gives its value, its derivative, and the IRLS curvature weight psi(r)/r used by the
Gauss-Newton model of the summed objective.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

LossKind = Literal["huber", "mse", "asymmetric"]


@dataclass(frozen=True)
class Loss:
    """The summed per-point loss. `huber` follows scipy.special.huber(delta, r).

    `asymmetric` is the Huber loss with over-predictions (r > 0) weighted `over_weight` times more.
    """

    kind: LossKind = "huber"
    delta: float = 1e-3
    over_weight: float = 2.0

    def __post_init__(self) -> None:
        if self.kind not in ("huber", "mse", "asymmetric"):
            raise ValueError(f"unknown loss '{self.kind}'; choose huber, mse or asymmetric")
        if not self.delta > 0:
            raise ValueError(f"loss delta must be > 0, got {self.delta}")
        if not self.over_weight > 0:
            raise ValueError(f"over_weight must be > 0, got {self.over_weight}")

    def evaluate(self, r: np.ndarray, derivatives: bool = True) -> tuple[np.ndarray, ...]:
        """(value, psi, weight) per point; only value when `derivatives` is False."""
        if self.kind == "mse":
            value = 0.5 * r * r
            return (value,) if not derivatives else (value, r, np.ones_like(r))
        # With m = min(|r|, delta): value m (|r| - m / 2), psi = clip(r), weight psi / r = delta / max(|r|, delta).
        size = np.abs(r)
        capped = np.minimum(size, self.delta)
        value = capped * (size - 0.5 * capped)
        scale = np.where(r > 0, self.over_weight, 1.0) if self.kind == "asymmetric" else None
        if scale is not None:
            value = value * scale
        if not derivatives:
            return (value,)
        psi = np.clip(r, -self.delta, self.delta)
        weight = self.delta / np.maximum(size, self.delta)
        if scale is not None:
            psi, weight = psi * scale, weight * scale
        return value, psi, weight

    def to_dict(self) -> dict:
        return {"kind": self.kind, "delta": self.delta, "over_weight": self.over_weight}
