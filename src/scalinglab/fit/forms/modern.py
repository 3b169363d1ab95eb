"""Laws in N and D whose data exponent moves with model size: Farseer and its simplest cousin.

`farseer` is Li et al. (2025, "Predictable Scale: Part II, Farseer", arXiv 2506.10972):

    L(N, D) = exp(s N^q + S) + exp(B N^b + Q) D^(-exp(A N^a + E))

The loss with unlimited data, the data term's coefficient and its exponent beta(N) = exp(A N^a + E) are each
a stretched exponential in N. Its nine parameters are the paper's, in raw N and D (no reference scale): the
family is closed under a change of units (N -> N / N0 maps s to s N0^q), so a reference would only move the
numbers, and any choice of one would be arbitrary for inputs that may be of any scale. They are fitted as
they are (no log scales; any may be negative): s, B, A in [-1e4, 1e4], S, Q, E in [-1e3, 1e3], and the
exponents q, b, a in [-2, 2] (N^2 of a 1e10 model is 1e20: beyond that the stretched exponentials overflow
for any coefficient that still matters). Predictions are computed in log N and log D (N^q = exp(q log N)),
with an analytic Jacobian. The 1,728 starts are set from the data, term by term: each stretched
exponential u(x) = c exp(k x) + o (x = log N) is given a value, a slope du/dx and an exponent k at the median
log N, so that c and o come out at the data's scale whatever the units. Near k = 0 a term degenerates
(c exp(k x) + o -> c + o + c k x): only c + o and c k are identified there, and c and o cannot follow k
across 0 (they pass through infinity), which is why the grid starts every exponent on both sides of 0, why
the exponents need data over several decades of N, and why a fit may report c and o as poorly identified.

`chinchilla_nbeta` is chinchilla whose data exponent moves with N, the simplest form of Farseer's
observation: L = E + A / N^alpha + B / D^(beta N^gamma), with log(beta(N)) = log(beta) + gamma log N
linear in log N (no reference N). gamma = 0 is chinchilla. beta is the exponent's value at N = 1 (its
value at the data's N is beta N^gamma, e.g. `derived("beta * 1e9**gamma")`); it is fitted as its log, in
[1e-6, 1e3], and gamma in [-1, 1].
"""

from __future__ import annotations

import numpy as np

from scalinglab.fit.forms.base import Array, Form, Param, logsumexp, product_grid
from scalinglab.fit.forms.two_var import CHINCHILLA


def _columns(theta: Array, count: int) -> tuple[Array, ...]:
    return tuple(theta[..., i : i + 1] for i in range(count))


# ---- farseer ---------------------------------------------------------------------------------------


def _farseer_parts(theta: Array, lx: Array) -> tuple[Array, ...]:
    s, q, big_s, big_b, b, big_q, big_a, a, big_e = _columns(theta, 9)
    log_n, log_d = lx[0], lx[1]
    with np.errstate(over="ignore"):  # far beyond the data a stretched exponential may reach inf: its limit
        n_q, n_b, n_a = np.exp(q * log_n), np.exp(b * log_n), np.exp(a * log_n)
        exponent = np.exp(big_a * n_a + big_e)  # the data exponent beta(N)
    floor = s * n_q + big_s  # log of the first term
    data = big_b * n_b + big_q - exponent * log_d  # log of the second term
    return floor, data, n_q, n_b, n_a, exponent


def _farseer_log_predict(theta: Array, lx: Array) -> Array:
    floor, data, *_ = _farseer_parts(theta, lx)
    return logsumexp(floor, data)


def _farseer_jacobian(theta: Array, lx: Array) -> tuple[Array, Array]:
    s, q, _, big_b, b, _, big_a, a, _ = _columns(theta, 9)
    log_n, log_d = lx[0], lx[1]
    floor, data, n_q, n_b, n_a, exponent = _farseer_parts(theta, lx)
    value = logsumexp(floor, data)
    w_floor, w_data = np.exp(floor - value), np.exp(data - value)
    slope = -w_data * exponent * log_d  # d log L / d (A N^a + E)
    columns = [
        w_floor * n_q,
        w_floor * s * log_n * n_q,
        w_floor,
        w_data * n_b,
        w_data * big_b * log_n * n_b,
        w_data,
        slope * n_a,
        slope * big_a * log_n * n_a,
        slope,
    ]
    return value, np.stack(np.broadcast_arrays(*columns), axis=-1)


def _stretched(mid_x: float, value: Array, slope: Array, k: Array) -> tuple[Array, Array]:
    """(c, o) of u(x) = c exp(k x) + o with u = value and du/dx = slope at x = mid_x."""
    c = slope / (k * np.exp(k * mid_x))
    return c, value - slope / k


# The start grid's axes, in the order _farseer_starts reads them (see there).
_FARSEER_START_AXES = (
    np.log([0.4, 0.8]),  # log of the floor term's share of the smallest loss
    np.array([-0.05, -0.3]),  # d log(floor term) / d log N
    np.array([-0.3, -0.1, 0.2]),  # q
    np.log([0.15, 0.3, 0.6]),  # log beta at the median N
    np.array([-0.05, 0.05]),  # d log beta / d log N
    np.log([0.3, 1.0]),  # log of the data term's share of the median loss at the median D
    np.array([-0.5, 0.0, 0.5]),  # d log(data coefficient) / d log N
    np.array([-0.1, 0.1]),  # a
    np.array([-0.1, 0.1]),  # b
)


def _farseer_starts(lx: Array, ly: Array) -> Array:
    # Each of the three stretched exponentials is started from its value, its slope in log N and its
    # curvature exponent at the median log N, so that its coefficient and offset come out at the data's scale.
    mid_x, mid_y = float(np.median(lx[0])), float(np.median(lx[1]))
    grid = product_grid(*_FARSEER_START_AXES)
    share, f_slope, q, log_beta, b_slope, d_share, c_slope, a, b = grid.T
    s, big_s = _stretched(mid_x, float(np.min(ly)) + share, f_slope, q)
    big_a, big_e = _stretched(mid_x, log_beta, b_slope, a)
    big_b, big_q = _stretched(mid_x, float(np.median(ly)) + d_share + np.exp(log_beta) * mid_y, c_slope, b)
    return np.stack([s, q, big_s, big_b, b, big_q, big_a, a, big_e], axis=-1)


FARSEER = Form(
    name="farseer",
    formula="L = exp(s N^q + S) + exp(B N^b + Q) D^(-exp(A N^a + E))",
    inputs=("n", "d"),
    params=(
        Param("s", -1e4, 1e4, "s"),
        Param("q", -2.0, 2.0, "q"),
        Param("big_s", -1e3, 1e3, "S"),
        Param("big_b", -1e4, 1e4, "B"),
        Param("b", -2.0, 2.0, "b"),
        Param("big_q", -1e3, 1e3, "Q"),
        Param("big_a", -1e4, 1e4, "A"),
        Param("a", -2.0, 2.0, "a"),
        Param("big_e", -1e3, 1e3, "E"),
    ),
    log_predict=_farseer_log_predict,
    jacobian=_farseer_jacobian,
    start_grid=_farseer_starts,
    description="Li et al. (2025) Farseer: a floor and a power law in D whose coefficient and exponent are "
    "stretched exponentials in N (the data exponent moves with model size).",
)


# ---- chinchilla_nbeta ------------------------------------------------------------------------------


def _nbeta_parts(theta: Array, lx: Array) -> tuple[Array, ...]:
    e, a, b, alpha, log_beta, gamma = _columns(theta, 6)
    with np.errstate(over="ignore"):  # an exponent that overflows far beyond the data: its limit
        exponent = np.exp(log_beta + gamma * lx[0])  # beta N^gamma
    terms = np.broadcast_arrays(e + 0 * lx[0], a - alpha * lx[0], b - exponent * lx[1])
    return terms, exponent


def _nbeta_log_predict(theta: Array, lx: Array) -> Array:
    terms, _ = _nbeta_parts(theta, lx)
    return logsumexp(*terms)


def _nbeta_jacobian(theta: Array, lx: Array) -> tuple[Array, Array]:
    terms, exponent = _nbeta_parts(theta, lx)
    value = logsumexp(*terms)
    floor, model, data = (np.exp(t - value) for t in terms)
    slope = -data * exponent * lx[1]  # d log L / d log(beta N^gamma)
    columns = [floor, model, data, -model * lx[0], slope, slope * lx[0]]
    return value, np.stack(np.broadcast_arrays(*columns), axis=-1)


def _nbeta_starts(lx: Array, ly: Array) -> Array:
    # A coarser cousin of chinchilla's published grid; the data exponent at the median N is 0.25, 0.5 or 1
    # and moves by gamma = -0.05, 0 or 0.05 per e-fold of N: 3 x 5 x 5 x 4 x 3 x 3 = 2,700 starts.
    mid_x = float(np.median(lx[0]))
    grid = product_grid(
        np.arange(-1.0, 1.01, 1.0),
        np.arange(0.0, 24.1, 6.0),
        np.arange(0.0, 24.1, 6.0),
        np.array([0.25, 0.5, 1.0, 1.5]),
        np.log([0.25, 0.5, 1.0]),
        np.array([-0.05, 0.0, 0.05]),
    )
    grid[:, 4] -= grid[:, 5] * mid_x  # log beta at N = 1 from its value at the median N
    return grid


CHINCHILLA_NBETA = Form(
    name="chinchilla_nbeta",
    formula="L = E + A / N^alpha + B / D^(beta N^gamma)",
    inputs=("n", "d"),
    params=CHINCHILLA.params[:4]  # E, A, B, alpha as chinchilla's
    + (
        Param("log_beta", np.log(1e-6), np.log(1e3), "beta", log_scale=True),
        Param("gamma", -1.0, 1.0, "gamma"),
    ),
    log_predict=_nbeta_log_predict,
    jacobian=_nbeta_jacobian,
    start_grid=_nbeta_starts,
    description="chinchilla whose data exponent moves with N (beta N^gamma): the simplest form of Farseer's "
    "observation; gamma = 0 is chinchilla.",
)
