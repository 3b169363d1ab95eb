"""Profile-likelihood intervals: each parameter pinned along a path, the others refitted, the robust test inverted.

They stay finite and honest where the bootstrap is not: a parameter the data do not bound on one side gets an
open side (None), never a percentile of values that wandered to the optimiser's box.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.stats import f as f_dist
from scipy.stats import norm

from scalinglab.fit.forms.base import Form
from scalinglab.fit.loss import Loss
from scalinglab.fit.optimize import minimize_pinned

FIRST_STEP = 0.005  # internal units: 0.5% of a scale parameter, 0.005 of an exponent
BISECTIONS = 7


@dataclass
class ProfileIntervals:
    """Per parameter (public name): (lower, upper) in published units; None on a side the data leave open."""

    ci: dict[str, tuple[float | None, float | None]]
    not_identified: list[str]
    threshold: float  # the objective increase that bounds the interval (before any run adjustment)
    fixed: list[str] = field(default_factory=list)  # parameters the form fixes (no interval)
    run_adjustment: dict[str, float] = field(default_factory=dict)  # per parameter, when points come in runs

    def warnings(self, level: float) -> list[str]:
        """One sentence per parameter the data leave open on a side."""
        out = []
        for name in self.not_identified:
            lo, hi = self.ci[name]
            if lo is None and hi is None:
                bounded = "open on both sides"
            elif lo is None:
                bounded = f"only bounded above ({name} < {hi:.4g})"
            else:
                bounded = f"only bounded below ({name} > {lo:.4g})"
            out.append(f"{name} is not identified: its {level:.0%} profile interval is {bounded}")
        return out


def robust_threshold(residuals: np.ndarray, loss: Loss, n_free: int, level: float) -> float:
    """The rise of the summed loss that the robust likelihood-ratio (rho) test allows at `level`.

    For an M-estimator the rho-test statistic 2 (sum rho(r~) - sum rho(r^)) is asymptotically
    (E psi^2 / E psi') chi^2_1 (Heritier & Ronchetti 1994); least squares gives the usual sigma^2 chi^2_1.
    E psi^2 is estimated with n / (n - p) and the F(1, n - p) quantile replaces chi^2_1 for small samples;
    E psi' (the Huber loss's psi' is an indicator of |r| < delta) is the residuals' Gaussian kernel density
    integrated over (-delta, delta), which stays positive when few residuals fall inside.
    """
    n = residuals.size
    dof = max(n - n_free, 1)
    psi = loss.evaluate(residuals)[1]
    mean_psi2 = float(np.sum(psi**2) / dof)
    if loss.kind == "mse":
        mean_dpsi = 1.0
    else:
        spread = min(np.std(residuals), (np.subtract(*np.percentile(residuals, [75, 25]))) / 1.349)
        h = max(0.9 * spread * n ** (-0.2), 1e-12)
        inside_hi = norm.cdf((loss.delta - residuals) / h) - norm.cdf(-residuals / h)
        inside_lo = norm.cdf(-residuals / h) - norm.cdf((-loss.delta - residuals) / h)
        up = loss.over_weight if loss.kind == "asymmetric" else 1.0
        mean_dpsi = float(np.mean(up * inside_hi + inside_lo))
    quantile = float(f_dist.ppf(level, 1, dof))
    return 0.5 * quantile * mean_psi2 / max(mean_dpsi, 1e-300)


def cluster_adjustment(
    form: Form,
    theta: np.ndarray,
    lx: np.ndarray,
    residuals: np.ndarray,
    loss: Loss,
    groups: np.ndarray,
    free: np.ndarray,
) -> np.ndarray:
    """Per free parameter, how much wider points that come in runs (checkpoints of one run) make its interval.

    The ratio of the cluster-robust sandwich variance (scores summed within each run) to the one that treats
    points as independent; the profile's threshold is scaled by it (Chandler & Bate 2007's magnitude
    adjustment). Never below 1: correlated checkpoints carry less, not more, information.
    """
    jac = form.value_and_jacobian(theta[None, :], lx)[1][0][:, free]  # (n, q)
    psi = loss.evaluate(residuals)[1]
    scores = psi[:, None] * jac
    _, index = np.unique(groups, return_inverse=True)
    per_run = np.zeros((int(index.max()) + 1, free.size))
    np.add.at(per_run, index, scores)
    bread = np.linalg.pinv(jac.T @ jac)
    clustered = np.diag(bread @ (per_run.T @ per_run) @ bread)
    independent = np.diag(bread @ (scores.T @ scores) @ bread)
    ratio = np.where(independent > 0, clustered / np.where(independent > 0, independent, 1.0), 1.0)
    return np.maximum(np.nan_to_num(ratio, nan=1.0, posinf=1.0), 1.0)


def _first_steps(hessian: np.ndarray | None, free: np.ndarray, threshold: float) -> np.ndarray:
    """Half the quadratic model's guess of each interval's half-width, so most crossings take a few doublings."""
    steps = np.full(free.size, FIRST_STEP)
    if hessian is None:
        return steps
    try:
        cov = np.linalg.inv(hessian[np.ix_(free, free)])
    except np.linalg.LinAlgError:
        return steps
    guess = 0.5 * np.sqrt(2.0 * threshold * np.abs(np.diag(cov)))
    return np.where(np.isfinite(guess) & (guess > 1e-6) & (guess < 1.0), guess, steps)


@dataclass(frozen=True)
class _Problem:
    """The fit being profiled: the form at its optimum, the data in log units and the loss."""

    form: Form
    theta: np.ndarray
    objective: float
    lx: np.ndarray
    ly: np.ndarray
    loss: Loss


@dataclass
class _Tracks:
    """One track per free parameter and side (track 2p walks free[p] down, 2p + 1 up) and its crossing's bracket."""

    index: np.ndarray  # the parameter each track pins
    sides: np.ndarray  # -1.0 down, 1.0 up
    allowed_rise: np.ndarray  # the objective's rise that ends the interval
    box_end: np.ndarray  # the optimiser's bound on the track's side
    inside_value: np.ndarray  # the bracket's end inside the interval, and its rise
    inside_rise: np.ndarray
    warm: np.ndarray  # the refit at the inside end (the next refit's start)
    outside_value: np.ndarray  # the bracket's end outside (NaN until found), and its rise
    outside_rise: np.ndarray
    open_side: np.ndarray  # the track met its bound still inside

    @classmethod
    def start(cls, problem: _Problem, allowed_rise: np.ndarray) -> _Tracks:
        """Every track at the optimum, no outside end yet."""
        form, theta, free = problem.form, problem.theta, problem.form.free
        index = np.repeat(free, 2)
        sides = np.tile([-1.0, 1.0], free.size)
        n_tracks = index.size
        return cls(
            index=index,
            sides=sides,
            allowed_rise=allowed_rise,
            box_end=np.where(sides < 0, form.lower[index], form.upper[index]),
            inside_value=theta[index].astype(float),
            inside_rise=np.zeros(n_tracks),
            warm=np.tile(theta, (n_tracks, 1)),
            outside_value=np.full(n_tracks, np.nan),
            outside_rise=np.full(n_tracks, np.nan),
            open_side=np.zeros(n_tracks, bool),
        )

    def probe(self, problem: _Problem, k: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Refit tracks k pinned at values; move each bracket's inside or outside end there. True: outside."""
        p = problem
        refit = minimize_pinned(
            p.form, p.lx, p.ly, p.loss, self.warm[k], self.index[k], values, max_iter=2000, ftol=1e-14, gtol=1e-12
        )
        fitted, rise = refit.theta, refit.objective - p.objective
        out = rise > self.allowed_rise[k]
        self.outside_value[k[out]], self.outside_rise[k[out]] = values[out], rise[out]
        self.inside_value[k[~out]], self.inside_rise[k[~out]] = values[~out], np.maximum(rise[~out], 0.0)
        self.warm[k[~out]] = fitted[~out]
        return out

    def crossings(self) -> np.ndarray:
        """The crossing, interpolated linearly in the objective's rise inside the last bracket."""
        share = (self.allowed_rise - self.inside_rise) / np.maximum(self.outside_rise - self.inside_rise, 1e-300)
        return self.inside_value + np.clip(share, 0.0, 1.0) * (self.outside_value - self.inside_value)


def profile_intervals(
    form: Form,
    theta: np.ndarray,
    objective: float,
    lx: np.ndarray,
    ly: np.ndarray,
    loss: Loss,
    level: float = 0.95,
    hessian: np.ndarray | None = None,
    groups: np.ndarray | None = None,
) -> ProfileIntervals:
    """Walk every free parameter outwards from the optimum on both sides (doubling steps, then bisection)
    until the refitted objective rises by the robust threshold, solving all parameters and sides at once.

    `hessian` (of the objective at theta) only sets the first step's size; the intervals do not depend on it.
    With `groups` (several points per run), each parameter's threshold is widened by `cluster_adjustment`.
    """
    free = form.free
    with np.errstate(all="ignore"):
        residuals = form.log_predict(theta[None, :], lx)[0] - ly
    threshold = robust_threshold(residuals, loss, free.size, level)
    adjust = np.ones(free.size)
    if groups is not None and np.unique(groups).size < ly.size:
        adjust = cluster_adjustment(form, theta, lx, residuals, loss, groups, free)
    problem = _Problem(form, theta, objective, lx, ly, loss)
    tracks = _Tracks.start(problem, np.repeat(threshold * adjust, 2))
    _walk_out(problem, tracks, np.repeat(_first_steps(hessian, free, threshold) * np.sqrt(adjust), 2))
    _bisect(problem, tracks)
    return _collect(form, tracks, threshold, adjust)


def _walk_out(problem: _Problem, tracks: _Tracks, step: np.ndarray) -> None:
    """Doubling steps until each track leaves the region (a bracket) or meets its bound (an open side)."""
    t = tracks
    searching = np.ones(t.index.size, bool)
    while searching.any():
        k = np.flatnonzero(searching)
        values = problem.theta[t.index[k]] + t.sides[k] * step[k]
        values = np.where(t.sides[k] < 0, np.maximum(values, t.box_end[k]), np.minimum(values, t.box_end[k]))
        out = t.probe(problem, k, values)
        at_limit = k[~out & (values == t.box_end[k])]
        t.open_side[at_limit] = True
        searching[k[out]] = False
        searching[at_limit] = False
        step *= 2.0


def _bisect(problem: _Problem, tracks: _Tracks) -> None:
    """Narrow each closed track's bracket [inside, outside] by BISECTIONS halvings."""
    closed = np.flatnonzero(~tracks.open_side)
    for _ in range(BISECTIONS if closed.size else 0):
        tracks.probe(problem, closed, 0.5 * (tracks.inside_value[closed] + tracks.outside_value[closed]))


def _collect(form: Form, tracks: _Tracks, threshold: float, adjust: np.ndarray) -> ProfileIntervals:
    """The crossings in published units per parameter (None on an open side), with the fixed ones and adjustments."""
    free = form.free
    crossing = tracks.crossings()
    ci: dict[str, tuple[float | None, float | None]] = {}
    not_identified = []
    for p, i in enumerate(free):
        param = form.params[i]
        ends = []
        for t in (2 * p, 2 * p + 1):
            ends.append(None if tracks.open_side[t] else float(param.to_public(np.asarray(crossing[t]))))
        ci[param.public] = (ends[0], ends[1])
        if None in ends:
            not_identified.append(param.public)
    fixed = [form.params[i].public for i in np.setdiff1d(np.arange(form.n_params), free)]
    adjustment = {form.params[i].public: float(a) for i, a in zip(free, adjust, strict=True)}
    return ProfileIntervals(ci, not_identified, float(threshold), fixed, adjustment)
