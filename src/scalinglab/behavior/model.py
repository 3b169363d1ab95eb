"""A scalable transformer behaviour encoder with a multi-modal trajectory decoder.

Tokens: one per agent (an MLP over its whole history: positions, steps and validity, plus an agent-type
embedding) and one per map polyline (a PointNet: a point MLP max-pooled over the valid points, plus a
polyline-type embedding). A transformer encoder attends over all tokens of the scene; K learned mode
queries, each added to the target's encoded token, cross-attend to the scene in a transformer decoder
and give K trajectories and K mode logits.

One family: `BehaviorConfig.at_scale` maps a capacity multiplier to width, depth or both so that the
exact parameter count is as close as the integer grid allows to multiplier x the 1X model's.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace

import torch
from torch import nn

from scalinglab.behavior.sample import AGENT_TYPES, POLYLINE_TYPES, TrajectorySet

HEAD_DIM = 8  # widths are multiples of it
MAX_WIDTH = 4096
MAX_DEPTH = 256


@dataclass(frozen=True)
class BehaviorConfig:
    history: int
    horizon: int
    width: int = 64
    depth: int = 2
    num_modes: int = 6
    ff_mult: int = 4
    mup_base_width: int | None = None  # muP (behavior/mup.py): the width whose tuned rates transfer; None: standard

    @property
    def readout_multiplier(self) -> float:
        """What the readouts' inputs are multiplied by: base width / width under muP, else 1."""
        return 1.0 if self.mup_base_width is None else self.mup_base_width / self.width

    @property
    def heads(self) -> int:
        return max(1, self.width // HEAD_DIM)

    @property
    def decoder_depth(self) -> int:
        return max(1, self.depth // 2)

    def at_scale(self, scale: float, scale_by: str) -> BehaviorConfig:
        """The family member with about `scale` times this config's parameters (closest in log)."""
        if scale == 1:
            return self
        target = scale * count_parameters(self)
        if scale_by == "depth":
            candidates = (replace(self, depth=d) for d in range(1, MAX_DEPTH + 1))
        else:  # width, or both: depth grows as scale^(1/3) and width takes the rest
            depth = self.depth if scale_by == "width" else max(1, round(self.depth * scale ** (1 / 3)))
            candidates = (replace(self, depth=depth, width=w) for w in range(HEAD_DIM, MAX_WIDTH + 1, HEAD_DIM))
        best, best_gap = self, math.inf
        for candidate in candidates:  # parameters grow with width and depth: stop once past the target
            count = count_parameters(candidate)
            gap = abs(math.log(count / target))
            if gap < best_gap:
                best, best_gap = candidate, gap
            if count > target:
                break
        return best


def count_parameters(config: BehaviorConfig) -> int:
    """The exact parameter count of the model a config builds."""
    fixed, per_encoder, per_decoder = _parameter_parts(
        config.history, config.horizon, config.width, config.num_modes, config.ff_mult
    )
    return fixed + config.depth * per_encoder + config.decoder_depth * per_decoder


@functools.lru_cache(maxsize=4096)
def _parameter_parts(history: int, horizon: int, width: int, num_modes: int, ff_mult: int) -> tuple[int, int, int]:
    """(parameters outside the layer stacks, per encoder layer, per decoder layer), counted on meta tensors."""
    config = BehaviorConfig(history, horizon, width, 1, num_modes, ff_mult)
    with torch.device("meta"):
        model = BehaviorTransformer(config)
    total = sum(p.numel() for p in model.parameters())
    per_encoder = sum(p.numel() for p in model.encoder.layers[0].parameters())
    per_decoder = sum(p.numel() for p in model.decoder.layers[0].parameters())
    return total - per_encoder - per_decoder, per_encoder, per_decoder


def _mlp(inputs: int, width: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inputs, width), nn.GELU(), nn.Linear(width, outputs))


class BehaviorTransformer(nn.Module):
    def __init__(self, config: BehaviorConfig) -> None:
        super().__init__()
        self.config = config
        w = config.width
        self.agent_encoder = _mlp(config.history * 5, w, w)
        self.agent_type = nn.Embedding(len(AGENT_TYPES), w)
        self.point_encoder = _mlp(5, w, w)
        self.polyline_type = nn.Embedding(len(POLYLINE_TYPES), w)
        self.token_kind = nn.Embedding(2, w)  # agent or polyline
        layer = nn.TransformerEncoderLayer(
            w, config.heads, config.ff_mult * w, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, config.depth, norm=nn.LayerNorm(w), enable_nested_tensor=False)
        self.mode_queries = nn.Parameter(torch.randn(config.num_modes, w))  # distinct from the start
        decoder_layer = nn.TransformerDecoderLayer(
            w, config.heads, config.ff_mult * w, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.decoder = nn.TransformerDecoder(decoder_layer, config.decoder_depth, norm=nn.LayerNorm(w))
        self.trajectory_head = _mlp(w, w, config.horizon * 2)
        self.logit_head = nn.Linear(w, 1)
        if config.mup_base_width is not None:  # muP's readouts start at zero (Yang et al. 2022, appendix D.2)
            for readout in (self.trajectory_head[2], self.logit_head):
                nn.init.zeros_(readout.weight)

    def forward(self, scene: TrajectorySet) -> tuple[torch.Tensor, torch.Tensor]:
        """Trajectories [B, K, F, 2] and mode logits [B, K]."""
        agents, valid = scene.agents, scene.agent_valid
        batch, num_agents = agents.shape[:2]
        steps = torch.diff(agents, dim=2, prepend=agents[:, :, :1])
        step_valid = valid & torch.cat([valid[:, :, :1], valid[:, :, :-1]], dim=2)
        mask = valid[..., None].to(agents.dtype)
        features = torch.cat([agents * mask, steps * step_valid[..., None], mask], dim=-1)
        agent_tokens = self.agent_encoder(features.flatten(2)) + self.agent_type(scene.agent_type)
        agent_tokens = agent_tokens + self.token_kind.weight[0]
        agent_present = valid.any(dim=2)

        points, point_valid = scene.polylines, scene.polyline_valid
        point_steps = torch.diff(points, dim=2, prepend=points[:, :, :1])
        point_mask = point_valid[..., None].to(points.dtype)
        point_features = torch.cat([points, point_steps, point_mask], dim=-1)
        encoded = self.point_encoder(point_features).masked_fill(~point_valid[..., None], float("-inf"))
        polyline_tokens = encoded.amax(dim=2) if points.shape[2] else encoded.sum(dim=2)
        polyline_present = point_valid.any(dim=2)
        polyline_tokens = torch.where(polyline_present[..., None], polyline_tokens, 0.0)
        polyline_tokens = polyline_tokens + self.polyline_type(scene.polyline_type) + self.token_kind.weight[1]

        tokens = torch.cat([agent_tokens, polyline_tokens], dim=1)
        padding = ~torch.cat([agent_present, polyline_present], dim=1)
        memory = self.encoder(tokens, src_key_padding_mask=padding)
        queries = self.mode_queries[None] + memory[:, :1]
        decoded = self.decoder(queries, memory, memory_key_padding_mask=padding)
        head, scale = self.trajectory_head, self.config.readout_multiplier
        out = head[2](head[1](head[0](decoded)) * scale)
        trajectories = out.view(batch, self.config.num_modes, self.config.horizon, 2)
        return trajectories, self.logit_head(decoded * scale).squeeze(-1)


def wta_loss(
    trajectories: torch.Tensor, logits: torch.Tensor, future: torch.Tensor, valid: torch.Tensor
) -> torch.Tensor:
    """Winner-takes-all: the displacement error (ADE) of the mode closest to the truth, plus the
    cross-entropy of the mode logits towards that mode."""
    weight = valid[:, None, :].to(trajectories.dtype)
    error = (torch.linalg.vector_norm(trajectories.float() - future[:, None].float(), dim=-1) * weight).sum(-1)
    error = error / weight.sum(-1).clamp_min(1.0)  # ADE per mode [B, K]
    best_error, best = error.min(dim=1)
    return best_error.mean() + nn.functional.cross_entropy(logits.float(), best)
