"""The task interface the study runner trains through; the runner knows nothing else about a task.

A task builds data for a data scale and a model for a model scale, computes the training loss of a
batch and the eval metrics of a model (each metric declares whether higher is better).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn

from scalinglab.errors import UserError


class TaskOptions(BaseModel):
    """A task's validated options. Frozen and hashable, so they key a cache (`functools.lru_cache`) as they are."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def cache_key(self) -> tuple:
        """The canonical key: the class and each field's value in declaration order, lists and dicts as tuples.

        Two options objects have the same key exactly when they are equal, whatever order or spelling the
        config used; no text encoding is involved.
        """
        return (type(self).__qualname__, *((name, _frozen(getattr(self, name))) for name in type(self).model_fields))

    def __hash__(self) -> int:
        return hash(self.cache_key())


def _frozen(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return _frozen(value.model_dump())
    if isinstance(value, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_frozen(v) for v in value]
        return tuple(sorted(items)) if isinstance(value, (set, frozenset)) else tuple(items)
    return value


@dataclass
class TaskData:
    train: Any  # whatever `batch` can index
    eval: Any
    dataset_size: int  # D: distinct training samples
    extra_evals: dict[str, Any] = field(default_factory=dict)  # name -> another eval set, scored like `eval`


PRIMARY_SPLIT = "eval"


def eval_split(name: str | None) -> str:
    """The observation `split` of an eval set: "eval" for the task's own, "eval:NAME" for a named extra set."""
    return PRIMARY_SPLIT if name is None else f"{PRIMARY_SPLIT}:{name}"


class EvalSet(TaskOptions):
    """A named extra eval set: the task's data options with a preset shift and/or overrides applied.

    `preset` names a shift the task defines (behaviour "dense", perception "hard"); `options` overrides the
    task's data options (e.g. {"source": "av2", "root": "...", "eval_split": "val"}), only those that change
    the eval data, never the model.
    """

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=40)
    preset: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)


def check_eval_sets(
    options: TaskOptions, eval_sets: list[EvalSet], presets: dict[str, dict[str, Any]], allowed: frozenset[str]
) -> None:
    """Every extra eval set has its own name and resolves to valid options (a ValueError naming it otherwise)."""
    names = [s.name for s in eval_sets]
    if len(set(names)) < len(names):
        raise ValueError(f"eval_sets: names must differ, got {', '.join(names)}")
    for eval_set in eval_sets:
        eval_set_options(options, eval_set, presets, allowed)


def eval_set_options(
    options: TaskOptions, eval_set: EvalSet, presets: dict[str, dict[str, Any]], allowed: frozenset[str]
) -> TaskOptions:
    """The task options that build `eval_set`'s data: the task's own, shifted by its preset and overrides."""
    where = f"eval_sets: '{eval_set.name}'"
    if eval_set.preset is not None and eval_set.preset not in presets:
        raise UserError(f"{where}: unknown preset '{eval_set.preset}'; choose one of: {', '.join(presets) or 'none'}")
    bad = sorted(set(eval_set.options) - allowed)
    if bad:
        raise UserError(
            f"{where}: key 'options.{bad[0]}' cannot change per eval set; allowed: {', '.join(sorted(allowed))}"
        )
    update = {**presets.get(eval_set.preset or "", {}), **eval_set.options, "eval_sets": []}
    try:
        return type(options).model_validate({**options.model_dump(), **update})
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "options"
        raise UserError(f"{where}: key '{key}': {first['msg']}") from None


class Task(ABC):
    name: ClassVar[str]
    Options: ClassVar[type[TaskOptions]] = TaskOptions
    metrics: ClassVar[dict[str, bool]]  # eval metric -> higher is better ("loss" is always lower-is-better)

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        self.options = self.Options.model_validate(options or {})

    @classmethod
    def check_study(cls, options: Any, config: Any) -> str | None:
        """What in the study config the task's options cannot train with ("key '...': why"), or None."""
        del options, config
        return None

    @abstractmethod
    def build_data(self, data_scale: float, seed: int) -> TaskData: ...

    @abstractmethod
    def build_model(self, model_scale: float, scale_by: str) -> nn.Module: ...

    @abstractmethod
    def batch(self, data: Any, indices: torch.Tensor, device: torch.device) -> Any:
        """The batch of the given sample indices, on `device`."""

    @abstractmethod
    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor: ...

    @abstractmethod
    def evaluate(self, model: nn.Module, data: Any, device: torch.device) -> dict[str, float]:
        """Eval metrics, including "loss" (the training objective on eval data)."""

    def optimizer_groups(self, model: nn.Module) -> list[dict]:
        """The optimiser's parameter groups, each with an `lr_scale` multiplying the configured rate."""
        return [{"params": list(model.parameters()), "lr_scale": 1.0}]

    def embedding_parameters(self, model: nn.Module) -> int:
        """Parameters in embedding tables (excluded from the non-embedding count)."""
        return sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Embedding))


def scaled_size(data_scale: float, base: int, available: int | None = None, noun: str = "samples") -> int:
    """D at a data scale: `base` x scale, and for real data at most the `available` training set."""
    size = round(base * data_scale)
    if available is None:
        return max(1, size)
    if not 0 < size <= available:
        raise UserError(
            f"task_options: data scale {data_scale:g} asks for {size} training {noun}; the training set has {available}"
        )
    return size


def fixed_order(count: int, seed: int) -> torch.Tensor:
    """One permutation per data seed: every data scale takes a prefix, so smaller subsets nest in larger."""
    return torch.randperm(count, generator=torch.Generator().manual_seed(seed))
