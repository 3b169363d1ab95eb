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


def _log_predict(theta: Array, lx: Array) -> Array:
    e, a, b, alpha, beta = (theta[..., i : i + 1] for i in range(5))
    log_d, _ = _effective(theta, lx)
    return logsumexp(e + 0 * log_d, a - alpha * lx[0], b - beta * log_d)


def _jacobian(theta: Array, lx: Array) -> tuple[Array, Array]:
    e, a, b, alpha, beta = (theta[..., i : i + 1] for i in range(5))
    log_d, d_log_d = _effective(theta, lx)
    terms = np.broadcast_arrays(e + 0 * log_d, a - alpha * lx[0], b - beta * log_d)
    value = logsumexp(*terms)
    floor, model, data = (np.exp(t - value) for t in terms)
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
