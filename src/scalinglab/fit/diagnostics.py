"""Warnings about a fitted law: parameters at bounds, poorly identified directions, extrapolation.

Each check returns plain sentences, so the CLI, the report and the Python API show the same text.
"""

from __future__ import annotations

import numpy as np

from scalinglab.fit.forms.base import Form

CONDITION_LIMIT = 1e9
EXTRAPOLATION_FACTOR = 10.0


def bound_warnings(form: Form, theta: np.ndarray) -> list[str]:
    out = []
    for value, param in zip(theta, form.params, strict=True):
        for bound, side in ((param.lower, "lower"), (param.upper, "upper")):
            if abs(value - bound) <= 1e-6 * (1.0 + abs(bound)):
                shown = float(param.to_public(np.asarray(bound)))
                out.append(f"{param.public} is at its {side} bound ({shown:.4g}): the data do not pin it down")
    return out


def conditioning_warnings(form: Form, hess: np.ndarray) -> list[str]:
    """Flag a Hessian (in the internal parametrisation) that is singular or badly conditioned."""
    eigval, eigvec = np.linalg.eigh(hess)
    top = float(np.max(np.abs(eigval)))
    low = float(eigval[0])
    if top <= 0 or not np.all(np.isfinite(eigval)):
        return ["the objective is flat at the optimum: no parameter is identified"]
    condition = top / low if low > 0 else np.inf
    if condition <= CONDITION_LIMIT:
        return []
    weak = eigvec[:, 0]
    parts = [form.params[i].public for i in np.argsort(-np.abs(weak)) if abs(weak[i]) > 0.3]
    shown = "inf" if not np.isfinite(condition) else f"{condition:.2g}"
    return [
        f"poorly identified: Hessian condition number {shown}; the weakest direction mixes {', '.join(parts)}"
        " (their values trade off against each other; read their intervals, not their point values)"
    ]


def extrapolation_warnings(
    names: tuple[str, ...], values: dict[str, np.ndarray], domain: dict[str, tuple[float, float]]
) -> list[str]:
    """Inputs more than EXTRAPOLATION_FACTOR outside the fitted range of each variable."""
    out = []
    for name in names:
        lo, hi = domain[name]
        v = np.asarray(values[name], dtype=float)
        label = name.upper()
        if np.any(v > hi * EXTRAPOLATION_FACTOR):
            top = float(np.max(v))
            out.append(
                f"{label} = {top:.3g} is {top / hi:.3g}x the largest fitted {label} ({hi:.3g}): far extrapolation"
            )
        if np.any(v < lo / EXTRAPOLATION_FACTOR):
            low = float(np.min(v))
            out.append(
                f"{label} = {low:.3g} is {lo / low:.3g}x below the smallest {label} ({lo:.3g}): far extrapolation"
            )
    return out
