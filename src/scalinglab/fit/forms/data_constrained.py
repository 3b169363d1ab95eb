"""A steps-aware L(N, D): Muennighoff et al. (2023)'s data-constrained law, fitted on every checkpoint.

A run that has processed S samples of a dataset of U unique samples has seen min(S, U) fresh samples and
R = max(S / U - 1, 0) repetitions of it. Repeated samples are worth less and less, so its effective data is

    D' = min(S, U) + U R* (1 - exp(-R / R*))

and the loss follows chinchilla in N and D': L = E + A / N^alpha + B / D'^beta. Each checkpoint of each run is
one point (N, U, S), so a run trained for many epochs informs the law all along its curve, not only at its
end. One epoch (S = U) gives D' = U: the law reduces to chinchilla's L(N, D) with the same five parameters,
which is the surface, profile and cost table the report draws. R* (how many repetitions are worth about
1 - 1/e of fresh data) is the sixth parameter. As in the paper, each checkpoint is read as the loss of a run
that ended there; under a decaying learning-rate schedule a mid-run checkpoint sits above that, so the
report's checks (held-out final points) say whether the reading holds for a given study.

`data_constrained_full` is the paper's whole law (Section 3; the datablations README's `scaling_law`), which
discounts excess parameters as well as repeated data. The unique data is U_D = min(S, U): the paper has
S >= U only, where this is U, and a checkpoint before one epoch is read, as above, as a run that ended there,
on S samples all fresh. Its compute-optimal model size comes from the law's own chinchilla terms (the README's
`D_to_N`, Chinchilla's allocation): N_opt = G (G U_D)^(beta / alpha) with G = (alpha A / (beta B))^(1 / (alpha
+ beta)), i.e. log N_opt = (log(alpha A / (beta B)) + beta log U_D) / alpha. With U_N = min(N, N_opt) and R_N
= N / U_N - 1 the effective model size is N' = U_N + U_N R_N* (1 - exp(-R_N / R_N*)), and L = E + A / N'^alpha
+ B / D'^beta with D' as above (R_D* is its R*). Seven parameters; alpha and beta are kept above 1e-4 so that
log N_opt stays finite. Below N_opt it is `data_constrained` exactly; at one epoch it is not chinchilla (a
model too large for its data is discounted even then), so it has no two-variable reduction of that kind. The
Jacobian is analytic: where N > N_opt, log N' moves with A, B, alpha and beta through log N_opt.
"""

from __future__ import annotations

import numpy as np

from scalinglab.fit.forms.base import Array, Form, Param, logsumexp, product_grid
from scalinglab.fit.forms.two_var import CHINCHILLA


def _effective(theta: Array, lx: Array) -> tuple[Array, Array]:
    """log D' and d log D' / d log R*, for log-inputs (log N, log U, log S)."""
    log_u, log_s = lx[1], lx[2]
    r_star = np.exp(theta[..., 5:6])
    repeats = np.maximum(np.exp(log_s - log_u) - 1.0, 0.0)
    q = repeats / r_star
    decay = np.exp(-q)
    gained = r_star * -np.expm1(-q)  # R* (1 - exp(-R / R*)), stable for small q
    log_d = np.minimum(log_s, log_u) + np.log1p(gained)
    d_log_d = r_star * (-np.expm1(-q) - q * decay) / (1.0 + gained)
    return log_d, d_log_d


def _shares(theta: Array, log_n: Array, log_d: Array) -> tuple[Array, Array, Array, Array]:
    """log L of E + A / N^alpha + B / D^beta at log N, log D (effective sizes), and each term's share of L."""
    e, a, b, alpha, beta = (theta[..., i : i + 1] for i in range(5))
    terms = np.broadcast_arrays(e + 0 * log_d, a - alpha * log_n, b - beta * log_d)
    value = logsumexp(*terms)
    floor, model, data = (np.exp(t - value) for t in terms)
    return value, floor, model, data


def _log_predict(theta: Array, lx: Array) -> Array:
    e, a, b, alpha, beta = (theta[..., i : i + 1] for i in range(5))
    log_d, _ = _effective(theta, lx)
    return logsumexp(e + 0 * log_d, a - alpha * lx[0], b - beta * log_d)


def _jacobian(theta: Array, lx: Array) -> tuple[Array, Array]:
    beta = theta[..., 4:5]
    log_d, d_log_d = _effective(theta, lx)
    value, floor, model, data = _shares(theta, lx[0], log_d)
    columns = [floor, model, data, -model * lx[0], -data * log_d, -data * beta * d_log_d]
    return value, np.stack(np.broadcast_arrays(*columns), axis=-1)


def _starts(lx: Array, ly: Array) -> Array:
    # A coarser cousin of chinchilla's published grid, times three values of R*: 2,025 starts.
    return product_grid(
        np.arange(-1.0, 1.01, 1.0),
        np.arange(0.0, 24.1, 6.0),
        np.arange(0.0, 24.1, 6.0),
        np.array([0.3, 0.7, 1.5]),
        np.array([0.3, 0.7, 1.5]),
        np.log([1.0, 5.0, 25.0]),
    )


DATA_CONSTRAINED = Form(
    name="data_constrained",
    formula="L = E + A / N^alpha + B / D'^beta, D' = min(S, D) + D R* (1 - exp(-max(S / D - 1, 0) / R*))",
    inputs=("n", "d", "seen"),
    params=CHINCHILLA.params + (Param("lrs", np.log(1e-2), np.log(1e4), "R_star", log_scale=True),),
    log_predict=_log_predict,
    jacobian=_jacobian,
    start_grid=_starts,
    description="chinchilla on effective data (Muennighoff et al. 2023): every checkpoint of runs that repeat "
    "their data; reduces to chinchilla at one epoch.",
)


def _excess(theta: Array, lx: Array, log_fresh: Array) -> tuple[Array, Array, Array, Array]:
    """log N', d log N' / d log N_opt, d log N' / d log R_N* and log N_opt, for log-inputs (log N, log U, log S).

    N_opt is chinchilla's compute-optimal model size for the fresh data U_D = min(S, U), from the law's own
    A, B, alpha, beta: alpha A N^-alpha = beta B U_D^-beta, i.e. log N_opt = (log(alpha A / (beta B)) + beta
    log U_D) / alpha. A model beyond it has R_N = N / N_opt - 1 excess parameters, worth N_opt R_N* (1 -
    exp(-R_N / R_N*)) in all: N' = U_N + U_N R_N* (1 - exp(-R_N / R_N*)) with U_N = min(N, N_opt).
    """
    a, b, alpha, beta = (theta[..., i : i + 1] for i in range(1, 5))
    r_star = np.exp(theta[..., 6:7])
    log_opt = (np.log(alpha) + a - np.log(beta) - b + beta * log_fresh) / alpha
    log_n = lx[0] + 0 * log_opt
    excess = np.real(log_n) > np.real(log_opt)
    log_base = np.where(excess, log_opt, log_n)  # log U_N; the selection is complex-step safe
    spread = log_n - log_base  # log(1 + R_N), 0 without excess parameters
    repeats = np.expm1(spread)
    q = repeats / r_star
    gained = r_star * -np.expm1(-q)  # R_N* (1 - exp(-R_N / R_N*))
    log_eff = log_base + np.log1p(gained)
    # d log N' / d log U_N at fixed N (R_N moves with U_N); written with exp(spread - q) so it stays finite
    d_base = np.where(excess, 1.0 - np.exp(spread - q) / (1.0 + gained), 0.0)
    d_star = r_star * (-np.expm1(-q) - q * np.exp(-q)) / (1.0 + gained)
    return log_eff, d_base, d_star, log_opt


def _full_log_predict(theta: Array, lx: Array) -> Array:
    e, a, b, alpha, beta = (theta[..., i : i + 1] for i in range(5))
    log_d, _ = _effective(theta, lx)
    log_n, *_ = _excess(theta, lx, np.minimum(lx[1], lx[2]))
    return logsumexp(e + 0 * log_d, a - alpha * log_n, b - beta * log_d)


def _full_jacobian(theta: Array, lx: Array) -> tuple[Array, Array]:
    alpha, beta = theta[..., 3:4], theta[..., 4:5]
    log_fresh = np.minimum(lx[1], lx[2])
    log_d, d_log_d = _effective(theta, lx)
    log_n, d_base, d_star, log_opt = _excess(theta, lx, log_fresh)
    value, floor, model, data = _shares(theta, log_n, log_d)
    # d log N' / d theta through log N_opt = K / alpha, K = log alpha + a - log beta - b + beta log U_D
    via = -model * alpha * d_base  # d log L / d log N_opt
    columns = [
        floor,
        model + via / alpha,
        data - via / alpha,
        -model * log_n + via * (1.0 / alpha - log_opt) / alpha,
        -data * log_d + via * (log_fresh - 1.0 / beta) / alpha,
        -data * beta * d_log_d,
        -model * alpha * d_star,
    ]
    return value, np.stack(np.broadcast_arrays(*columns), axis=-1)


def _full_starts(lx: Array, ly: Array) -> Array:
    # data_constrained's coarse grid on exponents that keep log N_opt finite (alpha, beta > 0), with R_D* and
    # R_N* started together at 1, 5 or 25: 3 x 5 x 5 x 3 x 3 x 3 = 2,025 starts.
    grid = product_grid(
        np.arange(-1.0, 1.01, 1.0),
        np.arange(0.0, 24.1, 6.0),
        np.arange(0.0, 24.1, 6.0),
        np.array([0.3, 0.7, 1.5]),
        np.array([0.3, 0.7, 1.5]),
        np.log([1.0, 5.0, 25.0]),
    )
    return np.concatenate([grid, grid[:, 5:6]], axis=1)


DATA_CONSTRAINED_FULL = Form(
    name="data_constrained_full",
    formula="L = E + A / N'^alpha + B / D'^beta, D' as in data_constrained (R_D*), "
    "N' = U_N + U_N R_N* (1 - exp(-max(N / U_N - 1, 0) / R_N*)), U_N = min(N, N_opt(min(S, D)))",
    inputs=("n", "d", "seen"),
    params=CHINCHILLA.params[:3]
    + (
        Param("alpha", 1e-4, 10.0, "alpha"),
        Param("beta", 1e-4, 10.0, "beta"),
        Param("lrd", np.log(1e-2), np.log(1e4), "R_D_star", log_scale=True),
        Param("lrn", np.log(1e-2), np.log(1e4), "R_N_star", log_scale=True),
    ),
    log_predict=_full_log_predict,
    jacobian=_full_jacobian,
    start_grid=_full_starts,
    description="Muennighoff et al. (2023)'s full law: effective data D' for repeated data and effective "
    "parameters N' for a model beyond the compute-optimal size of its unique data.",
)
