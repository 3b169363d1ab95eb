"""The study config: a YAML file validated completely before anything trains.

Errors name the key and, where there is a fixed choice, the allowed values.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from scalinglab.errors import UserError


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class LrLaw(Strict):
    """A hyperparameter from a fitted law, scale N^n D^d (`scalinglab hparams -o FILE`): each cell's learning
    rate (`optimizer.lr_law`) or batch size (`batch_size_law`)."""

    scale: float = Field(gt=0)
    exponents: dict[Literal["n", "d"], float]

    def at(self, n_params: float, dataset_size: float) -> float:
        values = {"n": n_params, "d": dataset_size}
        return self.scale * math.prod(values[k] ** e for k, e in self.exponents.items())


class OptimizerConfig(Strict):
    name: Literal["adamw", "sgd"] = "adamw"
    lr: float = Field(1e-3, gt=0)
    # Set each cell's rate from a law in its N and D instead of `lr` (inline, or a file `scalinglab hparams -o` wrote)
    lr_law: LrLaw | None = None
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    momentum: float = Field(0.9, ge=0, lt=1)
    grad_clip: float | None = Field(None, gt=0)  # largest global L2 norm of the gradients; None: no clipping


class ScheduleConfig(Strict):
    """cosine: warmup then cosine decay over the run's own length; wsd: warmup-stable-decay, the last
    `decay_fraction` of the steps decaying by `decay_shape` (linear; cosine; sqrt: 1 - sqrt(progress), the
    cooldown Hagele et al. 2024 found best)."""

    kind: Literal["cosine", "wsd", "constant"] = "cosine"
    warmup_steps: int = Field(0, ge=0)
    decay_fraction: float = Field(0.2, gt=0, le=1)
    decay_shape: Literal["linear", "cosine", "sqrt"] = "linear"
    min_lr_ratio: float = Field(0.0, ge=0, le=1)


class LogRange(Strict):
    """`count` values spaced evenly in log from `low` to `high` (both included)."""

    low: float = Field(gt=0)
    high: float = Field(gt=0)
    count: int = Field(ge=2)

    @model_validator(mode="after")
    def _ordered(self) -> LogRange:
        if not self.high > self.low:
            raise ValueError("'high' must be above 'low'")
        return self

    def values(self) -> list[float]:
        return [float(v) for v in np.geomspace(self.low, self.high, self.count)]


# What a search may vary per cell, and the short names its trials' run ids use.
SEARCH_KEYS = {"lr": "lr", "batch_size": "bs", "warmup_steps": "wu", "weight_decay": "wd"}


# A halving search's own keys, left out of the digest while a search is a grid (studies made before they existed).
HALVING_KEYS = ("reduction_factor", "min_fraction", "metric")


class SearchConfig(Strict):
    """Trials per cell: every combination of the listed values (a list, or a log range) is one run of each cell.

    `method: halving` stops the weak trials of each cell early (asynchronous successive halving, Optuna's
    SuccessiveHalvingPruner, study/pruning.py): at each rung, a fraction `min_fraction` x `reduction_factor`^k of
    a run's budget, a trial trains on only when its `metric` (eval split) is in the best 1/`reduction_factor`
    of the cell's trials that reached that rung.
    """

    method: Literal["grid", "halving"] = "grid"
    lr: list[float] | LogRange | None = None
    batch_size: list[int] | LogRange | None = None
    warmup_steps: list[int] | None = None
    weight_decay: list[float] | None = None
    reduction_factor: int | None = Field(None, ge=2)  # halving's default: 3
    min_fraction: float | None = Field(None, gt=0, lt=1)  # halving's default: 1/9
    metric: str | None = Field(None, min_length=1)  # default: the task's first eval metric

    @field_validator("lr", "batch_size", mode="before")
    @classmethod
    def _range(cls, values: Any) -> Any:
        """A mapping is a log range; its own first problem is the one reported."""
        if not isinstance(values, dict):
            return values
        try:
            return LogRange.model_validate(values)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            message = first["msg"].removeprefix("Value error, ")
            raise ValueError(f"{where}: {message}" if where else message) from None

    @field_validator("lr", "batch_size", "warmup_steps", "weight_decay")
    @classmethod
    def _values(cls, values: Any) -> Any:
        if isinstance(values, list):
            if not values:
                raise ValueError("must list at least one value")
            if len(set(values)) != len(values):
                raise ValueError("lists a value twice")
            if any(v < 0 for v in values):
                raise ValueError("values must be >= 0")
        return values

    @model_validator(mode="after")
    def _something(self) -> SearchConfig:
        space = self.space()
        if not space:
            raise ValueError(f"name at least one of {', '.join(SEARCH_KEYS)} to search over")
        if any(v <= 0 for v in space.get("lr", []) + space.get("batch_size", [])):
            raise ValueError("lr and batch_size values must be > 0")
        if self.method == "grid":
            given = [k for k in HALVING_KEYS if getattr(self, k) is not None]
            if given:
                raise ValueError(f"'{given[0]}' is for method 'halving'")
            return self
        if len(self.trials()) < 2:
            raise ValueError("method 'halving' needs at least two trials per cell to choose between")
        self.reduction_factor = 3 if self.reduction_factor is None else self.reduction_factor
        self.min_fraction = 1 / 9 if self.min_fraction is None else self.min_fraction
        return self

    def rungs(self) -> list[float]:
        """A halving search's rungs, as fractions of a run's budget: min_fraction x reduction_factor^k below 99%
        (0.111 x 9 is the end of the run, where every trial completes, not a rung)."""
        out, fraction = [], self.min_fraction
        while fraction < 0.99:
            out.append(fraction)
            fraction *= self.reduction_factor
        return out

    def space(self) -> dict[str, list[float]]:
        """Each searched key's values, in order (a batch-size range rounded to whole, distinct sizes)."""
        out: dict[str, list[float]] = {}
        for key in SEARCH_KEYS:
            value = getattr(self, key)
            if isinstance(value, LogRange):
                value = value.values()
                if key == "batch_size":
                    value = sorted({max(1, round(v)) for v in value})
            if value is not None:
                out[key] = list(value)
        return out

    def trials(self) -> list[tuple[tuple[str, float], ...]]:
        """Every combination of the searched values, each as sorted (key, value) pairs; a halving search's in
        the order they train (`spread_order`)."""
        space = self.space()
        grid = [tuple(zip(space, combo, strict=True)) for combo in itertools.product(*space.values())]
        return grid if self.method == "grid" else [grid[i] for i in spread_order(len(grid))]


def spread_order(count: int) -> list[int]:
    """0..count-1 middle first, then the middles of each half, breadth first: [2, 0, 4, 1, 3, 5] for 6.

    Asynchronous halving compares each trial with those that reached a rung before it; in grid order, a metric
    that improves towards the middle of the range would promote every trial up to the optimum. Spread out, the
    first trials span the range and set the bar the others must meet.
    """
    out, spans = [], [(0, count - 1)]
    while spans:
        low, high = spans.pop(0)
        if low <= high:
            middle = (low + high) // 2
            out.append(middle)
            spans += [(low, middle - 1), (middle + 1, high)]
    return out


class BudgetConfig(Strict):
    steps: int | None = Field(None, gt=0)
    epochs: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one_of(self) -> BudgetConfig:
        if (self.steps is None) == (self.epochs is None):
            raise ValueError("give exactly one of 'steps' or 'epochs'")
        return self

    def total_steps(self, dataset_size: int, batch_size: int) -> int:
        if self.steps is not None:
            return self.steps
        return max(1, math.ceil(self.epochs * dataset_size / batch_size))


class ResourcesConfig(Strict):
    """How one run is spread: `workers_per_run` > 1 trains it data-parallel on Ray Train (DDP)."""

    workers_per_run: int = Field(1, ge=1)
    cpus_per_worker: float = Field(1.0, gt=0)
    gpus_per_worker: float = Field(0.0, ge=0)
    max_failures: int = Field(3, ge=-1)  # restarts of a run's workers after one dies (-1: no limit)


# Keys added after the first studies (how and where a study runs, and the search): a study created before they
# existed, or that leaves them at their defaults, keeps its config digest.
_HOW_KEYS = ("resources", "storage", "precision", "compile", "branches", "search")


class MlflowLoggingConfig(Strict):
    """Mirror runs to MLflow: a tracking URI or a folder (relative: under the study directory)."""

    tracking_uri: str = Field("mlruns", min_length=1)
    experiment: str | None = Field(None, min_length=1)  # default: the study's name


class LoggingConfig(Strict):
    """Live mirrors of every run's observations; off unless a key is given (see study/tracking.py)."""

    tensorboard: str | None = Field(None, min_length=1)  # folder of event files (relative: under the study directory)
    mlflow: MlflowLoggingConfig | None = None


def _multiplier(value: Any) -> float:
    """1, 2.5, '4X' or '4x' -> a positive float."""
    if isinstance(value, str):
        text = value.strip().rstrip("Xx")
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"'{value}' is not a multiplier such as 4 or '4X'") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{value!r} is not a finite positive multiplier")
    return float(value)


class StudyConfig(Strict):
    name: str = "study"
    task: str
    task_options: dict[str, Any] = Field(default_factory=dict)
    model_scales: list[float] = Field(min_length=1)
    scale_by: Literal["width", "depth", "both"] = "width"
    data_scales: list[float] = Field(min_length=1)
    budget: BudgetConfig
    batch_size: int = Field(gt=0)
    # Set each cell's batch size from a law in its N and D (rounded to a multiple of workers_per_run) instead
    batch_size_law: LrLaw | None = None
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    eval_every: int = Field(gt=0)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    storage: str | None = Field(None, min_length=1)  # run folders (checkpoints): a path or URI; default DIR
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on CUDA, fp32 elsewhere
    compile: bool = False  # torch.compile the training forward and backward
    # Realise the data scales of each (model scale, seed) as cooldown branches of one wsd run (study/branches.py)
    branches: bool = False
    search: SearchConfig | None = None  # trials per cell: hyperparameters tried at every (model, data) scale
    logging: LoggingConfig = Field(default_factory=LoggingConfig)

    @field_validator("model_scales", "data_scales", mode="before")
    @classmethod
    def _scales(cls, values: Any) -> list[float]:
        if not isinstance(values, list):
            raise ValueError("must be a list of multipliers, e.g. [1, 2, 4] or ['1X', '2X']")
        scales = [_multiplier(v) for v in values]
        if len(set(scales)) != len(scales):
            raise ValueError("lists a scale twice")
        return scales

    @model_validator(mode="after")
    def _resources_fit(self) -> StudyConfig:
        workers = self.resources.workers_per_run
        if self.batch_size % workers:
            raise ValueError(
                f"batch_size {self.batch_size} must be a multiple of resources.workers_per_run ({workers}): "
                "each worker takes an equal shard of the global batch"
            )
        if self.resources.gpus_per_worker > 0 and self.device == "cpu":
            raise ValueError("resources.gpus_per_worker > 0 needs device 'cuda' or 'auto'")
        if self.device == "cuda" and workers > 1 and self.resources.gpus_per_worker == 0:
            raise ValueError("device 'cuda' with workers_per_run > 1 needs resources.gpus_per_worker >= 1")
        if self.branches and self.schedule.kind != "wsd":
            raise ValueError("branches need schedule.kind 'wsd': a branch leaves its trunk's stable phase to cool down")
        if self.branches and self.budget.steps is not None:
            raise ValueError("branches need budget.epochs: each data scale's size sets how long its cell trains")
        if self.branches and self.optimizer.lr_law is not None:
            raise ValueError("optimizer.lr_law sets each data scale's own rate, so branches would share no trunk")
        if self.branches and self.batch_size_law is not None:
            raise ValueError("batch_size_law sets each data scale's own batch, so branches would share no trunk")
        return self._search_fits()

    def _search_fits(self) -> StudyConfig:
        """A search's values are usable by every run: batch sizes shard evenly, no key is set two ways."""
        if self.search is None:
            return self
        space = self.search.space()
        if self.branches:
            raise ValueError("search and branches together are not supported: each trial would need its own trunk")
        if self.search.method == "halving" and self.resources.workers_per_run > 1:
            raise ValueError("search.method 'halving' trains each trial in one process: set workers_per_run to 1")
        if "lr" in space and self.optimizer.lr_law is not None:
            raise ValueError("search.lr and optimizer.lr_law both set the learning rate: keep one")
        if "batch_size" in space and self.batch_size_law is not None:
            raise ValueError("search.batch_size and batch_size_law both set the batch size: keep one")
        for size in space.get("batch_size", []):
            if size % self.resources.workers_per_run:
                raise ValueError(f"search.batch_size {size} must be a multiple of resources.workers_per_run")
        return self

    def base_lr(self, n_params: float, dataset_size: float) -> float:
        """The base learning rate of a run of this config: `optimizer.lr_law`'s at its N and D, else `lr`."""
        law = self.optimizer.lr_law
        return self.optimizer.lr if law is None else law.at(n_params, dataset_size)

    def for_trial(self, hparams: tuple[tuple[str, float], ...]) -> StudyConfig:
        """This config with one trial's hyperparameters in place: what its run trains with."""
        values = dict(hparams)
        if not values:
            return self
        optimizer = {k: values[k] for k in ("lr", "weight_decay") if k in values}
        update: dict[str, Any] = {"optimizer": self.optimizer.model_copy(update=optimizer)}
        if "batch_size" in values:
            update["batch_size"] = int(values["batch_size"])
        if "warmup_steps" in values:
            update["schedule"] = self.schedule.model_copy(update={"warmup_steps": int(values["warmup_steps"])})
        return self.model_copy(update=update)

    def digest(self) -> str:
        """A stable hash of the config, to tell whether a study directory holds this study."""
        dumped = self.model_dump(mode="json")
        dumped.pop("logging", None)  # where runs are mirrored to does not change them
        defaults = {
            "resources": ResourcesConfig().model_dump(mode="json"),
            "storage": None,
            "precision": "auto",
            "search": None,
        }
        if dumped.get("search") and dumped["search"]["method"] == "grid":  # keys added later: the old digest
            for key in HALVING_KEYS:
                dumped["search"].pop(key, None)
        if dumped["optimizer"].get("lr_law") is None:  # a key added later, at its default: the old digest
            dumped["optimizer"].pop("lr_law", None)
        if dumped.get("batch_size_law", False) is None:
            dumped.pop("batch_size_law")
        for key in _HOW_KEYS:
            if dumped.get(key) == defaults.get(key, False):
                dumped.pop(key, None)
        if dumped["schedule"].get("decay_shape") == "linear":  # a key added later, at its default: the old digest
            dumped["schedule"].pop("decay_shape")
        return hashlib.sha256(json.dumps(dumped, sort_keys=True).encode()).hexdigest()[:16]


def _describe(error: dict) -> str:
    key = ".".join(str(part) for part in error["loc"]) or "(top level)"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    return f"key '{key}': {message}"


def parse_config(data: Any, source: str = "config", check_task: bool = True) -> StudyConfig:
    """Validate a config mapping, including the task's own options; a UserError names the first bad key.

    `check_task=False` skips the task's options, and with them the import of the tasks (and of torch):
    for reading a study whose config was checked in full when it was created.
    """
    if not isinstance(data, dict):
        raise UserError(f"{source}: the config must be a mapping of keys to values")
    try:
        config = StudyConfig.model_validate(data)
    except ValidationError as exc:
        raise UserError(f"{source}: {_describe(exc.errors()[0])}") from None
    if check_task:
        check_task_options(config, source)
    return config


def check_task_options(config: StudyConfig, source: str = "config") -> None:
    """A UserError naming the first bad key of the config's task or task options."""
    from scalinglab.tasks import get_task_class

    task_class = get_task_class(config.task, source)
    try:
        options = task_class.Options.model_validate(config.task_options)
    except ValidationError as exc:
        first = exc.errors()[0]
        first = {**first, "loc": ("task_options", *first["loc"])}
        raise UserError(f"{source}: {_describe(first)}") from None
    search = config.search
    if search is not None and search.method == "halving" and search.metric is not None:
        known = {"loss", *task_class.metrics}
        if search.metric not in known:
            listed = ", ".join(sorted(known))
            raise UserError(
                f"{source}: key 'search.metric': '{search.metric}' is not an eval metric of task "
                f"'{config.task}' ({listed})"
            )
    problem = task_class.check_study(options, config)
    if problem is not None:
        raise UserError(f"{source}: {problem}")


class _DuplicateKey(yaml.MarkedYAMLError):
    pass


class _UniqueKeyLoader(yaml.SafeLoader):
    """The safe loader, refusing a key given twice in one mapping (plain YAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: the base loader reports it
                break
            if duplicate:
                raise _DuplicateKey(problem=f"key '{key}' is given twice", problem_mark=key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_config(path: str | Path) -> StudyConfig:
    """Read and validate a YAML config; every problem is a one-line UserError naming the file and key."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise UserError(f"{path}: not UTF-8 text (byte {exc.start + 1}, line {line})") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: no object construction
    except _DuplicateKey as exc:
        raise UserError(f"{path}: {exc.problem} (line {exc.problem_mark.line + 1})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise UserError(f"{path}: not valid YAML{where}") from None
    if isinstance(data, dict) and isinstance(data.get("optimizer"), dict):
        optimizer = data["optimizer"]
        data = {**data, "optimizer": {**optimizer, "lr_law": _law_file(optimizer.get("lr_law"), "lr", path)}}
    if isinstance(data, dict) and "batch_size_law" in data:
        data = {**data, "batch_size_law": _law_file(data["batch_size_law"], "batch_size", path)}
    return parse_config(data, str(path))


_LAW_KEYS = {"lr": ("optimizer.lr_law", "learning-rate"), "batch_size": ("batch_size_law", "batch-size")}


def _law_file(value: Any, hparam: str, path: Path) -> Any:
    """A law given as a FILE (relative to the config) replaced by the law in (N, D) that `hparams -o` wrote for
    `hparam`; anything else as it is."""
    if not isinstance(value, str):
        return value
    key, noun = _LAW_KEYS[hparam]
    where = path.parent / value
    try:
        saved = json.loads(where.read_text())
        law = saved["hparam_laws"][hparam]["nd"] if "hparam_laws" in saved else saved
        return {"scale": law["scale"], "exponents": law["exponents"]}
    except OSError as exc:
        raise UserError(f"{path}: key '{key}': {where} cannot be read ({exc.strerror or exc})") from None
    except (ValueError, KeyError, TypeError):
        raise UserError(
            f"{path}: key '{key}': {where} holds no {noun} law in N and D (write one with `scalinglab hparams -o`)"
        ) from None
