"""Importers against real tracker files: a local MLflow store, TensorBoard event files, W&B exports.

Each store is written here through the tracker's own writer with known values; the imported table must
hold exactly those values (float32 precision for TensorBoard scalars).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scalinglab.errors import UserError
from scalinglab.importers import detect
from scalinglab.importers.common import parse_number, split_metric
from scalinglab.observations import SCHEMA

mlflow_tracking = pytest.importorskip("mlflow.tracking")
pytest.importorskip("tensorboard")

SIZES = [(1e6, 2e7), (4e6, 2e7), (1e6, 8e7), (4e6, 8e7)]
STEPS = (10, 20, 30)


def law(n: float, d: float, step: int) -> float:
    """The curve logged: a Chinchilla-form value at the end of a run, plus a term that decays with steps."""
    return 1.7 + 400 / n**0.34 + 410 / d**0.28 + 1.0 / step


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "scalinglab", *args], capture_output=True, text=True, timeout=120, cwd=cwd
    )


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local MLflow store: N as a param, D as a tag, eval/loss and train_loss histories per run."""
    import os

    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    root = tmp_path_factory.mktemp("mlflow") / "mlruns"
    client = mlflow_tracking.MlflowClient(tracking_uri=root.as_uri())
    experiment = client.create_experiment("sweep")
    client.create_experiment("empty")
    for n, d in SIZES:
        run = client.create_run(experiment, run_name=f"n{n:g}-d{d:g}").info.run_id
        client.log_param(run, "n_params", f"{n:g}")
        client.set_tag(run, "train_tokens", f"{d:g}")
        for step in STEPS:
            client.log_metric(run, "eval/loss", law(n, d, step), step=step)
            client.log_metric(run, "train_loss", law(n, d, step) - 0.1, step=step)
        client.set_terminated(run)
    return root


def test_split_metric_and_numbers() -> None:
    assert split_metric("eval/loss", "eval") == ("loss", "eval")
    assert split_metric("train_loss", "eval") == ("loss", "train")
    assert split_metric("minADE/val", "eval") == ("minADE", "val")
    assert split_metric("loss", "test") == ("loss", "test")
    assert split_metric("training_time", "eval") == ("time", "training")
    assert parse_number("125M") == 125e6
    assert parse_number("1.5B") == 1.5e9
    assert parse_number("7_000") == 7000.0
    assert parse_number("1e6") == 1e6
    assert parse_number("nan") is None
    assert parse_number("large") is None


def test_mlflow_store_maps_params_tags_and_histories(mlflow_store: Path) -> None:
    from scalinglab.importers.mlflow import import_mlflow

    obs = import_mlflow(mlflow_store, ["sweep"], d="train_tokens")
    assert list(obs.columns) == list(SCHEMA)
    assert len(obs) == len(SIZES) * len(STEPS) * 2
    assert set(zip(obs.metric, obs.split, strict=True)) == {("loss", "eval"), ("loss", "train")}
    for n, d in SIZES:
        run = obs[(obs.run_id == f"n{n:g}-d{d:g}") & (obs.split == "eval")]
        assert run.n_params.unique().tolist() == [n] and run.dataset_size.unique().tolist() == [d]
        assert run.steps.tolist() == list(STEPS)
        np.testing.assert_allclose(run.value, [law(n, d, s) for s in STEPS], rtol=1e-12)
    only_eval = import_mlflow(mlflow_store.as_uri(), ["sweep"], d="train_tokens", metrics=["eval/loss"])
    assert set(only_eval.split) == {"eval"} and len(only_eval) == len(SIZES) * len(STEPS)


def test_mlflow_errors_name_the_run_and_key(mlflow_store: Path) -> None:
    from scalinglab.importers.mlflow import import_mlflow

    missing_d = r"experiment 'sweep', run 'n\S+': no param, tag or metric for D .*params are 'n_params', 'train_tokens'"
    with pytest.raises(UserError, match=missing_d):
        import_mlflow(mlflow_store, ["sweep"])  # D is the tag 'train_tokens', not a default name
    with pytest.raises(UserError, match=r"no param, tag or metric 'size' for N \(--n\)"):
        import_mlflow(mlflow_store, ["sweep"], n="size", d="train_tokens")
    with pytest.raises(UserError, match=r"no experiment 'nope'; experiments are .*'sweep'"):
        import_mlflow(mlflow_store, ["nope"])
    with pytest.raises(UserError, match=r"no run logs the metric 'bleu'"):
        import_mlflow(mlflow_store, ["sweep"], d="train_tokens", metrics=["bleu"])
    with pytest.raises(UserError, match="no such MLflow store folder"):
        import_mlflow(mlflow_store.parent / "absent")


@pytest.fixture(scope="module")
def tb_logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Event files from torch's SummaryWriter: one folder per run, N and D as hparams or text."""
    from torch.utils.tensorboard import SummaryWriter

    root = tmp_path_factory.mktemp("tb") / "logs"
    for i, (n, d) in enumerate(SIZES):
        writer = SummaryWriter(str(root / f"run{i}"))
        for step in STEPS:
            writer.add_scalar("eval/loss", law(n, d, step), step)
            writer.add_scalar("samples", step * 32, step)
        if i % 2 == 0:
            writer.add_hparams({"n_params": n, "dataset_size": d, "lr": 1e-3}, {"hparam/final": 0.0})
        else:
            writer.add_text("n_params", f"{n:g}")
            writer.add_text("D", f"{d:g}")
        writer.close()
    return root


def test_tensorboard_event_files(tb_logdir: Path) -> None:
    from scalinglab.importers.tensorboard import import_tensorboard

    obs = import_tensorboard(tb_logdir, samples_seen="samples")
    assert sorted(obs.run_id.unique()) == [f"run{i}" for i in range(len(SIZES))]  # add_hparams' sub-folders join
    assert set(obs.metric) == {"loss"} and set(obs.split) == {"eval"}
    for i, (n, d) in enumerate(SIZES):
        run = obs[obs.run_id == f"run{i}"]
        assert run.n_params.unique().tolist() == [n] and run.dataset_size.unique().tolist() == [d]
        assert run.steps.tolist() == list(STEPS)
        assert run.samples_seen.tolist() == [s * 32.0 for s in STEPS]
        np.testing.assert_allclose(run.value, [law(n, d, s) for s in STEPS], rtol=1e-6)  # float32 scalars


def test_tensorboard_errors(tb_logdir: Path, tmp_path: Path) -> None:
    from scalinglab.importers.tensorboard import import_tensorboard

    with pytest.raises(UserError, match=r"run 'run0': no param, tag or metric 'train_tokens' for D"):
        import_tensorboard(tb_logdir, d="train_tokens")
    with pytest.raises(UserError, match=r"no metric history 'seen' for samples_seen"):
        import_tensorboard(tb_logdir, samples_seen="seen")
    with pytest.raises(UserError, match="no TensorBoard event files"):
        import_tensorboard(tmp_path)


def _history(tmp_path: Path) -> Path:
    rows = [
        {"name": f"n{n:g}-d{d:g}", "_step": s, "_runtime": 1.0 * s, "val/loss": law(n, d, s), "n_params": n}
        for n, d in SIZES
        for s in STEPS
    ]
    path = tmp_path / "history.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_wandb_history_csv_with_runs_table(tmp_path: Path) -> None:
    from scalinglab.importers.common import read_runs_table
    from scalinglab.importers.wandb import import_wandb

    runs = tmp_path / "runs.csv"
    pd.DataFrame({"Name": [f"n{n:g}-d{d:g}" for n, d in SIZES], "train_tokens": [d for _, d in SIZES]}).to_csv(runs)
    obs = import_wandb(_history(tmp_path), d="train_tokens", runs_table=read_runs_table(runs))
    assert len(obs) == len(SIZES) * len(STEPS) and set(obs.split) == {"val"}
    for n, d in SIZES:
        run = obs[obs.run_id == f"n{n:g}-d{d:g}"]
        assert run.n_params.unique().tolist() == [n] and run.dataset_size.unique().tolist() == [d]
        np.testing.assert_allclose(run.value, [law(n, d, s) for s in STEPS], rtol=1e-12)
    with pytest.raises(UserError, match=r"history.csv: run 'n1e\+06-d2e\+07': no param, tag or metric for D"):
        import_wandb(_history(tmp_path))


def test_a_runs_learning_rate_and_batch_size_come_along_as_trial_columns(tmp_path: Path) -> None:
    from scalinglab.importers.common import read_runs_table
    from scalinglab.importers.wandb import import_wandb

    runs = tmp_path / "runs.csv"
    names = [f"n{n:g}-d{d:g}" for n, d in SIZES]
    rates = [0.001 * (i + 1) for i in range(len(SIZES))]
    table = {"Name": names, "train_tokens": [d for _, d in SIZES], "LR": rates, "batch_size": "64", "optim": "adam"}
    pd.DataFrame(table).to_csv(runs)
    obs = import_wandb(_history(tmp_path), d="train_tokens", runs_table=read_runs_table(runs))
    by_run = obs.groupby("run_id")[["lr", "batch_size"]].first()
    assert by_run.lr.to_dict() == pytest.approx(dict(zip(names, rates, strict=True)))
    assert set(by_run.batch_size) == {64.0} and "optim" not in obs


def test_wandb_chart_export_and_json_lines(tmp_path: Path) -> None:
    from scalinglab.importers.wandb import import_wandb

    chart = pd.DataFrame({"Step": list(STEPS)})
    for n, d in SIZES:
        chart[f"n{n:g}-d{d:g} - eval/loss"] = [law(n, d, s) for s in STEPS]
        chart[f"n{n:g}-d{d:g} - eval/loss__MIN"] = 0.0
    chart.to_csv(tmp_path / "chart.csv", index=False)
    runs = {f"n{n:g}-d{d:g}": {"N": str(n), "D": str(d)} for n, d in SIZES}
    obs = import_wandb(tmp_path / "chart.csv", runs_table=runs)
    assert len(obs) == len(SIZES) * len(STEPS) and set(obs.metric) == {"loss"}
    first = obs[obs.run_id == "n1e+06-d2e+07"]
    np.testing.assert_allclose(first.value, [law(1e6, 2e7, s) for s in STEPS], rtol=1e-12)

    lines = tmp_path / "run.jsonl"
    lines.write_text("\n".join(json.dumps({"_step": s, "loss": 1.0 / s, "N": 5e5, "D": 1e6}) for s in STEPS))
    one = import_wandb(lines)
    assert one.run_id.unique().tolist() == ["run"] and one.value.tolist() == [1.0 / s for s in STEPS]
    with pytest.raises(UserError, match=r"no step column \(tried _step"):
        (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
        import_wandb(tmp_path / "bad.csv")


def test_detect(mlflow_store: Path, tb_logdir: Path, tmp_path: Path) -> None:
    assert detect(str(mlflow_store)) == "mlflow"
    assert detect("http://localhost:5000") == "mlflow"
    assert detect(str(tb_logdir)) == "tensorboard"
    assert detect(str(_history(tmp_path))) == "wandb"
    with pytest.raises(UserError, match="no such file or folder"):
        detect(str(tmp_path / "absent"))


@pytest.mark.slow
def test_import_cli(mlflow_store: Path, tb_logdir: Path, tmp_path: Path) -> None:
    args = ["import", str(mlflow_store), "--experiment", "sweep", "--d", "train_tokens", "-o", "obs.parquet"]
    done = cli(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "24 rows from 4 mlflow runs" in done.stdout
    obs = pd.read_parquet(tmp_path / "obs.parquet")
    assert len(obs) == 24 and list(obs.columns) == list(SCHEMA)

    tb = cli("import", str(tb_logdir), "-o", "tb.csv", "--json", cwd=tmp_path)
    assert tb.returncode == 0, tb.stderr
    assert json.loads(tb.stdout)["runs"] == len(SIZES)

    bad = cli("import", str(mlflow_store), "--experiment", "sweep", "-o", "x.csv", cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and bad.stderr.startswith("error: ")
    assert "no param, tag or metric for D" in bad.stderr
