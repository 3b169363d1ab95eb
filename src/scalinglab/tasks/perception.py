"""The perception task: 2D detection with a VGG baseline (1X) and ConvNeXt backbones under FCOS.

Data sources: synthetic driving scenes (default, rendered locally), COCO-format detection
(``annotations`` JSON + ``images`` folder) and KITTI (``root`` with ``image_2/`` and ``label_2/``).
A data scale multiplies ``base_samples`` (synthetic: images; real data: by default the whole training
set, so scales are fractions such as 0.075, 0.5, 1). Metrics: COCO mAP@[.5:.95], mAP@.5 and mAP@.75
through torchmetrics (pycocotools backend), higher is better.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import TYPE_CHECKING, Literal

import torch
from pydantic import Field, model_validator
from torch import nn

from scalinglab.errors import UserError
from scalinglab.perception.sample import DetectionSet
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

if TYPE_CHECKING:
    from scalinglab.perception.model import BackboneSpec

EVAL_SEED_OFFSET = 1_000_003
# the data options an extra eval set may change (never the model's or the training data's)
EVAL_SET_KEYS = frozenset(
    {"source", "eval_annotations", "eval_images", "root", "eval_root", "eval_samples", "data_seed"}
    | {"min_box_side", "max_depth", "lookalikes", "shadows"}
)


class PerceptionOptions(TaskOptions):
    source: Literal["synthetic", "coco", "kitti"] = "synthetic"
    train_annotations: str | None = None  # coco: the training JSON and its images folder
    train_images: str | None = None
    eval_annotations: str | None = None
    eval_images: str | None = None
    root: str | None = None  # kitti: the training folder (image_2/, label_2/)
    eval_root: str | None = None  # kitti: the eval folder (default: the last 20% of root)
    classes: list[str] | None = None  # default: all of the source's classes
    image_height: int = Field(96, ge=32, multiple_of=32)
    image_width: int = Field(128, ge=32, multiple_of=32)
    base_samples: int | None = Field(None, gt=0)  # synthetic default 1000 images
    eval_samples: int | None = Field(None, gt=0)  # synthetic default 300
    data_seed: int = 0
    min_box_side: float = Field(4.0, ge=1)  # synthetic: an object gets a box when both its sides reach this (px)
    max_depth: float = Field(9.0, gt=1)  # synthetic: objects stand at depths 1..max_depth (size ~ 1/depth)
    lookalikes: float = Field(0.0, ge=0)  # synthetic: mean unlabelled look-alikes per image (hard negatives)
    shadows: float = Field(0.0, ge=0)  # synthetic: mean shadow patches on the ground per image
    base_width: int = Field(8, gt=0)  # the VGG baseline's first-stage width (VGG-11 is 64)
    named_convnext: bool = False  # scales map to timm's named ConvNeXt variants (atto ... xlarge)
    fpn_channels: int = Field(64, gt=0, multiple_of=32)
    finest_stride: Literal[4, 8] = 8  # the FPN's levels: strides 8/16/32, or 4/8/16 (small objects, ~3x slower)
    hflip: bool = True  # random horizontal flips of training images (boxes follow)
    color_jitter: float = Field(0.0, ge=0, le=1)  # brightness / contrast / saturation jitter of training images
    drop_path: float = Field(0.0, ge=0, lt=1)  # ConvNeXt stochastic depth (its recipe's regulariser)
    convnext_stem: Literal["patch", "overlap_act"] = "patch"  # 4x4 patchify, or two 3x3 stride-2 convs
    layer_scale: float = Field(1e-6, gt=0)  # ConvNeXt layer-scale initial value (timm's default 1e-6)
    eval_batch: int = Field(32, gt=0)
    eval_sets: list[EvalSet] = []  # named extra eval sets (presets: hard), each scored at every eval

    @model_validator(mode="after")
    def _eval_sets_valid(self) -> PerceptionOptions:
        """Every extra eval set resolves to valid options now, not when a worker first builds its data."""
        if self.eval_sets:
            from scalinglab.perception.synthetic import EVAL_PRESETS

            check_eval_sets(self, self.eval_sets, EVAL_PRESETS, EVAL_SET_KEYS)
        return self

    @model_validator(mode="after")
    def _paths(self) -> PerceptionOptions:
        if self.source == "coco" and not (self.train_annotations and self.train_images):
            raise ValueError("source 'coco' needs 'train_annotations' and 'train_images'")
        if self.source == "kitti" and not self.root:
            raise ValueError("source 'kitti' needs 'root', the folder with image_2/ and label_2/")
        return self

    @property
    def size(self) -> tuple[int, int]:
        return self.image_height, self.image_width


@functools.lru_cache(maxsize=8)
def _load(options_json: str, which: str) -> DetectionSet:
    options = PerceptionOptions.model_validate(json.loads(options_json))
    classes = tuple(options.classes) if options.classes else None
    if options.source == "synthetic":
        from scalinglab.perception.synthetic import SceneOptions, synthetic_scenes

        kind, count = which.split(":")
        seed = options.data_seed + (EVAL_SEED_OFFSET if kind == "eval" else 0)
        scene = SceneOptions(
            options.image_height,
            options.image_width,
            min_size=options.min_box_side,
            max_depth=options.max_depth,
            lookalikes=options.lookalikes,
            shadows=options.shadows,
        )
        return synthetic_scenes(scene, int(count), seed)
    if options.source == "coco":
        from scalinglab.perception.formats import load_coco

        if which == "train":
            return load_coco(options.train_annotations, options.train_images, options.size, classes)
        if not options.eval_annotations:
            raise UserError("task_options: source 'coco' needs 'eval_annotations' and 'eval_images' for eval")
        return load_coco(options.eval_annotations, options.eval_images, options.size, classes)
    from scalinglab.perception.formats import KITTI_CLASSES, load_kitti

    root = options.root if which == "train" or options.eval_root is None else options.eval_root
    return load_kitti(root, options.size, classes or KITTI_CLASSES)


def _eval_data(opts: PerceptionOptions) -> DetectionSet:
    """The eval data these options give: synthetic eval scenes, the COCO eval set, or KITTI's eval folder (by
    default the fixed 20% of root held out from training)."""
    if opts.source == "synthetic":
        return _load(opts.model_dump_json(), f"eval:{opts.eval_samples or 300}")
    if opts.source == "kitti" and opts.eval_root is None:
        full = _load(opts.model_dump_json(), "train")
        evaluation = full.subset(fixed_order(len(full), opts.data_seed)[: max(1, len(full) // 5)])
    else:
        evaluation = _load(opts.model_dump_json(), "eval")
    if opts.eval_samples:
        evaluation = evaluation.subset(range(min(opts.eval_samples, len(evaluation))))
    return evaluation


class PerceptionTask(Task):
    name = "perception"
    Options = PerceptionOptions
    metrics = {"mAP": True, "mAP50": True, "mAP75": True}

    def _options_json(self) -> str:
        return self.options.model_dump_json()

    def build_data(self, data_scale: float, seed: int) -> TaskData:
        del seed  # the data is fixed by data_seed
        opts = self.options
        extra = {s.name: self._eval_set(s) for s in opts.eval_sets}
        if opts.source == "synthetic":
            size = scaled_size(data_scale, opts.base_samples or 1000)
            train = _load(self._options_json(), f"train:{size}")
            return TaskData(train=train, eval=_eval_data(opts), dataset_size=len(train), extra_evals=extra)
        full = _load(self._options_json(), "train")
        order = fixed_order(len(full), opts.data_seed)
        if opts.source == "kitti" and opts.eval_root is None:  # a fixed 20% is held out for eval (_eval_data)
            full = full.subset(order[max(1, len(full) // 5) :])
            order = torch.arange(len(full))
        size = scaled_size(data_scale, opts.base_samples or len(full), len(full), "images")
        return TaskData(train=full.subset(order[:size]), eval=_eval_data(opts), dataset_size=size, extra_evals=extra)

    def _eval_set(self, eval_set: EvalSet) -> DetectionSet:
        """An extra eval set's data; its classes must be the task's."""
        from scalinglab.perception.synthetic import EVAL_PRESETS

        opts = eval_set_options(self.options, eval_set, EVAL_PRESETS, EVAL_SET_KEYS)
        if opts.source != self.options.source and opts.classes is None:
            raise UserError(
                f"eval_sets: '{eval_set.name}' changes the source; name the shared 'classes' so "
                "the detector's classes mean the same on both"
            )
        return _eval_data(opts)

    def num_classes(self) -> int:
        if self.options.classes:
            return len(self.options.classes)
        if self.options.source == "synthetic":
            from scalinglab.perception.synthetic import CLASSES

            return len(CLASSES)
        if self.options.source == "kitti":
            from scalinglab.perception.formats import KITTI_CLASSES

            return len(KITTI_CLASSES)
        return len(_load(self._options_json(), "train").classes)

    def backbone(self, model_scale: float) -> BackboneSpec:
        """The backbone these options give at ``model_scale``: VGG at 1X, ConvNeXt sized by parameters above."""
        from scalinglab.perception.model import backbone_at_scale

        opts = self.options
        spec = backbone_at_scale(
            model_scale, opts.base_width, opts.named_convnext, finest_stride=opts.finest_stride, stem=opts.convnext_stem
        )
        return dataclasses.replace(spec, drop_path=opts.drop_path, layer_scale=opts.layer_scale)

    def build_model(self, model_scale: float, scale_by: str) -> nn.Module:
        from scalinglab.perception.model import build_detector

        del scale_by  # the family is fixed: VGG at 1X, ConvNeXt sized by parameters above it
        spec = self.backbone(model_scale)
        return build_detector(spec, self.num_classes(), self.options.size, self.options.fpn_channels)

    def batch(self, data: DetectionSet, indices: torch.Tensor, device: torch.device):
        from scalinglab.perception.augment import augment

        return augment(data.subset(indices), self.options.hflip, self.options.color_jitter).batch(device)

    def loss(self, model: nn.Module, batch) -> torch.Tensor:
        images, targets = batch
        return sum(model(images, targets).values())

    @torch.no_grad()
    def evaluate(self, model: nn.Module, data: DetectionSet, device: torch.device) -> dict[str, float]:
        from torchmetrics.detection import MeanAveragePrecision

        metric = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", backend="pycocotools")
        total_loss, step = 0.0, self.options.eval_batch
        for start in range(0, len(data), step):
            images, targets = data.subset(range(start, min(start + step, len(data)))).batch(device)
            model.train()  # FCOS returns losses in train mode; the backbones have no batch norm
            total_loss += float(sum(model(images, targets).values())) * len(images)
            model.eval()
            predictions = model(images)
            metric.update(
                [
                    {
                        "boxes": p["boxes"].float().cpu(),
                        "scores": p["scores"].float().cpu(),
                        "labels": p["labels"].cpu(),
                    }
                    for p in predictions
                ],
                [{k: t[k].cpu() for k in ("boxes", "labels")} for t in targets],
            )
        scores = metric.compute()
        named = {"mAP": "map", "mAP50": "map_50", "mAP75": "map_75"}
        return {"loss": total_loss / len(data), **{name: float(scores[key]) for name, key in named.items()}}
