"""Bad inputs from the audit, through the real command line: each ends in one line naming what is wrong, exit 2."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from scalinglab import ScalingLaw
from scalinglab.testing import example_curves, example_observations

pytestmark = pytest.mark.slow  # every test here runs the CLI in a fresh process


def run(*args):
    env = {**os.environ, "COLUMNS": "400"}  # help text on one line per option
    return subprocess.run(
        [sys.executable, "-m", "scalinglab", *args], capture_output=True, text=True, timeout=300, env=env
    )


def assert_one_line_error(proc, *needles):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("audit")
    obs = example_observations()
    paths = {"obs": root / "obs.csv", "curves": root / "curves.csv", "dup": root / "dup.csv"}
    obs.to_csv(paths["obs"], index=False)
    example_curves(model_sizes=np.geomspace(2e7, 2e9, 5), points_per_run=8).to_csv(paths["curves"], index=False)
    # The last run's one row twice: with several rows per run, only its last point would be fitted.
    obs.iloc[list(range(len(obs))) + [len(obs) - 1]].to_csv(paths["dup"], index=False)
    paths["fit"] = root / "fit.json"
    ScalingLaw().fit(obs).save(paths["fit"])
    paths["fit_x"] = root / "fit_x.json"
    ScalingLaw(form="power").fit(obs, {"x": "flops"}).save(paths["fit_x"])
    data = json.loads(paths["fit"].read_text())
    data["params"]["alpha"] = float("nan")
    data["theta"] = [float("nan")] * len(data["theta"])
    paths["nan"] = root / "nan.json"
    paths["nan"].write_text(json.dumps(data))  # json writes NaN, as Python's own json reads it
    return {k: str(v) for k, v in paths.items()}


@pytest.mark.parametrize("expression", ["1/0", "10.0**400", "9**9**9", "log(alpha - 1)", "exp(1e6)"])
def test_derived_quantities_that_are_not_finite(files, expression):
    proc = run("fit", files["obs"], "--form", "chinchilla", "--derive", f"q={expression}")  # a fixed form: no search
    assert_one_line_error(proc, "--derive", f"'{expression}'", "not a finite number")


@pytest.mark.parametrize("flag", ["--k", "--flops-per-param-sample"])
def test_flops_per_param_sample_must_be_positive(files, flag):
    assert_one_line_error(run("fit", files["obs"], "--d-from-flops", flag, "-6"), "--flops-per-param-sample/--k", "-6")
    assert_one_line_error(run("optimal", files["curves"], flag, "0"), "--flops-per-param-sample/--k")
    assert_one_line_error(run("cost", files["fit"], flag, "nan"), "--flops-per-param-sample/--k")


def test_the_old_k_flag_still_works(files):
    proc = run("profile", files["fit"], "--improvement", "0.01", "--k", "6", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["multipliers"]["flops"] > 1


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["optimal", "{curves}", "--bins", "0"], ["--bins", ">= 1", "got 0"]),
        (["optimal", "{curves}", "--bootstrap", "-5"], ["--bootstrap", ">= 0", "got -5"]),
        (["optimal", "{curves}", "--tolerance", "-1"], ["--tolerance"]),
        (["optimal", "{curves}", "--seed", "-1"], ["--seed"]),
        (["fit", "{obs}", "--bootstrap", "-1"], ["--bootstrap", "got -1"]),
        (["fit", "{obs}", "--bootstrap", "2", "--seed", "-3"], ["--seed", "got -3"]),
        (["backtest", "{obs}", "--bootstrap", "-2"], ["--bootstrap", "got -2"]),
        (["report", "{obs}", "--bootstrap", "-2"], ["--bootstrap", "got -2"]),
        (["compare", "{obs}", "{obs}", "--bootstrap", "-2"], ["--bootstrap", "got -2"]),
        (["profile", "{fit}", "--improvement", "0.01", "--points", "0"], ["--points", "got 0"]),
    ],
)
def test_out_of_range_options_are_named(files, args, needles):
    assert_one_line_error(run(*[a.format(**files) for a in args]), *needles)


def test_improvements_must_be_below_one_for_a_lower_is_better_metric(files):
    assert_one_line_error(run("cost", files["fit"], "--improvements", "0.01,1.5"), "--improvements", "1.5")
    assert_one_line_error(run("profile", files["fit"], "--improvement", "-0.1"), "--improvement", "-0.1")
    assert "below 1 for a lower-is-better metric" in run("cost", "--help").stdout


def test_a_fit_with_non_finite_parameters_is_refused(files):
    proc = run("predict", files["nan"], "--n", "1e9", "--d", "1e10")
    assert_one_line_error(proc, files["nan"], "'params.alpha'", "not a finite number")


@pytest.mark.parametrize("n", ["1e308", "1e-308"])
def test_predictions_far_beyond_the_data_are_refused(files, n):
    assert_one_line_error(run("predict", files["fit"], "--n", n, "--d", "1e10"), f"n = {float(n):g}", "decades")


def test_on_duplicate_error_applies_without_all_points(files):
    for extra in ([], ["--all-points"]):
        proc = run("fit", files["dup"], "--on-duplicate", "error", *extra)
        # the repeated row is the table's 43rd data row, line 44 of the file
        assert_one_line_error(proc, files["dup"], "row 43 (line 44)", "duplicate")
    assert run("fit", files["dup"], "--form", "chinchilla").returncode == 0  # the default drops it


@pytest.mark.parametrize("command", [["profile", "--improvement", "0.01"], ["cost"]])
def test_profile_and_cost_of_a_one_variable_fit_name_the_file(files, command):
    proc = run(command[0], files["fit_x"], *command[1:])
    assert_one_line_error(proc, files["fit_x"], "form 'power'", "N and D")


def test_help_does_not_import_the_fitting_engine_or_torch():
    code = (
        "import sys; import scalinglab.cli.main; "
        "heavy = [m for m in ('torch', 'scipy.stats', 'numba', 'pandas', 'scalinglab.fit.law') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_folder_given_as_a_table_is_named_for_what_it_is(tmp_path):
    study = tmp_path / "study"
    study.mkdir()
    (study / "study.sqlite").write_bytes(b"")
    assert_one_line_error(run("fit", str(study)), f"{study}: a study folder", "scalinglab report")
    assert_one_line_error(run("fit", str(tmp_path)), f"{tmp_path}: a folder, not a table file")


def test_a_refused_demo_leaves_the_folder_s_config_alone(tmp_path):
    (tmp_path / "study.yaml").write_text("name: kept\n")
    assert_one_line_error(run("demo", "-o", str(tmp_path), "--epochs", "0"), "key 'budget.epochs'")
    assert (tmp_path / "study.yaml").read_text() == "name: kept\n"
