"""The maximal-update parametrisation (muP; Yang et al. 2022, "Tensor Programs V", arXiv 2203.03466) of the
behaviour transformer, for Adam, so that a learning rate tuned at the base width transfers to the others.

With m = width / base width (the 1X model's), muP under Adam (their Table 3) takes:
- hidden weights (both dimensions grow with the width: attention, feed-forward, the heads' hidden layers):
  the standard 1/fan_in initialisation and the learning rate / m;
- input weights, embeddings, biases, norms (at most one dimension grows): the standard initialisation and
  learning rate;
- readouts (the trajectory and mode-logit outputs): initialised at zero, their input multiplied by 1/m
  (`BehaviorConfig.readout_multiplier`), the standard learning rate.
The attention's 1/sqrt(head dim) is muP's 1/head dim up to a constant here: the head dimension is fixed (8)
and the heads grow with the width. A dimension grows when it differs from the base-width model's, by name
(layer indices folded, so depth may differ too): the rule of `mup.set_base_shapes`.
"""

from __future__ import annotations

import re
from dataclasses import replace

import torch
from torch import nn

from scalinglab.behavior.model import BehaviorConfig, BehaviorTransformer


def _shared_name(name: str) -> str:
    return re.sub(r"layers\.\d+\.", "layers.0.", name)


def lr_scales(model: BehaviorTransformer) -> dict[str, float]:
    """Each parameter's learning-rate multiplier: base width / width for a hidden weight, 1 otherwise."""
    config = model.config
    if config.mup_base_width is None:
        return {name: 1.0 for name, _ in model.named_parameters()}
    with torch.device("meta"):
        base = BehaviorTransformer(replace(config, width=config.mup_base_width))
    base_shapes = {_shared_name(n): p.shape for n, p in base.named_parameters()}
    scales = {}
    for name, param in model.named_parameters():
        base_shape = base_shapes[_shared_name(name)]
        grows = sum(a != b for a, b in zip(param.shape, base_shape, strict=True))
        scales[name] = config.mup_base_width / config.width if grows >= 2 else 1.0
    return scales


def param_groups(model: nn.Module) -> list[dict]:
    """The optimiser's parameter groups, each with its `lr_scale` (one group per distinct multiplier)."""
    if not isinstance(model, BehaviorTransformer) or model.config.mup_base_width is None:
        return [{"params": list(model.parameters()), "lr_scale": 1.0}]
    scales = lr_scales(model)
    groups: dict[float, list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        groups.setdefault(scales[name], []).append(param)
    return [{"params": params, "lr_scale": scale} for scale, params in groups.items()]


def base_config(config: BehaviorConfig, base_width: int) -> BehaviorConfig:
    """`config` under muP with `base_width` as the width whose rates transfer."""
    return replace(config, mup_base_width=base_width)
