"""Two-step laws: (N, D) -> intermediate (the loss) by a scaling law, then intermediate -> task metric by a link.

Step 1 fits the intermediate with any form (`form="auto"` selects among the two-variable candidates by held-out
runs). Step 2 fits metric = f(intermediate) over every checkpoint of every run with a monotone link
(`scalinglab.fit.links`), chosen by held-out-run error like a form. A prediction chains the two; its interval
comes from a bootstrap over runs through both steps: each resample draws whole runs, refits the law on their
intermediate points and the link on their checkpoints with the same draw, and chains the two refits.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scalinglab import __version__
from scalinglab.errors import UserError, check_level, check_whole
from scalinglab.files import read_json, write_text_atomic
from scalinglab.fit.bootstrap import resample_weights
from scalinglab.fit.extrapolation import point_compute
from scalinglab.fit.law import ScalingLaw, fit_law
from scalinglab.fit.links import LINKS, Link, LinkSelection, evaluate_link, fit_link, fit_link_params, select_link
from scalinglab.fit.optimize import minimize
from scalinglab.fit.search import AUTO
from scalinglab.observations import FitData, numeric_column, prepare_frame, resolve_columns, select_fit_data


@dataclass
class TwoStepData:
    """What a two-step fit needs: the law's points (step 1) and the (intermediate, metric) pairs (step 2)."""

    step1: FitData  # the intermediate at the law's inputs
    inputs: np.ndarray  # (k, m) the law's inputs at every pair
    x: np.ndarray  # (m,) the intermediate at every checkpoint that also has the metric
    y: np.ndarray  # (m,) the metric there
    groups: np.ndarray  # (m,) each pair's run (its table row when there are no runs)
    rows: np.ndarray  # (m,) each pair's row of the metric in the table
    via: str
    source: str
    steps: np.ndarray | None = None  # (m,) each pair's optimiser step, when the table has a `steps` column

    def last_checkpoints(self) -> np.ndarray:
        """A mask of each run's last pair (the most steps; the last in table order without steps)."""
        order = self.rows.astype(float) if self.steps is None else self.steps.astype(float)
        frame = pd.DataFrame({"run": self.groups, "order": order, "i": np.arange(self.y.size)})
        last = frame.sort_values(["run", "order"], kind="stable").groupby("run").tail(1)["i"].to_numpy()
        mask = np.zeros(self.y.size, dtype=bool)
        mask[last] = True
        return mask

    @property
    def input_names(self) -> tuple[str, ...]:
        return self.step1.input_names

    def subset(self, keep_runs: np.ndarray) -> TwoStepData:
        """The data of the given runs only (both steps)."""
        s1 = self.step1
        k1 = np.isin(run_labels(s1), keep_runs)
        step1 = FitData(
            s1.inputs[:, k1],
            s1.input_names,
            s1.y[k1],
            None if s1.groups is None else s1.groups[k1],
            s1.source,
            list(s1.warnings),
            None if s1.rows is None else s1.rows[k1],
        )
        k2 = np.isin(self.groups, keep_runs)
        steps = None if self.steps is None else self.steps[k2]
        return TwoStepData(
            step1,
            self.inputs[:, k2],
            self.x[k2],
            self.y[k2],
            self.groups[k2],
            self.rows[k2],
            self.via,
            self.source,
            steps,
        )


def run_labels(data: FitData) -> np.ndarray:
    """Run labels of a law's points; a point's table row when the table has no runs."""
    if data.groups is not None:
        return data.groups.astype(str)
    return np.array([f"row {r}" for r in data.rows]) if data.rows is not None else np.arange(data.n_points).astype(str)


@dataclass(frozen=True)
class _StepQuery:
    """What both steps select from the table: the law's inputs, the columns, the intermediate and the row picks."""

    table: pd.DataFrame
    inputs: tuple[str, ...]
    cols: dict[str, str]  # role -> column, resolved
    via: str
    source: str
    metric: str | None
    split: str | None
    via_split: str | None
    final_only: bool
    selection: dict[str, Any]


@dataclass(frozen=True)
class _Pairs:
    """Step 1's points and the (intermediate, metric) pairs, before the pairs' checks and steps."""

    step1: FitData
    inputs: np.ndarray  # (k, m) the law's inputs at every pair
    x: np.ndarray  # (m,) the intermediate
    y: np.ndarray  # (m,) the metric
    groups: np.ndarray  # (m,) each pair's run
    rows: np.ndarray  # (m,) each pair's row of the metric in the table


def two_step_data(
    table: pd.DataFrame,
    inputs: tuple[str, ...],
    via: str,
    columns: dict[str, str | None] | None = None,
    *,
    source: str = "data",
    metric: str | None = None,
    split: str | None = None,
    via_split: str | None = None,
    final_only: bool = True,
    **selection: Any,
) -> TwoStepData:
    """Select both steps' data: `via` names a column of `table` (one row per checkpoint, the metric in the `y`
    column) or a value of its `metric` column (observation rows; the intermediate is joined to the metric by
    run and step). `via_split` is the intermediate's split when it differs from the metric's (default: the same).
    """
    cols = resolve_columns(columns)
    query = _StepQuery(table, inputs, cols, via, source, metric, split, via_split, final_only, selection)
    if via in table.columns:
        pairs = _column_pairs(query)
    elif "metric" in table.columns and via in set(table["metric"].astype(str)):
        pairs = _metric_pairs(query)
    else:
        raise UserError(f"{source}: --via '{via}' is neither a column nor a value of the 'metric' column")
    if np.unique(pairs.groups).size < 2 and np.unique(pairs.x).size < 4:
        raise UserError(
            f"{source}: {pairs.x.size} checkpoint(s) pair '{via}' with the metric; the link needs at least 4"
        )
    steps = pd.to_numeric(table["steps"], errors="coerce").to_numpy(float)[pairs.rows] if "steps" in table else None
    return TwoStepData(pairs.step1, pairs.inputs, pairs.x, pairs.y, pairs.groups, pairs.rows, via, source, steps)


def _step_points(
    query: _StepQuery, mapping: dict[str, str], rows_metric: str | None, rows_split: str | None
) -> tuple[FitData, FitData]:
    """Step 1's points (each run's last when `final_only`) and every checkpoint, for the link."""
    common = {"source": query.source, "metric": rows_metric, "split": rows_split, "n_params": 1}
    table, inputs, selection = query.table, query.inputs, query.selection
    first = select_fit_data(table, inputs, mapping, final_only=query.final_only, **common, **selection)
    every = select_fit_data(table, inputs, mapping, final_only=False, **common, **{**selection, "on_duplicate": "keep"})
    return first, every


def _column_pairs(query: _StepQuery) -> _Pairs:
    """The pairs when `via` is a column: the intermediate and the metric (the `y` column) on the same rows."""
    cols = query.cols
    step1, every = _step_points(query, {**cols, "y": query.via}, query.metric, query.split)
    frame, is_csv = prepare_frame(query.table, query.source, query.metric, query.split)
    frame = frame.set_index(frame["_row"].to_numpy()).loc[every.rows]
    y = numeric_column(frame, cols["y"], "--y (the metric)", query.source, is_csv)
    return _Pairs(step1, every.inputs, every.y, y, run_labels(every), every.rows)


def _metric_pairs(query: _StepQuery) -> _Pairs:
    """The pairs when `via` is a value of the `metric` column: the intermediate joined to the metric by run, step."""
    source, via, metric = query.source, query.via, query.metric
    if metric is None:
        raise UserError(f"{source}: --via '{via}' is a metric of the table; name the task metric with --metric")
    step1, every = _step_points(query, query.cols, via, query.via_split or query.split)
    run_col = query.cols["run"]
    if run_col not in query.table.columns or "steps" not in query.table.columns:
        raise UserError(
            f"{source}: --via '{via}' joins the metric to it by run and step; need columns '{run_col}' and 'steps'"
        )
    joined = _join_checkpoints(query, every)
    if joined.empty:
        raise UserError(f"{source}: no checkpoint (run, steps) has both '{via}' and '{metric}'")
    pos = joined["pos"].to_numpy()
    y, groups, rows = joined["y"].to_numpy(), joined["run"].to_numpy(), joined["row"].to_numpy()
    return _Pairs(step1, every.inputs[:, pos], every.y[pos], y, groups, rows)


def _join_checkpoints(query: _StepQuery, every: FitData) -> pd.DataFrame:
    """The intermediate's checkpoints joined to the metric's rows on (run, steps): run, steps, pos, y, row."""
    table, run_col = query.table, query.cols["run"]
    frame, is_csv = prepare_frame(table, query.source, query.metric, query.split)
    values = numeric_column(frame, query.cols["y"], "--y (the metric)", query.source, is_csv)
    steps = pd.to_numeric(table["steps"], errors="coerce").to_numpy(float)
    key = pd.DataFrame(
        {
            "run": table[run_col].astype(str).to_numpy()[every.rows],
            "steps": steps[every.rows],
            "pos": np.arange(every.n_points),
        }
    )
    target = pd.DataFrame(
        {
            "run": frame[run_col].astype(str).to_numpy(),
            "steps": steps[frame["_row"].to_numpy()],
            "y": values,
            "row": frame["_row"].to_numpy(),
        }
    )
    return key.drop_duplicates(["run", "steps"]).merge(target.drop_duplicates(["run", "steps"]), on=["run", "steps"])


class TwoStepLaw:
    """metric(inputs) = link(law(inputs)): a scaling law for the intermediate chained with a monotone link.

    Parameters
    ----------
    form: the step-1 form ("chinchilla", ..., or "auto"). link: "auto" (chosen by held-out runs among `links`)
    or one of "sigmoid", "exponential", "power". higher_is_better: the metric improves upwards (accuracy, mAP);
    the sigmoid's floor and ceiling then lie in [0, ceiling] (`limits` overrides; (0, inf) when lower is better).
    bootstrap: resamples of whole runs through both steps (0: no intervals). law_options: passed to the
    step-1 `ScalingLaw` (loss, delta, intervals, starts, ...).
    """

    def __init__(
        self,
        form: str = "chinchilla",
        link: str = AUTO,
        links: tuple[str, ...] = LINKS,
        higher_is_better: bool = False,
        ceiling: float = 1.0,
        limits: tuple[float, float] | None = None,
        bootstrap: int = 0,
        seed: int = 0,
        ci_level: float = 0.95,
        **law_options: Any,
    ) -> None:
        self.form = form
        self.link = link
        self.links = tuple(links)
        self.higher_is_better = higher_is_better
        self.ceiling = ceiling
        self.limits = limits
        self.bootstrap = bootstrap
        self.seed = seed
        self.ci_level = ci_level
        self.law_options = law_options

    @property
    def link_limits(self) -> tuple[float, float]:
        if self.limits is not None:
            return (float(self.limits[0]), float(self.limits[1]))
        return (0.0, float(self.ceiling)) if self.higher_is_better else (0.0, np.inf)

    def fit(
        self, data: pd.DataFrame | TwoStepData, columns: dict[str, str | None] | None = None, **selection: Any
    ) -> TwoStepLaw:
        """Fit both steps; a DataFrame goes through `two_step_data` (`via=` is then required)."""
        check_level("ci_level", self.ci_level)
        check_whole("bootstrap", self.bootstrap, unit="refits")
        check_whole("seed", self.seed)
        if self.link != AUTO and self.link not in LINKS:
            raise UserError(f"unknown link '{self.link}'; choose auto or one of: {', '.join(LINKS)}")
        if not isinstance(data, TwoStepData):
            if "via" not in selection:
                raise UserError("a two-step fit needs via= (the intermediate: a column or a metric name)")
            form_inputs = ("n", "d") if self.form == AUTO else _form_inputs(self.form)
            data = two_step_data(data, form_inputs, columns=columns, **selection)
        options = {"intervals": "profile", **self.law_options}
        bootstrap_intervals = options["intervals"] == "bootstrap"  # from the joint resamples, drawn below
        if bootstrap_intervals:
            if not self.bootstrap:
                raise UserError("bootstrap intervals need --bootstrap K (K > 0)")
            options["intervals"] = None
        self.step1_ = fit_law(self.form, data.step1, law_options={"ci_level": self.ci_level, **options})
        self.link_selection_, self.link_ = self._fit_link(data)
        self.via_ = data.via
        self.residuals_ = self.link_(data.x) - data.y
        self.n_pairs_ = int(data.y.size)
        self.n_runs_ = int(np.unique(data.groups).size)
        self.bootstrap_theta_, self.bootstrap_link_ = None, None
        if self.bootstrap:
            self._bootstrap(data)
        if bootstrap_intervals:
            self.step1_.intervals = "bootstrap"
        return self

    def _fit_link(self, data: TwoStepData) -> tuple[LinkSelection | None, Link]:
        """Step 2: the named link, or (link "auto") the one `select_link` chooses by the law's `select_by`
        scoring, with each pair's compute (N x D of its checkpoint) for the forward-chaining cuts."""
        if self.link != AUTO:
            return None, fit_link(self.link, data.x, data.y, self.link_limits)
        scoring = self.law_options.get("select_by") or "extrapolation"
        compute = point_compute(FitData(data.inputs, data.input_names, data.y, data.groups, data.source))
        selection, fitted = select_link(
            data.x, data.y, data.groups, self.links, self.link_limits, scoring=scoring, compute=compute
        )
        return selection, fitted[selection.choice]

    def _bootstrap(self, data: TwoStepData) -> None:
        """Refit both steps on resamples of whole runs (one draw per resample, shared by the two steps)."""
        g1, g2 = run_labels(data.step1), data.groups.astype(str)
        labels = np.unique(np.concatenate([g1, g2]))
        counts = resample_weights(labels.size, self.bootstrap, self.seed, labels)  # (K, R): runs drawn per run
        w1 = counts[:, np.searchsorted(labels, g1)]
        w2 = counts[:, np.searchsorted(labels, g2)]
        law = self.step1_
        lx, ly = np.log(data.step1.inputs), np.log(data.step1.y)
        starts = np.repeat(law.theta_[None, :], self.bootstrap, axis=0)
        refit = minimize(law.form_, lx, ly, starts, law.loss_function(), w1, max_iter=1000, ftol=1e-12)
        self.bootstrap_theta_ = refit.theta
        law.bootstrap_theta_ = refit.theta  # the step-1 law's own intervals from the same draws
        law.bootstrap, law.seed = self.bootstrap, self.seed
        params = [
            fit_link_params(self.link_.name, data.x, data.y, w, self.link_limits, start=self.link_.params)[0]
            for w in w2
        ]
        self.bootstrap_link_ = np.stack(params)

    def _check_fitted(self) -> None:
        if not hasattr(self, "link_"):
            raise RuntimeError("this TwoStepLaw is not fitted yet; call fit() or TwoStepLaw.load()")

    @property
    def form_(self) -> Any:
        """The step-1 law's form: what the chain predicts from (its inputs)."""
        self._check_fitted()
        return self.step1_.form_

    def predict_intermediate(self, **inputs: Any) -> np.ndarray:
        """Step 1 alone: the intermediate (the loss) the law predicts at the inputs."""
        self._check_fitted()
        return self.step1_.predict(**inputs)

    def predict(self, return_ci: bool = False, observation: bool = False, **inputs: Any):
        """The chained metric link(law(inputs)); with `return_ci` also the bootstrap interval at `ci_level`.

        `observation=True` widens it to a prediction interval for one measured checkpoint: every resample's
        prediction plus a resampled step-2 residual.
        """
        self._check_fitted()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the step-1 law's extrapolation warnings are re-issued below
            intermediate = np.asarray(self.step1_.predict(**inputs), dtype=float)
        point = self.link_(intermediate)
        for name, value in inputs.items():
            lo, hi = self.step1_.domain_[name]
            arr = np.asarray(value, dtype=float)
            if np.any(arr > 10 * hi) or np.any(arr < lo / 10):
                warnings.warn(f"{name} more than 10x outside the fitted range ({lo:g} .. {hi:g})", stacklevel=2)
        if not return_ci:
            return point
        if self.bootstrap_theta_ is None:
            raise UserError("no intervals: the two-step law was fitted without bootstrap")
        samples = self.sample(observation=observation, **inputs)
        tail = 50 * (1 - self.ci_level)
        lo, hi = np.nanpercentile(samples, [tail, 100 - tail], axis=0)
        return point, lo.reshape(point.shape), hi.reshape(point.shape)

    def predict_frame(self, **inputs: Any) -> pd.DataFrame:
        """Chained predictions as a table: a column per input, `prediction`, and `lower` and `upper` (at
        `ci_level`) when bootstrapped; the same shape as `ScalingLaw.predict_frame`."""
        self._check_fitted()
        names = self.form_.inputs
        if set(inputs) != set(names):
            self.step1_.predict(**inputs)  # the UserError that names the inputs the form needs
        arrays = dict(
            zip(names, np.broadcast_arrays(*[np.asarray(inputs[k], dtype=float) for k in names]), strict=True)
        )
        frame = pd.DataFrame({k: v.ravel() for k, v in arrays.items()})
        if self.bootstrap_theta_ is None:
            return frame.assign(prediction=np.ravel(self.predict(**arrays)))
        point, lower, upper = self.predict(return_ci=True, **arrays)
        return frame.assign(prediction=np.ravel(point), lower=np.ravel(lower), upper=np.ravel(upper))

    def sample(self, observation: bool = False, **inputs: Any) -> np.ndarray:
        """(K, m) chained predictions of every bootstrap resample at the inputs (flattened)."""
        self._check_fitted()
        names = self.step1_.form_.inputs
        arrays = np.broadcast_arrays(*[np.asarray(inputs[k], dtype=float) for k in names])
        lx = np.log(np.stack([a.ravel() for a in arrays]))
        with np.errstate(all="ignore"):
            x = np.exp(self.step1_.form_.log_predict(self.bootstrap_theta_, lx))  # (K, m)
            samples = np.stack(
                [evaluate_link(self.link_.name, p, xb) for p, xb in zip(self.bootstrap_link_, x, strict=True)]
            )
        if observation:
            rng = np.random.default_rng(self.seed + 1)
            samples = samples + rng.choice(self.residuals_, size=samples.shape)
        return samples

    # ---- persistence -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: non-finite numbers (an unbounded link limit) become null."""
        self._check_fitted()
        return _finite(
            {
                "scalinglab_version": __version__,
                "two_step": True,
                "via": self.via_,
                "higher_is_better": self.higher_is_better,
                "ceiling": self.ceiling,
                "limits": list(self.link_limits),
                "ci_level": self.ci_level,
                "bootstrap": {"n": self.bootstrap, "seed": self.seed},
                "n_pairs": self.n_pairs_,
                "n_runs": self.n_runs_,
                "step1": self.step1_.to_dict(),
                "link": self.link_.to_dict(),
                "link_selection": None if self.link_selection_ is None else self.link_selection_.to_dict(),
                "residuals": self.residuals_.tolist(),
                "bootstrap_link": None if self.bootstrap_link_ is None else self.bootstrap_link_.tolist(),
            }
        )

    def save(self, path: str | Path) -> None:
        write_text_atomic(path, json.dumps(self.to_dict(), indent=2))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "fit") -> TwoStepLaw:
        try:
            step1 = ScalingLaw.from_dict(data["step1"], source=f"{source}: step1")
            link = data["link"]
            law = cls(
                form=step1.form,
                link=str(link["link"]),
                higher_is_better=bool(data["higher_is_better"]),
                ceiling=float(data["ceiling"]),
                limits=_limits(data["limits"]),
                bootstrap=int(data["bootstrap"]["n"]),
                seed=int(data["bootstrap"]["seed"]),
                ci_level=float(data["ci_level"]),
            )
            law.step1_ = step1
            theta = np.asarray(link["theta"], dtype=float)
            law.link_ = Link(
                str(link["link"]),
                theta,
                float(link["residual_sd"]) ** 2 * max(int(link["n_points"]) - theta.size, 1),
                int(link["n_points"]),
                tuple(link["domain"]),
            )
            law.link_selection_ = None
            law.via_ = str(data["via"])
            law.residuals_ = np.asarray(data["residuals"], dtype=float)
            law.n_pairs_, law.n_runs_ = int(data["n_pairs"]), int(data["n_runs"])
            boot = data.get("bootstrap_link")
            law.bootstrap_link_ = None if boot is None else np.asarray(boot, dtype=float)
            law.bootstrap_theta_ = step1.bootstrap_theta_
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise UserError(f"{source}: not a scalinglab two-step fit (bad or missing key: {exc})") from None
        if law.link_.name not in LINKS:
            raise UserError(f"{source}: key 'link.link': unknown link '{law.link_.name}'")
        if (law.bootstrap_link_ is None) != (law.bootstrap_theta_ is None):
            raise UserError(f"{source}: keys 'bootstrap_link' and 'step1.bootstrap_theta' must both be given or null")
        return law

    @staticmethod
    def is_two_step_file(path: str | Path) -> bool:
        """Whether a fit file (as `save` writes it) holds a two-step law; False for anything else."""
        try:
            return bool(json.loads(Path(path).read_text()).get("two_step"))
        except (OSError, ValueError, AttributeError):
            return False

    @classmethod
    def load(cls, path: str | Path) -> TwoStepLaw:
        data = read_json(path)
        if not isinstance(data, dict) or not data.get("two_step"):
            raise UserError(f"{path}: not a scalinglab two-step fit")
        return cls.from_dict(data, source=str(path))


def _form_inputs(form: str) -> tuple[str, ...]:
    from scalinglab.fit.forms import get_form

    return get_form(form).inputs


def _limits(pair: list) -> tuple[float, float]:
    """Saved limits, null meaning unbounded on that side."""
    lo, hi = pair
    return (-np.inf if lo is None else float(lo), np.inf if hi is None else float(hi))


def _finite(value: Any) -> Any:
    """JSON-safe: non-finite floats become null (an open sigmoid limit, say)."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
