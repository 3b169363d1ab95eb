"""Option groups: a block of options that several commands share, declared once as a frozen dataclass.

A command names a group as one parameter (`columns: Columns`); `@grouped` expands it into the group's options in
the command's signature (what typer reads for `--help` and parsing) and hands the command one `Columns` object.

    @grouped
    def fit(data: Path, columns: Columns, rows: Rows) -> None:
        table, cols = columns.read(data)
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.models import ParameterInfo

from scalinglab.cli import columns as vocabulary

Opt = typer.Option


RENAMED = {"n_bins": "--bins", "flops_per_param_sample": "--flops-per-param-sample/--k"}


def flag(name: str) -> str:
    """The command-line spelling of an engine's setting: ci_level -> --ci-level, n_bins -> --bins."""
    return RENAMED.get(name, "--" + name.replace("_", "-"))


def option_group(panel: str) -> Callable[[type], type]:
    """A frozen dataclass whose fields are options (`Annotated[type, typer.Option(...)] = default`), listed
    under `panel` in `--help`."""

    def make(cls: type) -> type:
        cls = dataclasses.dataclass(frozen=True)(cls)
        cls.__option_group__ = panel
        return cls

    return make


def _in_panel(hint: Any, panel: str) -> Any:
    """An `Annotated[type, Option]` hint whose option is listed under `panel`."""
    base, *extras = typing.get_args(hint)
    extras = [copy.copy(e) for e in extras]
    for extra in extras:
        if isinstance(extra, ParameterInfo) and extra.rich_help_panel is None:
            extra.rich_help_panel = panel
    return Annotated[(base, *extras)]


def _group_parameters(cls: type) -> list[inspect.Parameter]:
    hints = typing.get_type_hints(cls, include_extras=True)
    return [
        inspect.Parameter(
            f.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=f.default,
            annotation=_in_panel(hints[f.name], cls.__option_group__),
        )
        for f in dataclasses.fields(cls)
    ]


def grouped(command: Callable[..., Any]) -> Callable[..., Any]:
    """`command` with each option-group parameter expanded into its options (and rebuilt into one object)."""
    hints = typing.get_type_hints(command, include_extras=True)
    groups = {name: hint for name, hint in hints.items() if getattr(hint, "__option_group__", False)}
    parameters = []
    for param in inspect.signature(command).parameters.values():
        if param.name in groups:
            parameters += _group_parameters(groups[param.name])
        else:
            parameters.append(param.replace(annotation=hints.get(param.name, param.annotation)))
    names = [p.name for p in parameters]
    duplicated = {n for n in names if names.count(n) > 1}
    if duplicated:
        raise TypeError(f"{command.__name__}: option groups repeat {', '.join(sorted(duplicated))}")

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        for name, cls in groups.items():
            kwargs[name] = cls(**{f.name: kwargs.pop(f.name) for f in dataclasses.fields(cls) if f.name in kwargs})
        return command(*args, **kwargs)

    wrapper.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        sorted(parameters, key=lambda p: p.kind), return_annotation=None
    )
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
    return wrapper


@option_group("Table columns")
class Columns:
    """Which columns of the table hold N, D, C, S, the run and the metric (docs/observations.md)."""

    n: vocabulary.N = None
    d: vocabulary.D = None
    c: vocabulary.C = None
    steps: vocabulary.S = None
    run: vocabulary.RUN = None
    run_by: vocabulary.RUN_BY = None
    y: vocabulary.Y = None
    d_from_flops: vocabulary.D_FROM_FLOPS = False
    flops_per_param_sample: vocabulary.K = 6.0

    def read(self, path: Path) -> tuple[Any, dict[str, str | None]]:
        """The table at `path`, prepared (run ids, steps), and the role -> column map for the engine."""
        from scalinglab import observations

        return self.prepare(observations.read_table(path), str(path))

    def prepare(self, table: Any, source: str) -> tuple[Any, dict[str, str | None]]:
        """`table` with the run ids built (--run-by) and steps read (--steps), and the role -> column map."""
        from scalinglab import observations

        table, run = observations.prepare(table, source=source, run_by=self.run_by, steps=self.steps, run=self.run)
        return table, {"n": self.n, "d": self.d, "c": self.c, "y": self.y, "run": run}

    def selection(self) -> dict[str, Any]:
        """What the engine's row selection takes from these options: D from FLOPs, and k."""
        from scalinglab.cli.render import K_NAME
        from scalinglab.errors import check_flops_per_param_sample

        check_flops_per_param_sample(self.flops_per_param_sample, K_NAME)
        return {"d_from_flops": self.d_from_flops, "flops_per_param_sample": self.flops_per_param_sample}

    def derived(self, table: Any, mapping: dict[str, str | None], source: str) -> tuple[Any, dict[str, str | None]]:
        """With --d-from-flops, the table with D = C / (k N) added and the map pointing at it."""
        from scalinglab import observations

        if not self.d_from_flops:
            return table, mapping
        table, d = observations.derive_d(table, self.c, self.n, self.flops_per_param_sample, source)
        return table, {**mapping, "d": d}


@option_group("Table columns")
class CurveColumns(Columns):
    """Columns of a table of learning curves: D is the samples seen so far, C the FLOPs so far."""

    c: Annotated[str | None, Opt("--c", "--x", help="column of training FLOPs C so far; default column: flops")] = None
    d: Annotated[str | None, Opt("--d", help="column of samples seen so far D; default column: samples_seen")] = None
    d_from_flops: Annotated[bool, Opt(help="derive samples seen D = C / (k N) instead of reading a D column")] = False


@option_group("Table columns")
class Rows:
    """Which rows of a long table are the metric: its name and split."""

    metric: vocabulary.METRIC = None
    split: vocabulary.SPLIT = None


@option_group("Metric")
class Direction:
    """Which way the metric improves, and its best value when it improves upwards."""

    higher_is_better: vocabulary.HIGHER_IS_BETTER = False
    ceiling: Annotated[float, Opt(help="best possible value of a higher-is-better metric")] = 1.0


@option_group("Fit and intervals")
class Intervals:
    """The fit's loss and its confidence intervals."""

    loss: Annotated[str, Opt(help="huber, mse or asymmetric")] = "huber"
    delta: Annotated[float, Opt(help="Huber threshold on log residuals")] = 1e-3
    bootstrap: Annotated[int, Opt(help="bootstrap refits for confidence intervals (0: none)")] = 0
    seed: Annotated[int, Opt(help="seed of the bootstrap resampling")] = 0
    ci_level: Annotated[float, Opt(help="coverage of the intervals")] = 0.95
    intervals: Annotated[
        str, Opt(help="profile (profile likelihood; open where the data do not bound a parameter) or bootstrap")
    ] = "profile"

    def law_options(self) -> dict[str, Any]:
        """The ScalingLaw settings these options name, checked once (a bad one is a UserError naming its flag)."""
        from scalinglab.fit.law import ScalingLaw

        options = dataclasses.asdict(self)
        ScalingLaw(**options).check_options(flag)
        return options


@option_group("Two steps")
class TwoStep:
    """A metric predicted in two steps: a law for an intermediate, then a link from it to the metric."""

    via: Annotated[
        str | None,
        Opt(
            help="two steps: the intermediate (a column, or a value of 'metric', e.g. loss) fitted by the law, "
            "then the metric as a monotone link of it over every checkpoint"
        ),
    ] = None
    via_split: Annotated[str | None, Opt(help="with --via: the intermediate's split when not --split's")] = None
    link: Annotated[str, Opt(help="with --via: auto (held-out runs), sigmoid, exponential or power")] = "auto"

    def fit_options(self) -> dict[str, Any]:
        """What the two-step data selection takes: the intermediate and its split."""
        return {"via": self.via, "via_split": self.via_split}


@option_group("Form")
class FormChoice:
    """The law's form, or a search among candidate forms scored by how they extrapolate."""

    form: Annotated[
        str,
        Opt(
            help="functional form (see `scalinglab forms`; chinchilla_floor=E fixes the floor at E), or auto: the "
            "candidate that best predicts the runs beyond several compute cuts (see --select-by)"
        ),
    ] = "auto"
    candidates: Annotated[
        str | None,
        Opt(
            help="with --form auto: comma-separated forms to choose among (default chinchilla, chinchilla_shared, "
            "chinchilla_no_floor, chinchilla_no_floor_shared, kaplan, and the steps-aware forms when --seen is given)"
        ),
    ] = None
    select_by: Annotated[
        str,
        Opt(
            help="with --form auto: extrapolation (fit below compute cuts, score the runs above; leave-one-out "
            "when the table is too small to cut) or loo (leave one run out)"
        ),
    ] = "extrapolation"

    def names(self, one_variable: bool = False) -> list[str] | None:
        """--candidates as a list of known form names (only with --form auto); the one-variable forms by default
        when the table gives one variable (--x)."""
        from scalinglab.errors import UserError
        from scalinglab.fit.forms import get_form
        from scalinglab.fit.scoring import ONE_VAR_CANDIDATES

        if self.select_by not in ("extrapolation", "loo"):
            raise UserError(f"--select-by must be extrapolation or loo, not '{self.select_by}'")
        if self.form != "auto":
            get_form(self.form)  # an unknown form is one line naming it
        if self.candidates is None:
            return list(ONE_VAR_CANDIDATES) if one_variable and self.form == "auto" else None
        if self.form != "auto":
            raise UserError("--candidates chooses among forms: it needs --form auto")
        names = [name.strip() for name in self.candidates.split(",") if name.strip()]
        for name in names:
            get_form(name)
        return names

    def law_options(self, one_variable: bool = False) -> dict[str, Any]:
        """What a law's fit takes from these options: the candidates and the scoring of the search."""
        return {"candidates": self.names(one_variable), "select_by": self.select_by}


@option_group("Trials")
class Trials:
    """Several runs per (N, D) cell that differ in hyperparameters: read each cell's best trial."""

    best_of: Annotated[
        str | None,
        Opt(
            help="comma-separated hyperparameter columns the trials differ in (default: lr, batch_size, warmup_steps, "
            "weight_decay, ... where they vary within a cell); each cell's best trial by its final metric is read"
        ),
    ] = None
    all_trials: Annotated[bool, Opt(help="read every trial, not only the best of each cell")] = False

    def choice(self) -> list[str] | None | bool:
        """The columns named by --best-of, False for --all-trials, None to look for trial columns."""
        from scalinglab.errors import UserError
        from scalinglab.observations import parse_best_of

        names = parse_best_of(self.best_of)
        if self.all_trials and names is not None:
            raise UserError("give --best-of or --all-trials, not both")
        return False if self.all_trials else names

    def apply(self, table: Any, cols: dict[str, str | None], rows: Rows, higher_is_better: bool, source: str) -> Any:
        """The table with only each cell's best trial when it has trials (a note on stderr says so)."""
        from scalinglab.cli.render import err_console
        from scalinglab.observations import read_best_trials

        options = {"metric": rows.metric, "split": rows.split, "higher_is_better": higher_is_better, "source": source}
        chosen = read_best_trials(table, self.choice(), cols, **options)
        if chosen is None:
            return table
        err_console.print(f"note: {chosen.note}", highlight=False, markup=False, soft_wrap=True)
        return chosen.table
