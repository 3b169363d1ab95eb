"""Laws in one variable x (N, D, FLOPs C or samples seen): power laws and broken power laws.

The broken power law is Caballero et al. (2022)'s BNSL with one or two breaks:
y = a + b x^-c0 prod_i (1 + (x / d_i)^(1 / f_i))^(-c_i f_i).
"""

from __future__ import annotations

import numpy as np

from scalinglab.fit.forms.base import Array, Form, Param, affine_lse, logsumexp, softplus


def _column(theta: Array, i: int) -> Array:
    return theta[..., i : i + 1]


def _power_features(lx: Array) -> Array:
    # One term a - alpha log x over parameters (a, alpha).
    return np.stack([np.ones_like(lx[0]), -lx[0]])[None]


def _offset_features(lx: Array) -> Array:
    # Terms e and a - alpha log x over parameters (e, a, alpha).
    features = np.zeros((2, 3, lx.shape[-1]))
    features[0, 0] = features[1, 1] = 1.0
    features[1, 2] = -lx[0]
    return features


def _scale_starts(lx: Array, ly: Array, exponents: Array, fractions: Array) -> tuple[Array, Array]:
    """Starts for log-scale a such that the power term at the median x is a fraction of the median y."""
    mid_x, mid_y = np.median(lx[0]), np.median(ly)
    return exponents, mid_y + np.log(fractions)[:, None] + exponents[None, :] * mid_x


def _power_starts(lx: Array, ly: Array) -> Array:
    exponents, scales = _scale_starts(lx, ly, np.array([0.0, 0.1, 0.3, 0.6, 1.0, 2.0]), np.array([1.0]))
    return np.stack([scales[0], exponents], axis=-1)


POWER = Form(
    name="power",
    formula="y = A / x^alpha",
    inputs=("x",),
    params=(Param("a", -50.0, 200.0, "A", log_scale=True), Param("alpha", -10.0, 10.0, "alpha")),
    log_predict=affine_lse(_power_features),
    features=_power_features,
    start_grid=_power_starts,
    description="A pure power law in one variable (a straight line on log-log axes).",
)


def _offset_starts(lx: Array, ly: Array) -> Array:
    floors = np.min(ly) + np.log([0.05, 0.3, 0.6, 0.9])
    exponents, scales = _scale_starts(lx, ly, np.array([0.1, 0.3, 0.6, 1.0, 2.0]), np.array([0.1, 0.5, 1.0, 2.0]))
    rows = [(e, scales[i, j], exponents[j]) for e in floors for i in range(len(scales)) for j in range(len(exponents))]
    return np.array(rows)


POWER_OFFSET = Form(
    name="power_offset",
    formula="y = E + A / x^alpha",
    inputs=("x",),
    params=(
        Param("e", -30.0, 30.0, "E", log_scale=True),
        Param("a", -50.0, 200.0, "A", log_scale=True),
        Param("alpha", 0.0, 10.0, "alpha"),
    ),
    log_predict=affine_lse(_offset_features),
    features=_offset_features,
    start_grid=_offset_starts,
    description="A power law that saturates at an irreducible floor E.",
)


def _m3_log_predict(theta: Array, lx: Array) -> Array:
    # log y = log beta + c log(1/x + gamma)
    return _column(theta, 0) + _column(theta, 1) * logsumexp(
        -lx[0] + 0 * _column(theta, 2), _column(theta, 2) + 0 * lx[0]
    )


def _m3_jacobian(theta: Array, lx: Array) -> tuple[Array, Array]:
    lbeta, c, lgamma = (_column(theta, i) for i in range(3))
    inner = np.logaddexp(-lx[0], lgamma)  # log(1/x + gamma)
    value = lbeta + c * inner
    jac = np.stack(np.broadcast_arrays(np.ones_like(value), inner + 0 * c, c * np.exp(lgamma - inner)), axis=-1)
    return value, jac


def _m3_starts(lx: Array, ly: Array) -> Array:
    mid, mid_y = float(np.median(lx[0])), float(np.median(ly))
    rows = []
    for c in (0.1, 0.3, 0.6, 1.0):
        for log_gamma in -np.quantile(lx[0], [0.0, 0.5, 1.0]) + np.array([0.0, 0.0, 2.0]):
            rows.append((mid_y - c * np.logaddexp(-mid, log_gamma), c, log_gamma))
    return np.array(rows)


M3 = Form(
    name="m3",
    formula="y = beta (1 / x + gamma)^c",
    inputs=("x",),
    params=(
        Param("lbeta", -100.0, 200.0, "beta", log_scale=True),
        Param("c", 0.0, 10.0, "c"),
        Param("lgamma", -200.0, 50.0, "gamma", log_scale=True),
    ),
    log_predict=_m3_log_predict,
    jacobian=_m3_jacobian,
    start_grid=_m3_starts,
    description="Alabdulmohsin et al. (2022) M3: a power law in 1/x that levels off at beta gamma^c.",
)


def _bnsl_log_predict(theta: Array, lx: Array, breaks: int) -> Array:
    x = lx[0]
    decay = _column(theta, 1) - _column(theta, 2) * x
    for i in range(breaks):
        c, log_d, log_f = (_column(theta, 3 + 3 * i + k) for k in range(3))
        f = np.exp(log_f)
        decay = decay - c * f * softplus((x - log_d) / f)
    return logsumexp(_column(theta, 0) + 0 * x, decay)


def _bnsl_jacobian(theta: Array, lx: Array, breaks: int) -> tuple[Array, Array]:
    # d/d(log f) of f softplus((x - log d) / f) is f (softplus(u) - u sigmoid(u)), u = (x - log d) / f.
    x = lx[0]
    decay = _column(theta, 1) - _column(theta, 2) * x
    parts = []
    for i in range(breaks):
        c, log_d, log_f = (_column(theta, 3 + 3 * i + k) for k in range(3))
        f = np.exp(log_f)
        u = (x - log_d) / f
        sp, sig = np.logaddexp(0.0, u), 0.5 * (1.0 + np.tanh(0.5 * u))
        decay = decay - c * f * sp
        parts += [-f * sp, c * sig, -c * f * (sp - u * sig)]
    value = np.logaddexp(_column(theta, 0), decay)
    floor_share = np.exp(_column(theta, 0) - value)
    decay_share = 1.0 - floor_share
    columns = [floor_share, decay_share, -decay_share * x] + [decay_share * part for part in parts]
    return value, np.stack(np.broadcast_arrays(*columns), axis=-1)


def _bnsl_starts(lx: Array, ly: Array, breaks: int) -> Array:
    lo, hi = float(np.min(lx[0])), float(np.max(lx[0]))
    positions = lo + (hi - lo) * np.array([0.25, 0.5, 0.75])
    floors = np.min(ly) + np.log([0.05, 0.5, 0.9])
    exponents, scales = _scale_starts(lx, ly, np.array([0.1, 0.5, 1.0]), np.array([0.5, 1.0]))
    changes = np.array([-0.5, 0.3, 1.0])
    sharpness = np.log([0.3, 1.0])
    rows = []
    for e in floors:
        for i in range(len(scales)):
            for j, c0 in enumerate(exponents):
                head = (e, scales[i, j], c0)
                if breaks == 1:
                    rows += [head + (c, d, f) for c in changes for d in positions for f in sharpness]
                else:
                    rows += [
                        head + (c1, d1, f, c2, d2, f)
                        for c1 in changes
                        for c2 in changes
                        for d1, d2 in (
                            (positions[0], positions[1]),
                            (positions[0], positions[2]),
                            (positions[1], positions[2]),
                        )
                        for f in sharpness
                    ]
    return np.array(rows)


def _break_params(i: int, lower_exp: float = -10.0) -> tuple[Param, ...]:
    return (
        Param(f"c{i}", lower_exp, 10.0, f"c{i}"),
        Param(f"ld{i}", -50.0, 200.0, f"d{i}", log_scale=True),
        Param(f"lf{i}", np.log(1e-3), np.log(100.0), f"f{i}", log_scale=True),
    )


def _bnsl_form(breaks: int) -> Form:
    head = (
        Param("e", -30.0, 30.0, "a", log_scale=True),
        Param("lb", -50.0, 200.0, "b", log_scale=True),
        Param("c0", -10.0, 10.0, "c0"),
    )
    tail = tuple(p for i in range(1, breaks + 1) for p in _break_params(i))
    factors = " ".join(f"(1 + (x / d{i})^(1 / f{i}))^(-c{i} f{i})" for i in range(1, breaks + 1))
    return Form(
        name=f"bnsl{breaks}",
        formula=f"y = a + b x^-c0 {factors}",
        inputs=("x",),
        params=head + tail,
        log_predict=lambda theta, lx: _bnsl_log_predict(theta, lx, breaks),
        jacobian=lambda theta, lx: _bnsl_jacobian(theta, lx, breaks),
        start_grid=lambda lx, ly: _bnsl_starts(lx, ly, breaks),
        description=f"Broken neural scaling law (Caballero et al. 2022) with {breaks} break(s).",
    )


BNSL1 = _bnsl_form(1)
BNSL2 = _bnsl_form(2)
