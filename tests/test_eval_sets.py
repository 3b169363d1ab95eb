"""Named extra eval sets: every checkpoint is scored on each, its rows carry the set's name in `split`."""

import numpy as np
import pytest
import torch

from scalinglab.errors import UserError
from scalinglab.study.config import parse_config
from scalinglab.study.runner import execute
from scalinglab.study.store import Store
from scalinglab.tasks.base import eval_split
from scalinglab.tasks.behavior import BehaviorTask
from scalinglab.tasks.perception import PerceptionTask

SMALL = {"history": 10, "horizon": 15, "base_samples": 32, "eval_samples": 32, "base_width": 16}


def test_split_names():
    assert eval_split(None) == "eval"
    assert eval_split("dense") == "eval:dense"


def test_dense_preset_puts_more_agents_in_a_scene():
    task = BehaviorTask({**SMALL, "eval_sets": [{"name": "dense", "preset": "dense"}]})
    data = task.build_data(1, seed=0)
    assert set(data.extra_evals) == {"dense"}
    dense, default = data.extra_evals["dense"], data.eval
    assert len(dense) == len(default) == 32
    # twice the vehicles and pedestrians: more of the (at most 12) agent slots are filled
    assert dense.agent_valid.any(-1).sum() > default.agent_valid.any(-1).sum()


def test_no_eval_sets_leaves_the_data_as_it_was():
    data = BehaviorTask(SMALL).build_data(1, seed=0)
    assert data.extra_evals == {}


def test_hard_preset_shifts_the_scenes():
    options = {"base_samples": 4, "eval_samples": 6, "eval_sets": [{"name": "hard", "preset": "hard"}]}
    data = PerceptionTask(options).build_data(1, seed=0)
    hard, default = data.extra_evals["hard"], data.eval
    assert len(hard) == len(default) == 6
    assert not np.allclose(np.asarray(hard.images), np.asarray(default.images))


STUDY = {
    "name": "e",
    "task": "behavior",
    "task_options": {**SMALL, "eval_sets": [{"name": "dense", "preset": "dense"}]},
    "model_scales": [1],
    "data_scales": [1],
    "budget": {"steps": 4},
    "batch_size": 16,
    "eval_every": 2,
}


@pytest.mark.parametrize(
    ("eval_sets", "needle"),
    [
        ([{"name": "x", "preset": "foggy"}], "eval_sets: 'x': unknown preset 'foggy'"),
        ([{"name": "x", "options": {"base_width": 64}}], "key 'options.base_width' cannot change per eval set"),
        ([{"name": "x", "options": {"noise": -1}}], "eval_sets: 'x': key 'noise'"),
        ([{"name": "x", "options": {"history": 20}}], "cannot change per eval set"),
        ([{"name": "x"}, {"name": "x", "preset": "dense"}], "names must differ"),
        ([{"name": "a b"}], "task_options.eval_sets.0.name"),
    ],
)
def test_bad_eval_sets_are_refused_when_the_config_is_read(eval_sets, needle):
    with pytest.raises(UserError, match=needle):
        parse_config({**STUDY, "task_options": {**SMALL, "eval_sets": eval_sets}})


@pytest.mark.slow
def test_a_run_writes_rows_for_every_eval_set(tmp_path):
    store = Store.create(tmp_path / "s", parse_config(STUDY))
    assert execute(store) == {"done": 1}
    obs = store.observations()
    assert set(obs.split) == {"train", "eval", "eval:dense"}
    for split in ("eval", "eval:dense"):
        rows = obs[obs.split == split]
        assert sorted(set(rows.steps)) == [2, 4]  # every checkpoint scored on each set
        assert {"loss", "minADE", "minFDE", "miss_rate", "brier_minFDE"} == set(rows.metric)
    a = obs[(obs.split == "eval") & (obs.metric == "minADE")].sort_values("steps").value.to_numpy()
    b = obs[(obs.split == "eval:dense") & (obs.metric == "minADE")].sort_values("steps").value.to_numpy()
    assert not np.allclose(a, b)  # a different set, scored separately


def test_a_real_format_eval_set_reads_another_scene(eth_ucy_root):
    options = {"source": "eth_ucy", "root": str(eth_ucy_root), "scene": "zara1"}
    task = BehaviorTask({**options, "eval_sets": [{"name": "hotel", "options": {"scene": "hotel"}}]})
    data = task.build_data(0.1, seed=0)
    alone = BehaviorTask({**options, "scene": "hotel"}).build_data(0.1, seed=0)
    # the extra set is exactly what a task left out on hotel evaluates on; the task's own eval is zara1's
    assert len(data.extra_evals["hotel"]) == len(alone.eval) != len(data.eval)
    assert torch.equal(data.extra_evals["hotel"].future, alone.eval.future)
