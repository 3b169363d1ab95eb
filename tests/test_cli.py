"""The command line as a user runs it: real processes, exit codes, one-line errors, JSON output."""

import json
import subprocess
import sys

import pytest

from scalinglab.testing import example_observations


def run(*args, check_rc=None):
    proc = subprocess.run([sys.executable, "-m", "scalinglab", *args], capture_output=True, text=True, timeout=300)
    if check_rc is not None:
        assert proc.returncode == check_rc, proc.stderr
    return proc


@pytest.fixture(scope="module")
def user_csv(tmp_path_factory):
    # A user's own file with its own column names.
    path = tmp_path_factory.mktemp("data") / "my runs.csv"
    obs = example_observations()
    obs.rename(columns={"n_params": "Model Size", "dataset_size": "Tokens", "value": "loss"}).drop(
        columns=["metric", "split"]
    ).to_csv(path, index=False)
    return path


@pytest.mark.slow
def test_fit_json_and_predict(user_csv, tmp_path):
    fit_path = tmp_path / "fit.json"
    proc = run(
        "fit",
        str(user_csv),
        "--n",
        "Model Size",
        "--d",
        "Tokens",
        "--y",
        "loss",
        "--bootstrap",
        "50",
        "--derive",
        "a=beta/(alpha+beta)",
        "--json",
        "-o",
        str(fit_path),
        check_rc=0,
    )
    out = json.loads(proc.stdout)
    assert {"form", "params", "ci", "objective", "n_points", "warnings"} <= set(out)
    assert set(out["params"]) == {"E", "A", "B", "alpha", "beta"}
    assert out["n_points"] == 42
    assert out["derived"]["a"]["lower"] <= out["derived"]["a"]["value"] <= out["derived"]["a"]["upper"]
    pred = json.loads(run("predict", str(fit_path), "--n", "1e9,2e9", "--d", "1e11", "--json", check_rc=0).stdout)
    rows = pred["predictions"]
    assert len(rows) == 2 and rows[0]["lower"] <= rows[0]["prediction"] <= rows[0]["upper"]
    assert rows[1]["prediction"] < rows[0]["prediction"]  # bigger model, lower loss
    table = run("fit", str(user_csv), "--n", "Model Size", "--d", "Tokens", "--y", "loss", check_rc=0).stdout
    assert "alpha" in table and "4500 starts" in table


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--n", "Model Size", "--d", "Tokens", "--y", "lossy"], "no column 'lossy'"),
        (["--n", "Model Size", "--d", "Tokens", "--y", "loss", "--form", "nope"], "unknown form 'nope'"),
        (["--n", "Model Size", "--d", "Tokens", "--y", "loss", "--loss", "l1"], "unknown loss 'l1'"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(user_csv, args, needle):
    proc = run("fit", str(user_csv), *args, check_rc=2)
    assert needle in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr


def test_bad_rows_name_the_file_row_and_column(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("n_params,dataset_size,value\n1e6,1e8,3.0\n2e6,1e8,oops\n4e6,2e8,2.5\n")
    proc = run("fit", str(path), check_rc=2)
    assert proc.stderr.strip() == f"error: {path}: row 2 (line 3), column 'value': 'oops' is not a finite number"


@pytest.mark.slow
def test_predict_from_a_missing_or_wrong_fit(tmp_path):
    assert "no such file" in run("predict", str(tmp_path / "none.json"), "--n", "1", "--d", "1", check_rc=2).stderr
    bad = tmp_path / "bad.json"
    bad.write_text("not json")
    assert "not valid JSON" in run("predict", str(bad), "--n", "1", "--d", "1", check_rc=2).stderr


def test_help_and_forms():
    assert "fit" in run("--help", check_rc=0).stdout
    assert "--bootstrap" in run("fit", "--help", check_rc=0).stdout
    assert "bnsl2" in run("forms", check_rc=0).stdout
