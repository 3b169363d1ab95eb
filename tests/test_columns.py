"""The one column vocabulary: run ids from several columns, --steps, --d-from-flops, model-size holdouts,
duplicate counting, JSON on every command and the top-level exports.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import scalinglab
from scalinglab.cli.columns import TABLE_COLUMNS
from scalinglab.errors import UserError
from scalinglab.fit.backtest import holdout_mask
from scalinglab.observations import SCHEMA, FitData, build_run_ids, derive_d, prepare, select_fit_data
from scalinglab.testing import chinchilla_loss


def cli(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "scalinglab", *args], capture_output=True, text=True, timeout=300, cwd=cwd
    )


def test_help_names_the_schema_columns() -> None:
    assert list(TABLE_COLUMNS) == list(SCHEMA)


def test_run_ids_from_columns_split_repeated_configurations() -> None:
    table = pd.DataFrame({"width": [64, 64, 128, 128, 64, 64, 128], "lr": [1, 1, 1, 1, 1, 1, 2]})
    assert build_run_ids(table, ["width"]).tolist() == ["64", "64", "128", "128", "64#2", "64#2", "128#2"]
    assert build_run_ids(table, ["width", "lr"]).tolist() == [
        "width=64,lr=1",
        "width=64,lr=1",
        "width=128,lr=1",
        "width=128,lr=1",
        "width=64,lr=1#2",
        "width=64,lr=1#2",
        "width=128,lr=2",
    ]
    # One metric's rows listed after another's: the blocks are found within each metric.
    long = pd.DataFrame({"width": [64, 64, 128, 128] * 2, "metric": ["loss"] * 4 + ["acc"] * 4})
    assert build_run_ids(long, ["width"]).tolist() == ["64", "64", "128", "128"] * 2


def test_prepare_errors_and_steps_column() -> None:
    table = pd.DataFrame({"width": [1, 2], "iter": [10, 20]})
    with pytest.raises(UserError, match=r"t.csv: no column 'depth' \(needed for --run-by\)"):
        prepare(table, source="t.csv", run_by="width,depth")
    with pytest.raises(UserError, match="give --run or --run-by, not both"):
        prepare(table, run_by="width", run="width")
    with pytest.raises(UserError, match="give column names separated by commas"):
        prepare(table, run_by="width,")
    with pytest.raises(UserError, match=r"no column 'step' \(needed for --steps\)"):
        prepare(table, steps="step")
    out, run = prepare(table, steps="iter", run_by="width")
    assert run == "run_id" and out["steps"].tolist() == [10, 20] and out["run_id"].tolist() == ["1", "2"]


def _sweep() -> pd.DataFrame:
    """Two checkpoints per run, no run column; the configuration (N, D) 1e7 x 1e9 is trained twice."""
    rows = []
    configs = [(n, d) for n in (1e7, 4e7, 1.6e8) for d in (1e9, 4e9)] + [(1e7, 1e9)]
    for i, (n, d) in enumerate(configs):
        for frac in (0.5, 1.0):
            loss = float(chinchilla_loss(np.array(n * frac), np.array(d * frac))) + 0.001 * i
            rows.append({"N": n, "D": d, "seen": d * frac, "iter": 100 * frac, "loss": loss, "C": 6 * n * d * frac})
    return pd.DataFrame(rows)


def test_run_by_picks_the_last_checkpoint_of_each_run() -> None:
    table, run = prepare(_sweep(), run_by="N,D", steps="iter")
    data = select_fit_data(table, ("n", "d"), {"n": "N", "d": "D", "y": "loss", "run": run})
    assert data.n_points == 7  # six configurations, one of them run twice
    assert sorted(set(data.groups)) == sorted(
        {f"N={n},D={d}" for n in (1e7, 4e7, 1.6e8) for d in (1e9, 4e9)} | {"N=10000000.0,D=1000000000.0#2"}
    )
    assert np.all(data.y == _sweep().loss.to_numpy()[1::2])  # each run's second (last) checkpoint


def test_d_from_flops_column() -> None:
    table, name = derive_d(_sweep(), "C", "N", 6.0)
    np.testing.assert_allclose(table[name], _sweep()["seen"], rtol=1e-12)  # C = 6 N D
    with pytest.raises(UserError, match=r"row 1, column 'N': 0 must be > 0"):
        derive_d(_sweep().assign(N=0.0), "C", "N", 6.0)


def test_holdout_by_model_size() -> None:
    n = np.array([1, 1, 2, 2, 4, 4, 8, 8, 8], dtype=float)
    d = np.array([9, 1, 9, 1, 9, 1, 9, 1, 5], dtype=float)
    data = FitData(np.stack([n, d]), ("n", "d"), np.ones(n.size), None, "t")
    assert holdout_mask("largest-n:2", data).tolist() == (n >= 4).tolist()
    assert holdout_mask("largest-n:1", data).tolist() == (n == 8).tolist()
    assert holdout_mask("largest:2", data).sum() == 2  # by point: the two largest N x D
    with pytest.raises(UserError, match="holds out 4 of 4 model sizes"):
        holdout_mask("largest-n:4", data)
    with pytest.raises(UserError, match="has no input N"):
        holdout_mask("largest-n:1", FitData(d[None], ("x",), np.ones(n.size), None, "t"))


def test_duplicate_rows_are_counted_exactly() -> None:
    base = pd.DataFrame({"n_params": [1e7, 2e7, 4e7, 8e7], "dataset_size": [1e9, 2e9, 1e9, 2e9], "lr": 1e-3})
    base["value"] = chinchilla_loss(base.n_params.to_numpy(), base.dataset_size.to_numpy())
    copy = base.iloc[[0]]
    other_lr = base.iloc[[1, 2]].assign(lr=3e-4)
    data = select_fit_data(pd.concat([base, copy, other_lr], ignore_index=True), ("n", "d"), n_params=1)
    assert data.n_points == 4
    assert any(
        "dropped 3 duplicate row(s)" in w and "1 exact copies, 2 differing only" in w and "'lr'" in w
        for w in data.warnings
    ), data.warnings
    only_copy = select_fit_data(pd.concat([base, copy], ignore_index=True), ("n", "d"), n_params=1)
    assert any("dropped 1 duplicate row(s) (exact copies" in w for w in only_copy.warnings), only_copy.warnings


def test_every_export_resolves() -> None:
    for name in scalinglab.__all__:
        assert getattr(scalinglab, name) is not None
    assert scalinglab.ComputeOptimal.__name__ == "ComputeOptimal"
    with pytest.raises(AttributeError):
        scalinglab.not_a_name  # noqa: B018


@pytest.mark.slow
def test_vocabulary_on_the_command_line(tmp_path) -> None:
    _sweep().to_csv(tmp_path / "sweep.csv", index=False)
    bt = cli(
        "backtest",
        "sweep.csv",
        "--n",
        "N",
        "--c",
        "C",
        "--d-from-flops",
        "--y",
        "loss",
        "--run-by",
        "N,D",
        "--s",
        "iter",
        "--holdout",
        "largest-n:1",
        "--forms",
        "chinchilla",
        "--bootstrap",
        "0",
        "--json",
        cwd=tmp_path,
    )
    assert bt.returncode == 0, bt.stderr
    assert json.loads(bt.stdout)["n_test"] == 2  # the two runs of the largest N
    bad = cli("fit", "sweep.csv", "--run-by", "N,width", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.strip() == (
        "error: sweep.csv: no column 'width' (needed for --run-by); columns are 'N', 'D', 'seen', 'iter', 'loss', 'C'"
    )
    help_text = cli("fit", "--help", cwd=tmp_path).stdout
    assert "dataset_size" in help_text and "--run-by" in help_text and "samples_seen" in help_text
    forms = cli("forms", "--json", cwd=tmp_path)
    assert {f["name"] for f in json.loads(forms.stdout)} >= {"chinchilla", "kaplan"}


@pytest.mark.slow
def test_study_status_json(tmp_path) -> None:
    from scalinglab.study.config import parse_config
    from scalinglab.study.store import Store

    config = {
        "task": "toy",
        "model_scales": [1, 2],
        "data_scales": [1],
        "budget": {"steps": 2},
        "batch_size": 4,
        "eval_every": 1,
    }
    Store.create(tmp_path / "s", parse_config(config)).close()
    status = cli("study", "status", "s", "--json", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    out = json.loads(status.stdout)
    assert out["counts"] == {"pending": 2} and len(out["runs"]) == 2 and out["metrics"] == []
