"""Warnings about a fitted law: parameters at bounds, poorly identified directions, extrapolation.

Each check returns plain sentences, so the CLI, the report and the Python API show the same text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from scalinglab.fit.forms.base import Form
from scalinglab.fit.loss import Loss
from scalinglab.fit.optimize import minimize_pinned

CONDITION_LIMIT = 1e9
EXTRAPOLATION_FACTOR = 10.0
BOUND_SCAN = 0.05  # a parameter within this fraction of its box width from a bound is tested there
BOUND_RTOL = 1e-7  # pinned at the bound, the refit may cost at most this much more (relative) to count as there


@dataclass
class BoundCheck:
    """Parameters whose constrained optimum sits on a bound, and the best refit with them pinned there."""

    active: list[tuple[int, str]]  # (parameter index, "lower" or "upper")
    theta: np.ndarray  # the pinned refit, when it is at least as good as the free optimum; else the free optimum
    objective: float


def loose_parameters(law: Any) -> list[str]:
    """A fitted law's parameters whose profile interval is open or that sit at a bound, each once."""
    return list(dict.fromkeys([*getattr(law, "not_identified_", []), *getattr(law, "at_bounds_", [])]))


def held_out_error(law: Any) -> float | None:
    """The median relative held-out error of the form the law's selection chose (None: a form given, not chosen)."""
    selection = getattr(law, "selection_", None)
    if selection is None:
        return None
    chosen = selection.table[selection.table["form"] == selection.choice]
    return float(chosen["cv_error"].iloc[0]) if not chosen.empty else None


def check_bounds(
    form: Form, theta: np.ndarray, objective: float, lx: np.ndarray, ly: np.ndarray, loss: Loss
) -> BoundCheck:
    """Decide which bounds are active at the constrained optimum, independently of how far the optimiser crawled.

    Each parameter near a bound is pinned there and the others are refitted: the bound is active when the
    pinned optimum is no worse than the free one (within BOUND_RTOL). An optimiser that stopped at -29.9998
    against a bound of -30 on a flat direction and one that reached -30 give the same answer.
    """
    width = form.upper - form.lower
    candidates = [
        (i, side, bound)
        for i in form.free
        for side, bound in (("lower", form.params[i].lower), ("upper", form.params[i].upper))
        if abs(theta[i] - bound) <= BOUND_SCAN * width[i]
    ]
    if not candidates:
        return BoundCheck([], theta, objective)
    index = np.array([i for i, _, _ in candidates])
    values = np.array([bound for _, _, bound in candidates])
    starts = np.tile(theta, (len(candidates), 1))
    pinned = minimize_pinned(form, lx, ly, loss, starts, index, values, max_iter=5000, ftol=1e-15, gtol=1e-13)
    tolerance = BOUND_RTOL * abs(objective) + 1e-14 * ly.size
    is_active = pinned.objective <= objective + tolerance
    active = [(i, side) for (i, side, _), on in zip(candidates, is_active, strict=True) if on]
    best = int(np.argmin(pinned.objective))
    if pinned.objective[best] <= objective:
        return BoundCheck(active, pinned.theta[best], float(pinned.objective[best]))
    return BoundCheck(active, theta, objective)


def bound_warnings(form: Form, active: list[tuple[int, str]]) -> list[str]:
    out = []
    for i, side in active:
        param = form.params[i]
        bound = param.lower if side == "lower" else param.upper
        shown = float(param.to_public(np.asarray(bound)))
        out.append(f"{param.public} is at its {side} bound ({shown:.4g}): the data do not pin it down")
    return out


def conditioning_warnings(form: Form, information: np.ndarray) -> list[str]:
    """Flag an information matrix (in the internal parametrisation) that is singular or badly conditioned.

    `information` is J^T J of the log predictions at the fitted points (the Gauss-Newton matrix): whether the
    design pins every direction down, whatever the loss. The robust loss's own Hessian is not used: Huber's
    curvature is zero for every residual past its threshold, so a well-pinned law whose residuals all
    exceed delta would read as singular. Parameters the form fixes (lower == upper) are left out.
    """
    free = form.free
    eigval, eigvec = np.linalg.eigh(information[np.ix_(free, free)])
    top = float(np.max(np.abs(eigval)))
    low = float(eigval[0])
    if top <= 0 or not np.all(np.isfinite(eigval)):
        return ["the objective is flat at the optimum: no parameter is identified"]
    condition = top / low if low > 0 else np.inf
    if condition <= CONDITION_LIMIT:
        return []
    # every direction at least CONDITION_LIMIT times weaker than the strongest (with rounding, a flat direction
    # can come out slightly negative and be ordered before another weak one), weakest first
    weak = eigvec[:, eigval <= top / CONDITION_LIMIT]
    loading = np.max(np.abs(weak), axis=1)
    parts = [form.params[free[i]].public for i in np.argsort(-loading) if loading[i] > 0.3]
    shown = "inf" if not np.isfinite(condition) else f"{condition:.2g}"
    return [
        f"poorly identified: condition number {shown} of J^T J; the weakest directions involve {', '.join(parts)}"
        " (the data barely constrain them, or their values trade off against each other; read their intervals, "
        "not their point values)"
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
