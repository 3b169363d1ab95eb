"""The behaviour transformer's maximal-update parametrisation: the coordinate check of Yang et al. 2022
(a few Adam steps at one rate move the outputs by the same amount at every width under muP, by more and more
with the width under the standard parametrisation), and the per-parameter rates it trains with."""

from dataclasses import replace

import pytest
import torch

from scalinglab.behavior.model import BehaviorTransformer
from scalinglab.behavior.mup import lr_scales
from scalinglab.errors import UserError
from scalinglab.study.config import parse_config
from scalinglab.study.records import RunSpec
from scalinglab.study.train import build_run
from scalinglab.tasks.behavior import BehaviorTask

WIDTHS = (32, 64, 128, 256)
OPTIONS = {"base_samples": 64, "eval_samples": 16, "base_width": 32}


def output_change(parametrization: str, width: int, lr: float = 0.01, steps: int = 3) -> float:
    """The mean absolute change of the predicted trajectories after `steps` AdamW steps on one batch."""
    task = BehaviorTask({**OPTIONS, "parametrization": parametrization})
    data = task.build_data(1, 0)
    torch.manual_seed(0)
    model = BehaviorTransformer(replace(task.model_config(1, "width"), width=width))
    batch = task.batch(data.train, torch.arange(32), torch.device("cpu"))
    groups = [{"params": g["params"], "lr": lr * g["lr_scale"]} for g in task.optimizer_groups(model)]
    optimizer = torch.optim.AdamW(groups, lr=lr, weight_decay=0.0)
    with torch.no_grad():
        before, _ = model(batch)
    for _ in range(steps):
        optimizer.zero_grad()
        task.loss(model, batch).backward()
        optimizer.step()
    with torch.no_grad():
        after, _ = model(batch)
    return float((after - before).abs().mean())


@pytest.mark.slow
def test_coordinate_check():
    standard = [output_change("standard", w) for w in WIDTHS]
    mup = [output_change("mup", w) for w in WIDTHS]
    # Standard: the update grows with the width (measured 19x from 32 to 256); muP: flat (within 2.1x).
    assert standard[-1] > 6 * standard[0]
    assert all(b > a for a, b in zip(standard, standard[1:], strict=False))
    assert max(mup) < 3 * min(mup)


def test_hidden_weights_train_at_the_base_rate_over_the_width_multiplier():
    task = BehaviorTask({**OPTIONS, "parametrization": "mup"})
    model = BehaviorTransformer(replace(task.model_config(1, "width"), width=128))
    scales = lr_scales(model)
    assert scales["encoder.layers.0.self_attn.in_proj_weight"] == 0.25  # (3w, w): hidden
    assert scales["encoder.layers.1.linear1.weight"] == 0.25  # (4w, w): hidden
    assert scales["trajectory_head.0.weight"] == 0.25  # (w, w)
    assert scales["agent_encoder.0.weight"] == 1.0  # (w, inputs): input weights
    assert scales["agent_type.weight"] == 1.0 and scales["mode_queries"] == 1.0  # embeddings
    assert scales["trajectory_head.2.weight"] == 1.0 and scales["logit_head.weight"] == 1.0  # readouts
    assert scales["encoder.layers.0.linear1.bias"] == 1.0 and scales["encoder.norm.weight"] == 1.0
    assert torch.count_nonzero(model.logit_head.weight) == 0 and model.config.readout_multiplier == 0.25
    standard = BehaviorTransformer(replace(BehaviorTask(OPTIONS).model_config(1, "width"), width=128))
    assert set(lr_scales(standard).values()) == {1.0} and standard.config.readout_multiplier == 1.0
    # The 1X model is the base: muP changes its readout's initialisation only, none of its rates.
    base = BehaviorTransformer(task.model_config(1, "width"))
    assert set(lr_scales(base).values()) == {1.0}


def study(**overrides):
    return parse_config(
        {
            "task": "behavior",
            "task_options": {**OPTIONS, "parametrization": "mup"},
            "model_scales": [1, 4],
            "data_scales": [1],
            "budget": {"steps": 4},
            "batch_size": 16,
            "eval_every": 4,
            "optimizer": {"name": "adamw", "lr": 0.004},
            **overrides,
        }
    )


def test_a_mup_run_builds_its_optimiser_with_the_scaled_rates():
    run = build_run(study(), RunSpec("m4-d1-s0", 4.0, 1.0, 0), torch.device("cpu"))
    width = run.model.config.width
    rates = sorted({group["lr"] for group in run.optimizer.param_groups})
    assert rates == pytest.approx(sorted({0.004, 0.004 * 32 / width}))
    with pytest.raises(UserError, match="key 'task_options.parametrization': mup's learning rates are AdamW's"):
        study(optimizer={"name": "sgd", "lr": 0.01})
