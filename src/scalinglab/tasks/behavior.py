"""The behaviour task: multi-modal trajectory prediction with the scalable transformer.

Data sources: synthetic traffic (default, generated locally), Argoverse 2 (``root`` holds the
dataset's ``<split>/<scenario_id>/`` folders) and ETH/UCY (``root`` holds the Trajectron++ layout;
``scene`` is the left-out scene). A data scale multiplies ``base_samples`` (synthetic: scenes; real
data: samples, by default the whole training split, so scales are fractions such as 0.075, 0.5, 1).
Real-data subsets come from one fixed permutation, so a smaller subset is inside every larger one.
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any, Literal

import torch
from pydantic import Field, model_validator
from torch import nn

from scalinglab.behavior.metrics import trajectory_metrics
from scalinglab.behavior.model import BehaviorConfig, BehaviorTransformer, wta_loss
from scalinglab.behavior.mup import base_config, param_groups
from scalinglab.behavior.sample import TrajectorySet
from scalinglab.errors import UserError
from scalinglab.tasks.base import (
    EvalSet,
    Task,
    TaskData,
    TaskOptions,
    check_eval_sets,
    eval_set_options,
    fixed_order,
    scaled_size,
)

DEFAULTS = {  # source -> (history, horizon, modes) at 10 Hz (ETH/UCY: 2.5 Hz)
    "synthetic": (20, 30, 6),
    "av2": (50, 60, 6),
    "eth_ucy": (8, 12, 20),
}
EVAL_SEED_OFFSET = 1_000_003
# the data options an extra eval set may change (never the model's)
EVAL_SET_KEYS = frozenset(
    {
        "source",
        "root",
        "scene",
        "eval_split",
        "eval_samples",
        "noise",
        "vehicles",
        "pedestrians",
        "scenes_per_layout",
        "data_seed",
    }
)


class BehaviorOptions(TaskOptions):
    source: Literal["synthetic", "av2", "eth_ucy"] = "synthetic"
    root: str | None = None  # the dataset folder for av2 / eth_ucy
    scene: Literal["eth", "hotel", "univ", "zara1", "zara2"] = "eth"  # ETH/UCY: the left-out scene
    train_split: str = "train"  # AV2 splits
    eval_split: str = "val"
    history: int | None = Field(None, gt=0)
    horizon: int | None = Field(None, gt=0)
    num_modes: int | None = Field(None, gt=0)
    base_samples: int | None = Field(None, gt=0)  # D at data scale 1 (synthetic default 2000 scenes)
    eval_samples: int | None = Field(None, gt=0)  # synthetic default 1000; real data: the whole split
    data_seed: int = 0
    base_width: int = Field(32, gt=0, multiple_of=8)
    base_depth: int = Field(2, gt=0)
    # mup: the maximal-update parametrisation (behavior/mup.py, AdamW only), so the 1X model's tuned rate transfers
    parametrization: Literal["standard", "mup"] = "standard"
    max_agents: int = Field(12, gt=0)
    max_polylines: int = Field(32, ge=0)
    polyline_points: int = Field(10, ge=2)
    noise: float = Field(0.05, ge=0)  # synthetic: observation noise, metres
    vehicles: int = Field(14, gt=0)  # synthetic: vehicles in a scene (the traffic density)
    pedestrians: int = Field(4, ge=0)  # synthetic: pedestrians in a scene
    scenes_per_layout: int = Field(256, gt=0)  # synthetic: scenes per intersection layout (fewer: more layouts)
    eval_sets: list[EvalSet] = []  # named extra eval sets (presets: dense), each scored at every eval
    augment_rotation: bool | None = None  # random rotations of training batches (default: on for ETH/UCY)
    eval_batch: int = Field(512, gt=0)

    @model_validator(mode="after")
    def _eval_sets_valid(self) -> BehaviorOptions:
        """Every extra eval set resolves to valid options now, not when a worker first builds its data."""
        if self.eval_sets:
            from scalinglab.behavior.synthetic import EVAL_PRESETS

            check_eval_sets(self, self.eval_sets, EVAL_PRESETS, EVAL_SET_KEYS)
        return self

    @model_validator(mode="after")
    def _root_needed(self) -> BehaviorOptions:
        if self.source != "synthetic" and not self.root:
            raise ValueError(f"source '{self.source}' needs 'root', the dataset folder")
        if self.source == "eth_ucy" and (self.history not in (None, 8) or self.horizon not in (None, 12)):
            raise ValueError("ETH/UCY uses the standard 8 observed and 12 predicted steps")
        return self

    @property
    def steps(self) -> tuple[int, int, int]:
        history, horizon, modes = DEFAULTS[self.source]
        return self.history or history, self.horizon or horizon, self.num_modes or modes


@functools.lru_cache(maxsize=8)
def _load(options_json: str, which: str) -> TrajectorySet:
    """A whole split (real data) or the synthetic stream's first scenes, cached per process."""
    options = BehaviorOptions.model_validate(json.loads(options_json))
    history, horizon, _ = options.steps
    if options.source == "synthetic":
        from scalinglab.behavior.synthetic import SyntheticOptions, synthetic_traffic

        sim = SyntheticOptions(
            history=history,
            horizon=horizon,
            max_agents=options.max_agents,
            max_polylines=options.max_polylines,
            polyline_points=options.polyline_points,
            noise=options.noise,
            vehicles=options.vehicles,
            pedestrians=options.pedestrians,
            scenes_per_layout=options.scenes_per_layout,
        )
        kind, count = which.split(":")
        seed = options.data_seed + (EVAL_SEED_OFFSET if kind == "eval" else 0)
        return synthetic_traffic(sim, int(count), seed)
    if options.source == "eth_ucy":
        from scalinglab.behavior.eth_ucy import load_eth_ucy

        return load_eth_ucy(options.root, options.scene, "train" if which == "train" else "test", options.max_agents)
    from scalinglab.behavior.av2 import load_av2

    split = options.train_split if which == "train" else options.eval_split
    return load_av2(
        options.root,
        split,
        history=history,
        horizon=horizon,
        max_agents=options.max_agents,
        max_polylines=options.max_polylines,
        polyline_points=options.polyline_points,
    )


def _eval_data(opts: BehaviorOptions) -> TrajectorySet:
    """The eval data these options give: synthetic scenes from the eval stream, or the real eval split."""
    if opts.source == "synthetic":
        return _load(opts.model_dump_json(), f"eval:{opts.eval_samples or 1000}")
    evaluation = _load(opts.model_dump_json(), "eval")
    return evaluation.subset(slice(0, opts.eval_samples)) if opts.eval_samples else evaluation


def _rotate(points: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    shape = (-1,) + (1,) * (points.dim() - 2)
    c, s = cos.view(shape), sin.view(shape)
    return torch.stack([c * points[..., 0] - s * points[..., 1], s * points[..., 0] + c * points[..., 1]], dim=-1)


class BehaviorTask(Task):
    name = "behavior"
    Options = BehaviorOptions
    metrics = {"minADE": False, "minFDE": False, "miss_rate": False, "brier_minFDE": False}

    @classmethod
    def check_study(cls, options: BehaviorOptions, config: Any) -> str | None:
        if options.parametrization == "mup" and config.optimizer.name != "adamw":
            return "key 'task_options.parametrization': mup's learning rates are AdamW's; set optimizer.name adamw"
        return None

    def _options_json(self) -> str:
        return self.options.model_dump_json()

    def build_data(self, data_scale: float, seed: int) -> TaskData:
        del seed  # the data is fixed by data_seed; the run seed drives initialisation and order
        opts = self.options
        extra = {s.name: self._eval_set(s) for s in opts.eval_sets}
        if opts.source == "synthetic":
            size = scaled_size(data_scale, opts.base_samples or 2000)
            train = _load(self._options_json(), f"train:{size}")
            return TaskData(train=train, eval=_eval_data(opts), dataset_size=len(train), extra_evals=extra)
        full = _load(self._options_json(), "train")
        size = scaled_size(data_scale, opts.base_samples or len(full), len(full))
        order = fixed_order(len(full), opts.data_seed)
        return TaskData(train=full.subset(order[:size]), eval=_eval_data(opts), dataset_size=size, extra_evals=extra)

    def _eval_set(self, eval_set: EvalSet) -> TrajectorySet:
        """An extra eval set's data; its trajectories must have the task's history, horizon and modes."""
        from scalinglab.behavior.synthetic import EVAL_PRESETS

        opts = eval_set_options(self.options, eval_set, EVAL_PRESETS, EVAL_SET_KEYS)
        if opts.steps != self.options.steps:
            raise UserError(
                f"eval_sets: '{eval_set.name}' has (history, horizon, modes) {opts.steps}, the task "
                f"{self.options.steps}; set history and horizon in task_options"
            )
        return _eval_data(opts)

    def model_config(self, model_scale: float, scale_by: str) -> BehaviorConfig:
        history, horizon, modes = self.options.steps
        base = BehaviorConfig(history, horizon, self.options.base_width, self.options.base_depth, modes)
        config = base.at_scale(model_scale, scale_by)
        return base_config(config, self.options.base_width) if self.options.parametrization == "mup" else config

    def build_model(self, model_scale: float, scale_by: str) -> nn.Module:
        return BehaviorTransformer(self.model_config(model_scale, scale_by))

    def optimizer_groups(self, model: nn.Module) -> list[dict]:
        """Under muP, the hidden weights' learning rate is divided by the width multiplier (behavior/mup.py)."""
        return param_groups(model)

    def batch(self, data: TrajectorySet, indices: torch.Tensor, device: torch.device) -> TrajectorySet:
        part = data.subset(indices)
        augment = self.options.augment_rotation
        if augment or (augment is None and self.options.source == "eth_ucy"):
            angle = torch.rand(len(part)) * (2 * math.pi)
            cos, sin = angle.cos(), angle.sin()
            part.agents = _rotate(part.agents, cos, sin) * part.agent_valid[..., None]
            part.future = _rotate(part.future, cos, sin)
            part.polylines = _rotate(part.polylines, cos, sin) * part.polyline_valid[..., None]
        return part.to(device)

    def loss(self, model: nn.Module, batch: TrajectorySet) -> torch.Tensor:
        trajectories, logits = model(batch)
        return wta_loss(trajectories, logits, batch.future, batch.future_valid)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, data: TrajectorySet, device: torch.device) -> dict[str, float]:
        totals: dict[str, float] = {}
        step = self.options.eval_batch
        selection = "independent" if self.options.source == "eth_ucy" else "endpoint"
        for i in range(0, len(data), step):
            part = data.subset(slice(i, i + step)).to(device)
            trajectories, logits = model(part)
            scores = trajectory_metrics(
                trajectories,
                logits.float().softmax(-1),
                part.future,
                part.future_valid,
                selection=selection,
                reduce=False,
            )
            scores["loss"] = wta_loss(trajectories.float(), logits, part.future, part.future_valid).expand(len(part))
            for name, values in scores.items():
                totals[name] = totals.get(name, 0.0) + float(values.float().sum())
        return {name: total / len(data) for name, total in totals.items()}
