"""scalinglab: run and analyse scaling-law studies.

The public API: `ScalingLaw` to fit laws, `ComputeOptimal`, backtests, the observations table and its
importers, studies and reports. Names are imported on first use, so the command line's --help and the study
store never pay for the fitting engine.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# name -> module: the public API, imported on first use.
_EXPORTS = {
    "FORMS": "scalinglab.fit.forms",
    "get_form": "scalinglab.fit.forms",
    "ScalingLaw": "scalinglab.fit.law",
    "fit_law": "scalinglab.fit.law",
    "FormSearch": "scalinglab.fit.search",
    "Selection": "scalinglab.fit.selection",
    "select_form": "scalinglab.fit.selection",
    "Backtest": "scalinglab.fit.backtest",
    "Choice": "scalinglab.fit.backtest",
    "backtest": "scalinglab.fit.backtest",
    "backtest_via": "scalinglab.fit.backtest",
    "choose_form": "scalinglab.fit.backtest",
    "holdout_mask": "scalinglab.fit.backtest",
    "TwoStepLaw": "scalinglab.fit.two_step",
    "ScheduleLaw": "scalinglab.fit.schedule_law",
    "Curve": "scalinglab.fit.schedule_law",
    "lr_areas": "scalinglab.fit.schedule_law",
    "Link": "scalinglab.fit.links",
    "fit_link": "scalinglab.fit.links",
    "select_link": "scalinglab.fit.links",
    "ComputeOptimal": "scalinglab.optimal.compute_optimal",
    "parametric_allocation": "scalinglab.optimal.parametric",
    "Profile": "scalinglab.optimal.iso_metric",
    "cost_table": "scalinglab.optimal.iso_metric",
    "iso_metric_profile": "scalinglab.optimal.iso_metric",
    "COLUMNS": "scalinglab.observations",
    "SCHEMA": "scalinglab.observations",
    "FitData": "scalinglab.observations",
    "empty_observations": "scalinglab.observations",
    "observation_row": "scalinglab.observations",
    "read_table": "scalinglab.observations",
    "select_fit_data": "scalinglab.observations",
    "write_table": "scalinglab.observations",
    "import_mlflow": "scalinglab.importers.mlflow",
    "import_tensorboard": "scalinglab.importers.tensorboard",
    "import_wandb": "scalinglab.importers.wandb",
    "build_run_ids": "scalinglab.observations",
    "StudyConfig": "scalinglab.study.config",
    "load_config": "scalinglab.study.config",
    "parse_config": "scalinglab.study.config",
    "Store": "scalinglab.study.store",
    "execute": "scalinglab.study.runner",
    "Analysis": "scalinglab.analysis",
    "analyse": "scalinglab.analysis",
    "load_observations": "scalinglab.analysis",
    "write_comparison": "scalinglab.report.html",
    "write_report": "scalinglab.report.html",
    "chinchilla_loss": "scalinglab.testing",
    "example_curves": "scalinglab.testing",
    "example_observations": "scalinglab.testing",
    "UserError": "scalinglab.errors",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'scalinglab' has no attribute '{name}'")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
