"""Multi-modal trajectory metrics, following the Argoverse 2 motion-forecasting definitions.

For each sample the K predicted trajectories are compared with the ground truth:

- minFDE_K: the smallest endpoint error among the K modes;
- minADE_K: the average displacement error of the mode with the smallest endpoint error (AV2), or
  the smallest ADE of any mode (``selection="independent"``, the best-of-K convention of the ETH/UCY
  literature, where ADE and FDE are minimised separately);
- miss rate: the share of samples whose chosen mode ends more than ``miss_threshold`` (2 m) away;
- brier-minFDE: minFDE plus (1 - p)^2, p the probability given to the chosen mode.

Future steps that are not observed (``valid`` False) are left out of the averages; the endpoint is the
last valid step.
"""

from __future__ import annotations

from typing import Literal

import torch

MISS_THRESHOLD = 2.0


def displacement_errors(
    pred: torch.Tensor, truth: torch.Tensor, valid: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """ADE [B, K] and FDE [B, K] of predictions [B, K, F, 2] against truth [B, F, 2] with mask [B, F]."""
    dist = torch.linalg.vector_norm(pred - truth[:, None], dim=-1)  # [B, K, F]
    weight = valid[:, None, :].to(dist.dtype)
    ade = (dist * weight).sum(-1) / weight.sum(-1).clamp_min(1.0)
    steps = torch.arange(valid.shape[1], device=valid.device)
    last = torch.where(valid, steps, -1).amax(dim=1).clamp_min(0)  # [B]
    fde = dist.gather(2, last[:, None, None].expand(-1, dist.shape[1], 1)).squeeze(-1)
    return ade, fde


def trajectory_metrics(
    pred: torch.Tensor,
    prob: torch.Tensor,
    truth: torch.Tensor,
    valid: torch.Tensor | None = None,
    *,
    selection: Literal["endpoint", "independent"] = "endpoint",
    miss_threshold: float = MISS_THRESHOLD,
    reduce: bool = True,
) -> dict[str, torch.Tensor]:
    """minADE, minFDE, miss_rate and brier_minFDE over a batch (means, or per sample with reduce=False).

    pred [B, K, F, 2], prob [B, K] (mode probabilities, summing to 1), truth [B, F, 2], valid [B, F].
    """
    if valid is None:
        valid = torch.ones(truth.shape[:2], dtype=torch.bool, device=truth.device)
    ade, fde = displacement_errors(pred.float(), truth.float(), valid)
    min_fde, chosen = fde.min(dim=1)
    chosen_ade = ade.gather(1, chosen[:, None]).squeeze(1)
    min_ade = chosen_ade if selection == "endpoint" else ade.min(dim=1).values
    p = prob.float().gather(1, chosen[:, None]).squeeze(1)
    out = {
        "minADE": min_ade,
        "minFDE": min_fde,
        "miss_rate": (min_fde > miss_threshold).float(),
        "brier_minFDE": min_fde + (1.0 - p) ** 2,
    }
    return {k: v.mean() for k, v in out.items()} if reduce else out
