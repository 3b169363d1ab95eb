"""The behaviour transformer family and the `behavior` task through the study runner."""

from __future__ import annotations

import pytest
import torch

from scalinglab.behavior.model import BehaviorConfig, BehaviorTransformer, count_parameters, wta_loss
from scalinglab.behavior.synthetic import SyntheticOptions, synthetic_traffic
from scalinglab.errors import UserError
from scalinglab.study.config import parse_config
from scalinglab.study.runner import execute
from scalinglab.study.store import Store
from scalinglab.tasks.behavior import BehaviorTask

BASE = BehaviorConfig(history=10, horizon=15, width=32, depth=2, num_modes=6)


@pytest.mark.parametrize("scale_by", ["width", "depth", "both"])
def test_family_covers_1x_to_32x_with_exact_counts(scale_by):
    base = count_parameters(BASE)
    for scale in (2, 4, 8, 16, 32):
        config = BASE.at_scale(scale, scale_by)
        built = sum(p.numel() for p in BehaviorTransformer(config).parameters())
        assert built == count_parameters(config)  # the count is exact, not an estimate
        assert built / base == pytest.approx(scale, rel=0.2)
        if scale_by == "width":
            assert config.depth == BASE.depth
        if scale_by == "depth":
            assert config.width == BASE.width


def small_scenes(count: int = 48):
    return synthetic_traffic(SyntheticOptions(history=10, horizon=15), count, seed=0)


def test_output_shapes_and_neighbour_order_does_not_matter():
    torch.manual_seed(0)
    model = BehaviorTransformer(BASE).eval()
    scenes = small_scenes(8)
    trajectories, logits = model(scenes)
    assert trajectories.shape == (8, 6, 15, 2) and logits.shape == (8, 6)
    # Permuting the neighbours (not the target, token 0) leaves the prediction unchanged.
    order = torch.cat([torch.zeros(1, dtype=torch.long), torch.randperm(scenes.agents.shape[1] - 1) + 1])
    permuted = scenes.subset(slice(None))
    permuted.agents, permuted.agent_valid = scenes.agents[:, order], scenes.agent_valid[:, order]
    permuted.agent_type = scenes.agent_type[:, order]
    torch.testing.assert_close(model(permuted)[0], trajectories, atol=1e-4, rtol=1e-4)
    # No map (ETH/UCY): zero polylines still work.
    scenes.polylines = scenes.polylines[:, :0]
    scenes.polyline_valid, scenes.polyline_type = scenes.polyline_valid[:, :0], scenes.polyline_type[:, :0]
    assert model(scenes)[0].shape == (8, 6, 15, 2)


@pytest.mark.slow
def test_training_steps_reduce_the_loss():
    torch.manual_seed(0)
    model = BehaviorTransformer(BASE)
    scenes = small_scenes(32)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(80):
        loss = wta_loss(*model(scenes), scenes.future, scenes.future_valid)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


STUDY = {
    "name": "b",
    "task": "behavior",
    "task_options": {"history": 10, "horizon": 15, "base_samples": 64, "eval_samples": 64, "base_width": 16},
    "model_scales": [1, 4],
    "data_scales": [1],
    "budget": {"steps": 6},
    "batch_size": 16,
    "eval_every": 3,
}


def test_study_of_the_behavior_task(tmp_path):
    store = Store.create(tmp_path / "s", parse_config(STUDY))
    assert execute(store) == {"done": 2}
    obs = store.observations()
    assert {"minADE", "minFDE", "miss_rate", "brier_minFDE", "loss"} <= set(obs.metric)
    assert set(obs.loc[obs.metric == "minADE", "higher_is_better"]) == {0}
    final = obs[(obs.metric == "minADE") & (obs.steps == 6)].set_index("model_scale")
    assert final.loc[4.0, "n_params"] / final.loc[1.0, "n_params"] == pytest.approx(4, rel=0.2)
    assert (final.flops > 0).all() and final.loc[4.0, "flops"] > final.loc[1.0, "flops"]


def test_real_data_scales_are_fractions_of_the_split(eth_ucy_root):
    task = BehaviorTask({"source": "eth_ucy", "root": str(eth_ucy_root), "scene": "zara1"})
    half, full = task.build_data(0.5, seed=0), task.build_data(1.0, seed=0)
    assert half.dataset_size == round(0.5 * full.dataset_size)
    # Nested: the half is inside the whole.
    whole = {tuple(row) for row in full.train.future[:, -1].tolist()}
    assert all(tuple(row) in whole for row in half.train.future[:50, -1].tolist())
    with pytest.raises(UserError, match="asks for .* training samples; the training set has"):
        task.build_data(2.0, seed=0)
    assert task.model_config(1, "width").num_modes == 20  # the ETH/UCY best-of-20 convention


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"source": "av2"}, "source 'av2' needs 'root'"),
        ({"source": "kitti"}, "task_options.source"),
        ({"base_width": 20}, "task_options.base_width"),
        ({"source": "eth_ucy", "root": "x", "horizon": 30}, "standard 8 observed and 12 predicted"),
    ],
)
def test_options_are_validated_before_training(options, needle):
    with pytest.raises(UserError, match=needle):
        parse_config({**STUDY, "task_options": options})
