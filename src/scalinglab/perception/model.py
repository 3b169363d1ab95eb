"""Detectors: a timm backbone (a VGG-style baseline or a ConvNeXt) with a torchvision FPN and FCOS head.

The family: model scale 1 is the VGG baseline; any other scale is a ConvNeXt whose backbone has about
`scale` times the baseline backbone's parameters: either a custom width (``dims = (d, 2d, 4d, 8d)``,
``d`` even, chosen by the exact count) for CPU-sized studies, or the named timm variant
(atto ... xlarge) whose count is nearest, for studies at the seed's size.
"""

from __future__ import annotations

import functools
import math
from collections import OrderedDict
from dataclasses import dataclass

import timm
import torch
from timm.models.vgg import VGG
from torch import nn
from torchvision.models.detection import FCOS
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.ops import FeaturePyramidNetwork

NAMED_CONVNEXT = ("atto", "femto", "pico", "nano", "tiny", "small", "base", "large", "xlarge")
LEVELS = 3  # feature maps handed to the FPN, each half the resolution of the one before


@dataclass(frozen=True)
class BackboneSpec:
    kind: str  # "vgg", "convnext" (custom width) or "convnext_<variant>"
    width: int
    depths: tuple[int, ...] = (2, 2, 6, 2)
    finest_stride: int = 8  # the FPN sees strides (8, 16, 32), or (4, 8, 16) for small objects
    drop_path: float = 0.0  # ConvNeXt stochastic depth rate (no parameters; VGG has none)
    stem: str = "patch"  # ConvNeXt stem: timm's "patch" (4x4 patchify) or "overlap_act" (two 3x3 convs)
    layer_scale: float = 1e-6  # ConvNeXt's layer-scale initial value (timm's default 1e-6)

    @property
    def strides(self) -> tuple[int, ...]:
        return tuple(self.finest_stride * 2**k for k in range(LEVELS))


class VGGFeatures(nn.Module):
    """timm's VGG (its `features` stack), tapped after the pools at the spec's strides (pool k has
    stride 2^(k+1)); layers past the last tap are dropped, so they are not counted."""

    def __init__(self, spec: BackboneSpec) -> None:
        super().__init__()
        w = spec.width  # the VGG-11 pattern at base width w (VGG-11 itself is w = 64)
        cfg = [w, "M", 2 * w, "M", 4 * w, 4 * w, "M", 8 * w, 8 * w, "M", 8 * w, 8 * w, "M"]
        body = VGG(cfg, num_classes=0).features
        pools = [i for i, layer in enumerate(body) if isinstance(layer, nn.MaxPool2d)]
        first = int(math.log2(spec.finest_stride)) - 1
        self.taps = pools[first : first + LEVELS]
        self.body = body[: self.taps[-1] + 1]
        self.channels = [[w, 2 * w, 4 * w, 8 * w, 8 * w][k] for k in range(first, first + LEVELS)]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, layer in enumerate(self.body):
            x = layer(x)
            if i in self.taps:
                out.append(x)
        return out


class ConvNeXtFeatures(nn.Module):
    """A timm ConvNeXt (features_only) at the spec's strides (stage i has stride 4 x 2^i)."""

    def __init__(self, spec: BackboneSpec) -> None:
        super().__init__()
        first = int(math.log2(spec.finest_stride)) - 2
        stages = tuple(range(first, first + LEVELS))
        options = {
            "pretrained": False,
            "features_only": True,
            "out_indices": stages,
            "drop_path_rate": spec.drop_path,
            "stem_type": spec.stem,
            "ls_init_value": spec.layer_scale,
        }
        if spec.kind == "convnext":
            d = spec.width
            self.body = timm.create_model("convnext_atto", depths=spec.depths, dims=(d, 2 * d, 4 * d, 8 * d), **options)
        else:
            self.body = timm.create_model(spec.kind, **options)
        self.channels = list(self.body.feature_info.channels())

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.body(x)


class BackboneWithFPN(nn.Module):
    def __init__(self, features: nn.Module, fpn_channels: int) -> None:
        super().__init__()
        self.features = features
        self.fpn = FeaturePyramidNetwork(features.channels, fpn_channels)
        self.out_channels = fpn_channels

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        maps = self.features(x)
        return self.fpn(OrderedDict((str(i), m) for i, m in enumerate(maps)))


def make_backbone(spec: BackboneSpec) -> nn.Module:
    return VGGFeatures(spec) if spec.kind == "vgg" else ConvNeXtFeatures(spec)


@functools.lru_cache(maxsize=512)
def backbone_parameters(spec: BackboneSpec) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in make_backbone(spec).parameters())


def backbone_at_scale(
    scale: float,
    base_width: int,
    named: bool = False,
    depths: tuple[int, ...] = (2, 2, 6, 2),
    finest_stride: int = 8,
    stem: str = "patch",
) -> BackboneSpec:
    """The VGG baseline at scale 1; otherwise the ConvNeXt closest (in log) to scale x its parameters."""
    baseline = BackboneSpec("vgg", base_width, finest_stride=finest_stride)
    if scale == 1:
        return baseline
    target = scale * backbone_parameters(baseline)
    if named:
        candidates = [BackboneSpec(f"convnext_{v}", 0, finest_stride=finest_stride, stem=stem) for v in NAMED_CONVNEXT]
        return min(candidates, key=lambda spec: abs(math.log(backbone_parameters(spec) / target)))
    # A ConvNeXt's parameter count is an exact quadratic in its base width d (weights ~ d^2, norms and
    # biases ~ d): three counts give it, and the closest even widths are checked by an exact count.
    counts = [backbone_parameters(BackboneSpec("convnext", d, depths, finest_stride, stem=stem)) for d in (2, 4, 6)]
    a = (counts[2] - 2 * counts[1] + counts[0]) / 8
    b = (counts[1] - counts[0]) / 2 - 6 * a
    c = counts[0] - 4 * a - 2 * b
    root = (-b + math.sqrt(b * b - 4 * a * (c - target))) / (2 * a)
    widths = {max(2, 2 * math.floor(root / 2) + k) for k in (-2, 0, 2, 4)}
    candidates = [BackboneSpec("convnext", d, depths, finest_stride, stem=stem) for d in sorted(widths)]
    return min(candidates, key=lambda spec: abs(math.log(backbone_parameters(spec) / target)))


def build_detector(spec: BackboneSpec, num_classes: int, image_size: tuple[int, int], fpn_channels: int = 64) -> FCOS:
    """FCOS (torchvision) over an FPN on the backbone; images are kept at their size (no resizing)."""
    height, width = image_size
    anchors = AnchorGenerator(sizes=tuple((s,) for s in spec.strides), aspect_ratios=((1.0,),) * LEVELS)
    return FCOS(
        BackboneWithFPN(make_backbone(spec), fpn_channels),
        num_classes=num_classes + 1,  # torchvision counts the background
        min_size=min(height, width),
        max_size=max(height, width),
        image_mean=[0.45, 0.45, 0.45],
        image_std=[0.25, 0.25, 0.25],
        anchor_generator=anchors,
        score_thresh=0.05,
        detections_per_img=50,
        topk_candidates=300,
    )
