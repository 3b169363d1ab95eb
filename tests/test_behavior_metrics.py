"""Trajectory metrics against hand-computed cases, and the target-centric frame."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from scalinglab.behavior.metrics import trajectory_metrics
from scalinglab.behavior.sample import target_frames, to_frame


def straight(steps: int) -> torch.Tensor:
    return torch.stack([torch.arange(1, steps + 1, dtype=torch.float32), torch.zeros(steps)], dim=-1)


def test_hand_computed_two_modes():
    truth = straight(4)[None]  # (1,0) (2,0) (3,0) (4,0)
    # Mode 0: 1 m to the side at every step: ADE 1, FDE 1.
    # Mode 1: exact for three steps, 3 m off at the end: ADE 0.75, FDE 3.
    mode0 = truth[0] + torch.tensor([0.0, 1.0])
    mode1 = truth[0].clone()
    mode1[-1, 1] = 3.0
    pred = torch.stack([mode0, mode1])[None]
    prob = torch.tensor([[0.25, 0.75]])
    av2 = trajectory_metrics(pred, prob, truth)
    # AV2: the mode with the smallest endpoint error is mode 0 -> its ADE, 1.0, not mode 1's 0.75.
    assert av2["minFDE"].item() == pytest.approx(1.0)
    assert av2["minADE"].item() == pytest.approx(1.0)
    assert av2["miss_rate"].item() == 0.0
    assert av2["brier_minFDE"].item() == pytest.approx(1.0 + (1 - 0.25) ** 2)
    best_of_k = trajectory_metrics(pred, prob, truth, selection="independent")
    assert best_of_k["minADE"].item() == pytest.approx(0.75)
    assert best_of_k["minFDE"].item() == pytest.approx(1.0)


def test_miss_rate_threshold_and_batch_mean():
    truth = straight(3).repeat(2, 1, 1)
    pred = truth[:, None].clone()
    pred[0, 0, -1, 1] = 2.5  # a miss (2.5 m > 2 m)
    pred[1, 0, -1, 1] = 1.5  # a hit
    out = trajectory_metrics(pred, torch.ones(2, 1), truth)
    assert out["miss_rate"].item() == 0.5
    assert out["minFDE"].item() == pytest.approx(2.0)
    assert out["minADE"].item() == pytest.approx((2.5 / 3 + 1.5 / 3) / 2)
    assert out["brier_minFDE"].item() == pytest.approx(2.0)  # probability 1: no penalty


def test_invalid_future_steps_are_left_out():
    truth = straight(4)[None]
    valid = torch.tensor([[True, True, True, False]])
    pred = truth[:, None].clone()
    pred[0, 0, 3] = torch.tensor([100.0, 100.0])  # wrong only where the truth is unobserved
    pred[0, 0, 2, 1] = 0.6
    out = trajectory_metrics(pred, torch.ones(1, 1), truth, valid)
    assert out["minFDE"].item() == pytest.approx(0.6)  # the endpoint is the last valid step
    assert out["minADE"].item() == pytest.approx(0.2)


def test_metrics_do_not_depend_on_the_frame():
    gen = torch.Generator().manual_seed(0)
    truth = torch.randn(5, 6, 2, generator=gen).cumsum(1)
    pred = truth[:, None] + torch.randn(5, 3, 6, 2, generator=gen)
    prob = torch.rand(5, 3, generator=gen).softmax(-1)
    angle = 0.7
    rot = torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    a = trajectory_metrics(pred, prob, truth)
    b = trajectory_metrics(pred @ rot + 3.0, prob, truth @ rot + 3.0)
    for key in a:
        assert a[key].item() == pytest.approx(b[key].item(), rel=1e-5)


def test_target_frame_puts_the_target_at_the_origin_heading_along_x():
    history = np.array([[[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]], [[5.0, 5.0], [5.0, 5.0], [5.0, 5.0]]])
    valid = np.array([[True, True, True], [True, True, True]])
    origin, rotation = target_frames(history, valid)
    local = to_frame(history, origin, rotation)
    np.testing.assert_allclose(local[0, -1], [0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(local[0, 0], [-2 * math.sqrt(2), 0.0], atol=1e-12)  # came from behind
    np.testing.assert_allclose(rotation[1], np.eye(2))  # standing still: not rotated
    # The heading comes from the last two *valid* steps.
    valid[0, 1] = False
    origin, rotation = target_frames(history, valid)
    np.testing.assert_allclose(to_frame(history, origin, rotation)[0, 0], [-2 * math.sqrt(2), 0.0], atol=1e-12)
