"""Compute-optimal analysis: which model size, steps and data for a FLOPs budget, by three methods."""

from scalinglab.optimal.compute_optimal import ComputeOptimal
from scalinglab.optimal.parametric import parametric_allocation

__all__ = ["ComputeOptimal", "parametric_allocation"]
