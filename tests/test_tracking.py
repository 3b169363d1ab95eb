"""Live logging of a study to TensorBoard and MLflow: what the trackers hold equals the study's own rows.

The rows a study stores are the truth; imported back from the tracker files they must match, step for step.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scalinglab.errors import UserError
from scalinglab.observations import observation_row
from scalinglab.study.config import parse_config
from scalinglab.study.records import Done, Failed, Progress, RunResult, RunSpec, Started
from scalinglab.study.tracking import LIVE_LOSS, Tracker

pytest.importorskip("mlflow.tracking")
pytest.importorskip("tensorboard")

BASE = {
    "name": "tracked",
    "task": "toy",
    "task_options": {"base_samples": 128, "eval_samples": 128},
    "model_scales": ["1X", "4X"],
    "data_scales": [1],
    "budget": {"steps": 16},
    "batch_size": 32,
    "eval_every": 8,
}


def _result(spec: RunSpec, n: int, d: int) -> RunResult:
    rows = []
    for step in (8, 16):
        point = {
            "run_id": spec.run_id,
            "n_params": n,
            "n_params_nonembed": n,
            "dataset_size": d,
            "model_scale": spec.model_scale,
            "data_scale": spec.data_scale,
            "seed": spec.seed,
            "samples_seen": step * 32,
            "steps": step,
            "flops": 6.0 * n * step * 32,
            "wall_time": 0.1 * step,
        }
        rows.append(observation_row(**point, metric="loss", split="train", value=1.0 / step, higher_is_better=False))
        rows.append(observation_row(**point, metric="r2", split="eval", value=1 - 1.0 / step, higher_is_better=True))
    return RunResult(spec.run_id, rows, n, n, d, 6.0 * n * 32, 0)


def _feed(tracker: Tracker, specs: list[RunSpec]) -> list[RunResult]:
    results = []
    for i, spec in enumerate(specs):
        tracker(Started(spec.run_id))
        for step, loss in ((1, float("nan")), (10, 0.5), (11, 0.5), (16, 0.25)):
            tracker(Progress(spec.run_id, step, 16, loss))
        result = _result(spec, n=1000 * (i + 1), d=4096)
        tracker(Done(result))
        results.append(result)
    return results


def _expected(results: list[RunResult]) -> pd.DataFrame:
    rows = [r for result in results for r in result.rows]
    cols = ["run_id", "n_params", "dataset_size", "samples_seen", "steps", "flops", "metric", "split", "value"]
    frame = pd.DataFrame(rows)[cols].astype({c: float for c in cols[1:6] + ["value"]})
    return frame.sort_values(["run_id", "metric", "split", "steps"]).reset_index(drop=True)


def test_tracker_mirrors_rows_to_tensorboard_and_mlflow(tmp_path) -> None:
    from scalinglab.importers.mlflow import import_mlflow
    from scalinglab.importers.tensorboard import import_tensorboard

    config = parse_config({**BASE, "logging": {"tensorboard": "tb", "mlflow": {"tracking_uri": "mlruns"}}})
    specs = [RunSpec("m1-d1-s0", 1.0, 1.0, 0), RunSpec("m4-d1-s0", 4.0, 1.0, 0)]
    with Tracker(config, tmp_path, specs) as tracker:
        results = _feed(tracker, specs)
    expected = _expected(results)

    mirrored = import_mlflow(tmp_path / "mlruns", ["tracked"])
    live = mirrored[mirrored.metric == LIVE_LOSS.split("/")[1]]
    assert live.steps.tolist() == [10, 16, 10, 16] and live.value.tolist() == [0.5, 0.25] * 2  # nan and repeat left out
    stored = mirrored[mirrored.metric != "batch_loss"].reset_index(drop=True)
    pd.testing.assert_frame_equal(stored, expected, check_dtype=False)

    events = import_tensorboard(tmp_path / "tb", metrics=["train/loss", "eval/r2"])
    assert sorted(events.run_id.unique()) == [s.run_id for s in specs]
    np.testing.assert_allclose(events.value, expected.value, rtol=1e-6)  # event files store float32
    np.testing.assert_array_equal(
        events[["n_params", "dataset_size", "steps"]], expected[["n_params", "dataset_size", "steps"]]
    )

    from mlflow.tracking import MlflowClient

    client = MlflowClient((tmp_path / "mlruns").as_uri())
    run = client.search_runs(
        [client.get_experiment_by_name("tracked").experiment_id], order_by=["attributes.run_name"]
    )[0]
    assert run.data.params == {
        "model_scale": "1.0",
        "data_scale": "1.0",
        "seed": "0",
        "n_params": "1000",
        "dataset_size": "4096",
    }
    assert run.info.status == "FINISHED"


def test_resumed_study_reuses_the_cells_mlflow_run(tmp_path) -> None:
    from mlflow.tracking import MlflowClient

    config = parse_config({**BASE, "logging": {"mlflow": {"tracking_uri": str(tmp_path / "store"), "experiment": "e"}}})
    spec = RunSpec("m1-d1-s0", 1.0, 1.0, 0)
    with Tracker(config, tmp_path, [spec]) as tracker:
        tracker(Started(spec.run_id))
        tracker(Failed(spec.run_id, "killed"))
    with Tracker(config, tmp_path, [spec]) as tracker:
        _feed(tracker, [spec])
    client = MlflowClient((tmp_path / "store").as_uri())
    runs = client.search_runs([client.get_experiment_by_name("e").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"


def test_logging_is_off_by_default_and_validated(tmp_path) -> None:
    tracker = Tracker(parse_config(BASE), tmp_path, [RunSpec("r", 1.0, 1.0, 0)])
    assert tracker.sinks == []
    tracker(Started("r"))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(UserError, match=r"key 'logging.tensorboard_dir': unknown key"):
        parse_config({**BASE, "logging": {"tensorboard_dir": "tb"}})
    base_digest = parse_config(BASE).digest()
    assert parse_config({**BASE, "logging": {"tensorboard": "tb"}}).digest() == base_digest  # a resume may switch it on


@pytest.mark.slow
def test_study_run_logs_every_run(tmp_path) -> None:
    from scalinglab.importers.tensorboard import import_tensorboard
    from scalinglab.study.runner import execute
    from scalinglab.study.store import Store

    store = Store.create(tmp_path / "s", parse_config({**BASE, "logging": {"tensorboard": "tb"}}))
    assert execute(store) == {"done": 2}
    obs = store.observations()
    events = import_tensorboard(tmp_path / "s" / "tb", metrics=["eval/loss"])
    truth = obs[(obs.metric == "loss") & (obs.split == "eval")].sort_values(["run_id", "steps"])
    assert (
        events.run_id.tolist() == truth.run_id.tolist() and events.steps.tolist() == truth.steps.astype(float).tolist()
    )
    np.testing.assert_allclose(events.value, truth.value.astype(float), rtol=1e-6)
    np.testing.assert_array_equal(events.n_params, truth.n_params.astype(float))
    np.testing.assert_array_equal(events.samples_seen, truth.samples_seen.astype(float))
