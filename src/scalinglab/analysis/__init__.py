"""The study pipeline between the fits and the report: every number the report shows, computed once and typed.

`analyse` fits the law, the compute-optimal laws, the profile, the costs, the suggestions and the two-step
fits from one observations table; `report/` only draws an `Analysis`.
"""

from scalinglab.analysis.load import load_observations
from scalinglab.analysis.pipeline import (
    Analysis,
    analyse,
    choose_data_scale,
    compute_marks,
    headline,
    measured_flops_per_param_sample,
    samples_per_datum,
)

__all__ = [
    "Analysis",
    "analyse",
    "choose_data_scale",
    "compute_marks",
    "headline",
    "load_observations",
    "measured_flops_per_param_sample",
    "samples_per_datum",
]
