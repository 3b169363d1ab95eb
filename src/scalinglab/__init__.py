"""scalinglab: run and analyse scaling-law studies.

The public API: `ScalingLaw` to fit laws, the observations table helpers, and the form registry. Names are
imported on first use, so the command line's --help and the study store never pay for the fitting engine.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "FORMS": "scalinglab.fit.forms",
    "get_form": "scalinglab.fit.forms",
    "ScalingLaw": "scalinglab.fit.law",
    "SCHEMA": "scalinglab.observations",
    "read_table": "scalinglab.observations",
    "select_fit_data": "scalinglab.observations",
    "UserError": "scalinglab.errors",
}

__all__ = ["FORMS", "SCHEMA", "ScalingLaw", "UserError", "__version__", "get_form", "read_table", "select_fit_data"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'scalinglab' has no attribute '{name}'")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
