"""Laws in model size N and data size D: Chinchilla's additive form, its nested variants, Kaplan's combined form.

Inputs arrive as log N and log D; parameters that are positive scales are fitted as their logs.
"""

from __future__ import annotations

import functools

import numpy as np

from scalinglab.fit.forms.base import Array, Form, Param, affine_lse, logsumexp, product_grid


def _chinchilla_features(lx: Array) -> Array:
    # Terms e, a - alpha log N, b - beta log D over parameters (e, a, b, alpha, beta).
    features = np.zeros((3, 5, lx.shape[-1]))
    features[0, 0] = features[1, 1] = features[2, 2] = 1.0
    features[1, 3], features[2, 4] = -lx[0], -lx[1]
    return features


def _chinchilla_starts(lx: Array, ly: Array) -> Array:
    # The published grid (Hoffmann et al. 2022; Besiroglu et al. 2024): 4 x 6 x 6 x 5 x 5 = 4,500 starts.
    half_steps = np.arange(0.0, 2.01, 0.5)
    return product_grid(
        np.arange(-1.0, 1.01, 0.5), np.arange(0.0, 25.1, 5.0), np.arange(0.0, 25.1, 5.0), half_steps, half_steps
    )


CHINCHILLA = Form(
    name="chinchilla",
    formula="L = E + A / N^alpha + B / D^beta",
    inputs=("n", "d"),
    params=(
        Param("e", -30.0, 30.0, "E", log_scale=True),
        Param("a", -30.0, 200.0, "A", log_scale=True),
        Param("b", -30.0, 200.0, "B", log_scale=True),
        Param("alpha", 0.0, 10.0, "alpha"),
        Param("beta", 0.0, 10.0, "beta"),
    ),
    log_predict=affine_lse(_chinchilla_features),
    features=_chinchilla_features,
    start_grid=_chinchilla_starts,
    description="Hoffmann et al. (2022) performance law: an irreducible floor plus one power law per axis.",
)


def _no_floor_features(lx: Array, exponents: int = 2) -> Array:
    # Terms a - alpha log N, b - beta log D over parameters (a, b, alpha, beta); one exponent: beta is alpha.
    features = np.zeros((2, 2 + exponents, lx.shape[-1]))
    features[0, 0] = features[1, 1] = 1.0
    features[0, 2], features[1, 1 + exponents] = -lx[0], -lx[1]
    return features


def _no_floor_starts(lx: Array, ly: Array, exponents: int = 2) -> Array:
    scales = np.arange(0.0, 25.1, 5.0)
    return product_grid(scales, scales, *[np.arange(0.0, 2.01, 0.5)] * exponents)


CHINCHILLA_NO_FLOOR = Form(
    name="chinchilla_no_floor",
    formula="L = A / N^alpha + B / D^beta",
    inputs=("n", "d"),
    params=CHINCHILLA.params[1:],
    log_predict=affine_lse(_no_floor_features),
    features=_no_floor_features,
    start_grid=_no_floor_starts,
    description="chinchilla with E = 0: no irreducible floor within reach of the data.",
)


def _shared_features(lx: Array) -> Array:
    # Terms e, a - alpha log N, b - alpha log D over parameters (e, a, b, alpha).
    features = np.zeros((3, 4, lx.shape[-1]))
    features[0, 0] = features[1, 1] = features[2, 2] = 1.0
    features[1, 3], features[2, 3] = -lx[0], -lx[1]
    return features


def _shared_starts(lx: Array, ly: Array) -> Array:
    return product_grid(
        np.arange(-1.0, 1.01, 0.5), np.arange(0.0, 25.1, 5.0), np.arange(0.0, 25.1, 5.0), np.arange(0.0, 2.01, 0.5)
    )


CHINCHILLA_SHARED = Form(
    name="chinchilla_shared",
    formula="L = E + A / N^alpha + B / D^alpha",
    inputs=("n", "d"),
    params=CHINCHILLA.params[:4],
    log_predict=affine_lse(_shared_features),
    features=_shared_features,
    start_grid=_shared_starts,
    description="chinchilla with one exponent for both axes (alpha = beta).",
)


_no_floor_shared_features = functools.partial(_no_floor_features, exponents=1)
_no_floor_shared_starts = functools.partial(_no_floor_starts, exponents=1)


CHINCHILLA_NO_FLOOR_SHARED = Form(
    name="chinchilla_no_floor_shared",
    formula="L = A / N^alpha + B / D^alpha",
    inputs=("n", "d"),
    params=CHINCHILLA.params[1:4],
    log_predict=affine_lse(_no_floor_shared_features),
    features=_no_floor_shared_features,
    start_grid=_no_floor_shared_starts,
    description="chinchilla with E = 0 and one exponent for both axes: the two nested variants at once.",
)

FIXED_FLOOR_PREFIX = "chinchilla_floor="


def fixed_floor(floor: float) -> Form:
    """chinchilla with E fixed at `floor` (a known noise floor): E is pinned, the other four are fitted."""
    if not (np.isfinite(floor) and floor > 0):
        raise ValueError(f"the fixed floor E must be finite and > 0, got {floor}")
    e = float(np.log(floor))
    params = (Param("e", e, e, "E", log_scale=True),) + CHINCHILLA.params[1:]

    def starts(lx: Array, ly: Array) -> Array:
        grid = _chinchilla_starts(lx, ly)
        grid[:, 0] = e
        return np.unique(grid, axis=0)

    return Form(
        name=f"{FIXED_FLOOR_PREFIX}{floor:g}",
        formula=f"L = {floor:g} + A / N^alpha + B / D^beta",
        inputs=("n", "d"),
        params=params,
        log_predict=affine_lse(_chinchilla_features),
        features=_chinchilla_features,
        start_grid=starts,
        description="chinchilla with the floor E fixed by the user (e.g. a known noise floor).",
    )


def _kaplan_parts(theta: Array, lx: Array) -> tuple[Array, ...]:
    lnc, ldc, alpha_n, alpha_d = (theta[..., i : i + 1] for i in range(4))
    ratio = alpha_n / alpha_d
    return lnc, ldc, alpha_n, alpha_d, ratio * (lnc - lx[0]), ldc - lx[1]


def _kaplan_log_predict(theta: Array, lx: Array) -> Array:
    *_, alpha_d, u, v = _kaplan_parts(theta, lx)
    return alpha_d * logsumexp(u, v)


def _kaplan_jacobian(theta: Array, lx: Array) -> tuple[Array, Array]:
    lnc, _, alpha_n, alpha_d, u, v = _kaplan_parts(theta, lx)
    total = logsumexp(u, v)
    p_u = np.exp(u - total)
    p_v = np.exp(v - total)
    gap = lnc - lx[0]
    jac = np.stack([alpha_n * p_u, alpha_d * p_v, p_u * gap, total - p_u * alpha_n * gap / alpha_d], axis=-1)
    return alpha_d * total, jac


def _kaplan_starts(lx: Array, ly: Array) -> Array:
    exponents = np.array([0.05, 0.1, 0.2, 0.4, 0.8])
    log_scales = np.array([0.0, 10.0, 20.0, 30.0, 40.0])
    return product_grid(log_scales, log_scales, exponents, exponents)


KAPLAN = Form(
    name="kaplan",
    formula="L = ((Nc / N)^(alphaN / alphaD) + Dc / D)^alphaD",
    inputs=("n", "d"),
    params=(
        Param("lnc", -30.0, 200.0, "Nc", log_scale=True),
        Param("ldc", -30.0, 200.0, "Dc", log_scale=True),
        Param("alpha_n", 1e-4, 10.0, "alphaN"),
        Param("alpha_d", 1e-4, 10.0, "alphaD"),
    ),
    log_predict=_kaplan_log_predict,
    jacobian=_kaplan_jacobian,
    start_grid=_kaplan_starts,
    description="Kaplan et al. (2020) eq. 1.5: no irreducible floor, N and D combined inside one power.",
)
