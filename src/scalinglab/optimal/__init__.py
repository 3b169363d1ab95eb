"""Compute-optimal analysis: which model size, steps and data for a FLOPs budget, by three methods; whether
the methods agree; and which run to train next (`suggest_runs`).

The exports are imported on first use (the CLI's --help stays light).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ComputeOptimal": "scalinglab.optimal.compute_optimal",
    "parametric_allocation": "scalinglab.optimal.parametric",
    "suggest_runs": "scalinglab.optimal.suggest",
    "Agreement": "scalinglab.optimal.agreement",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'scalinglab.optimal' has no attribute '{name}'")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
