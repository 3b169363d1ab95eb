"""Compute-optimal allocation in closed form from a fitted L(N, D) = E + A/N^alpha + B/D^beta.

Minimising L under C = k N D gives N_opt = G (C/k)^(beta/(alpha+beta)) and D_opt = (C/k)^(alpha/(alpha+beta)) / G,
with G = (alpha A / (beta B))^(1/(alpha+beta)) (Hoffmann et al. 2022, approach 3). k is `flops_per_param_sample`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from scalinglab.errors import UserError, check_flops_per_param_sample
from scalinglab.fit.forms.two_var import FIXED_FLOOR_PREFIX

ADDITIVE_FORMS = ("chinchilla", "chinchilla_shared", "chinchilla_no_floor", "chinchilla_no_floor_shared")


def additive_params(form_name: str, params: Mapping[str, Any]) -> dict[str, Any] | None:
    """E, A, B, alpha, beta of a law in chinchilla's additive family, None for any other form.

    The nested forms fill what they fix: E = 0 without a floor, beta = alpha with one exponent (a fixed
    floor, `chinchilla_floor=E`, reports its E). The allocation does not depend on E, so all of them have
    chinchilla's closed-form N_opt and D_opt. Values may be scalars or arrays (bootstrap replicas).
    """
    if form_name not in ADDITIVE_FORMS and not form_name.startswith(FIXED_FLOOR_PREFIX):
        return None
    out = dict(params)
    out.setdefault("E", 0.0)
    out.setdefault("beta", out["alpha"])
    return out


def allocation_coefficients(params: dict, flops_per_param_sample: float = 6.0) -> tuple[np.ndarray, ...]:
    """(log k_N, a, log k_D, b) with N_opt = k_N C^a and D_opt = k_D C^b; arrays in, arrays out."""
    k = flops_per_param_sample
    check_flops_per_param_sample(k)
    alpha, beta = np.asarray(params["alpha"], float), np.asarray(params["beta"], float)
    if np.any(alpha <= 0) or np.any(beta <= 0):
        raise UserError("parametric allocation needs alpha > 0 and beta > 0 (a law that improves in both N and D)")
    total = alpha + beta
    log_g = (np.log(alpha * np.asarray(params["A"], float)) - np.log(beta * np.asarray(params["B"], float))) / total
    a, b = beta / total, alpha / total
    return log_g - a * np.log(k), a, -log_g - b * np.log(k), b


def parametric_allocation(
    params: dict, c: np.ndarray | float, flops_per_param_sample: float = 6.0
) -> tuple[np.ndarray, np.ndarray]:
    """(N_opt, D_opt) at budget(s) c; `params` holds E, A, B, alpha, beta (scalars or arrays)."""
    log_kn, a, log_kd, b = allocation_coefficients(params, flops_per_param_sample)
    log_c = np.log(np.asarray(c, dtype=float))
    return np.exp(log_kn + a * log_c), np.exp(log_kd + b * log_c)
