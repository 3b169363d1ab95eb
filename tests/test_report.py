"""Figures, the HTML report, `report` / `compare` / `demo` commands."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from scalinglab.analysis import analyse
from scalinglab.optimal.iso_metric import iso_metric_profile
from scalinglab.report import figures
from scalinglab.report.html import write_report
from scalinglab.testing import TRUE_PARAMS, chinchilla_loss

MODEL_SCALES, DATA_SCALES = (1, 2, 4, 8, 16), (1, 2, 4, 7)


def study_table(params=TRUE_PARAMS, base_n=2e7, base_d=4e9, points=6) -> pd.DataFrame:
    """A grid study whose runs follow a known L(N, D): each run's curve ends at L(N, its D)."""
    rows = []
    for m in MODEL_SCALES:
        for k in DATA_SCALES:
            n, d = base_n * m, base_d * k
            for seen in np.geomspace(d / 20, d, points):
                rows.append(
                    {
                        "run_id": f"m{m}-d{k}",
                        "model_scale": float(m),
                        "data_scale": float(k),
                        "n_params": n,
                        "dataset_size": d,
                        "samples_seen": seen,
                        "steps": seen / 256,
                        "flops": 6 * n * seen,
                        "metric": "loss",
                        "split": "eval",
                        "value": float(chinchilla_loss(n, seen, params)),
                        "higher_is_better": False,
                    }
                )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def analysis():
    return analyse(
        study_table(), "grid.csv", metric="loss", split="eval", bootstrap=30, title="<b>T & Co</b>", form="chinchilla"
    )


def test_analysis_recovers_the_law(analysis):
    for name in ("alpha", "beta", "E"):
        assert analysis.law.params_[name] == pytest.approx(TRUE_PARAMS[name], rel=0.02)
    assert analysis.profile is not None
    # The profile reaches 1% better than the law at the best run.
    assert analysis.profile.target == pytest.approx(analysis.profile.reference["value"] * 0.99)
    assert {("envelope", "N"), ("parametric", "N")} <= set(analysis.optimal.laws_)


def test_heatmap_annotations_are_the_improvements(analysis):
    fig = figures.relative_heatmap(analysis.final, "loss", higher_is_better=False)
    texts = [t.get_text() for t in fig.axes[0].texts]
    base = float(chinchilla_loss(2e7, 4e9))
    expected = [
        f"{(base - float(chinchilla_loss(2e7 * m, 4e9 * k))) / base * 100:+.1f}%"
        for m in MODEL_SCALES
        for k in DATA_SCALES
    ]
    assert texts == expected
    assert texts[0] == "+0.0%" and all(t.startswith("+") for t in texts[1:])  # every larger cell is better: +
    assert "over the 1X model / 1X data cell" in fig.axes[0].get_title()


def test_the_envelope_figure_draws_the_envelope_along_the_runs(analysis):
    optimal = analysis.optimal
    fig = figures.envelope_figure(optimal, "loss")
    (line,) = [x for x in fig.axes[0].get_lines() if "envelope" in str(x.get_label())]
    expected = figures.drawn_envelope(optimal.curves_.frame(), higher_is_better=False)
    np.testing.assert_allclose(line.get_xdata(), expected["flops"])
    np.testing.assert_allclose(line.get_ydata(), expected["value"])
    assert fig.axes[0].get_yscale() == "log" and fig.axes[0].get_legend() is not None


@pytest.mark.slow
def test_report_is_self_contained_and_escaped(analysis, tmp_path):
    page = write_report(analysis, tmp_path / "r")
    html = page.read_text()
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) == 5  # contour, diagnostics, heatmap, metric by scale, envelope
    assert all(len(i) > 10_000 for i in images)
    for name in ("law_contour", "diagnostics", "heatmap", "metric_by_scale", "envelope"):
        assert (tmp_path / "r" / "figures" / f"{name}.svg").stat().st_size > 0
    assert "<b>T & Co</b>" not in html and "&lt;b&gt;T &amp; Co&lt;/b&gt;" in html
    assert 'src="http' not in html and "<script" not in html  # nothing fetched, nothing run
    assert pd.read_csv(tmp_path / "r" / "observations.csv").shape[0] == len(analysis.observations)


@pytest.mark.slow
def test_the_page_states_the_interval_level_and_improvement_actually_used(analysis, tmp_path):
    law = copy.copy(analysis.law)
    law.ci_level, law.intervals = 0.9, "bootstrap"  # percentiles of the same refits at the new level
    profile = iso_metric_profile(law, improvement=0.03)
    html = write_report(dataclasses.replace(analysis, law=law, profile=profile), tmp_path / "w").read_text()
    assert "lower 90%" in html and "upper 90%" in html and "90% intervals from bootstrap refits" in html
    assert "3% better than the law at the reference run" in html
    assert "lower 95%" not in html and "1% better" not in html
    assert "summed huber loss" in html and "C = 6ND" in html


@pytest.mark.slow
def test_a_warning_when_the_data_cannot_support_the_law(tmp_path):
    flat = study_table().assign(value=lambda t: 2.0 + 1e-4 * np.sin(np.arange(len(t))))
    # no profile intervals: walking five open sides of a flat law takes half a minute; the warnings come regardless
    result = analyse(flat, "flat.csv", metric="loss", bootstrap=0, form="chinchilla", intervals=None)
    assert result.warnings  # an exponent near zero, or a law at its bounds: said, not hidden
    write_report(result, tmp_path / "flat")


def run(*args):
    return subprocess.run([sys.executable, "-m", "scalinglab", *args], capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_report_and_compare_commands(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    study_table().to_csv(a, index=False)
    study_table({**TRUE_PARAMS, "alpha": 0.45}).to_csv(b, index=False)
    proc = run(
        "report",
        str(a),
        "-o",
        str(tmp_path / "ra"),
        "--bootstrap",
        "20",
        "--improvement",
        "0.02",
        "--form",
        "chinchilla",
    )
    assert proc.returncode == 0, proc.stderr
    page = (tmp_path / "ra" / "index.html").read_text()
    assert "2% better than the law" in page and "lower 95%" in page
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == len({re.sub(r"[\d.e+-]+", "#", line) for line in lines})  # one line per kind
    proc = run("compare", str(a), str(b), "-o", str(tmp_path / "c"), "--names", "v1,v2", "--bootstrap", "20")
    assert proc.returncode == 0, proc.stderr
    html = (tmp_path / "c" / "index.html").read_text()
    assert html.count("data:image/png;base64,") == 1 and "v1" in html and "v2" in html
    bad = run("report", str(a), "--metric", "mAP", "-o", str(tmp_path / "x"))
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1] == f"error: {a}: column 'metric' has no 'mAP' rows; it has loss"


@pytest.mark.slow
def test_demo_end_to_end_at_a_few_steps(tmp_path):
    args = ("--scenes", "160", "--workers", "1", "--bootstrap", "10")  # 5 to 20 steps a cell
    proc = run("demo", "-o", str(tmp_path / "demo"), *args, "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert (tmp_path / "demo" / "report" / "index.html").is_file()
    assert result["runs"]["done"] == 40
    status = json.loads(run("study", "status", str(tmp_path / "demo" / "study"), "--json").stdout)
    assert status["branches"]["branches"] == 30  # 10 trunks (5 models x 2 seeds), 3 branches each
    assert (tmp_path / "demo" / "study.yaml").is_file()


@pytest.mark.slow
def test_higher_is_better_metric_uses_the_error_and_the_upper_envelope(tmp_path):
    # mAP = 1 - error, the error following the known law: the fit must recover the law on 1 - mAP.
    table = study_table()
    table = table.assign(metric="mAP", value=1 - table["value"] / 10, higher_is_better=True)
    result = analyse(table, "det.csv", metric="mAP", bootstrap=0, form="chinchilla")
    assert result.higher_is_better
    assert result.law.params_["alpha"] == pytest.approx(TRUE_PARAMS["alpha"], rel=0.05)
    # The upper envelope of mAP picks exactly the points of the lower envelope of the error.
    lower = analyse(study_table(), "err.csv", metric="loss", bootstrap=0, form="chinchilla").optimal.envelope_
    upper = result.optimal.envelope_
    assert upper[["run_id", "flops"]].reset_index(drop=True).equals(lower[["run_id", "flops"]].reset_index(drop=True))
    fig = figures.relative_heatmap(result.final, "mAP", higher_is_better=True)
    assert all(t.get_text().startswith("+") for t in fig.axes[0].texts)  # every larger cell has a higher mAP
    write_report(result, tmp_path / "det")


def train_and_eval_table() -> pd.DataFrame:
    """The study with a train split beside eval (train 5% lower), and a model scale of 0.5X at data 1X only."""
    table = study_table()
    return pd.concat([table, table.assign(split="train", value=table["value"] * 0.95)], ignore_index=True)


@pytest.mark.slow
def test_report_json_summary_verdict_and_marks(tmp_path):
    source, other = tmp_path / "runs.csv", tmp_path / "other.csv"
    train_and_eval_table().to_csv(source, index=False)
    study_table().assign(flops=lambda t: t["flops"] * 3).to_csv(other, index=False)
    out = tmp_path / "r"
    proc = run("report", str(source), "-o", str(out), "--bootstrap", "10", "--json", "--mark", f"perception={other}")
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout)
    assert printed == json.loads((out / "summary.json").read_text())
    law = printed["law"]
    assert law["form"] == law["selection"]["choice"]  # the report fits form="auto" and keeps the choice
    assert {c["form"] for c in law["selection"]["candidates"]} >= {"chinchilla", "chinchilla_no_floor"}
    assert set(law["ci"]) == set(law["params"]) and all(len(v) == 2 for v in law["ci"].values())
    assert 0 <= law["cv_error"] < 0.05 and isinstance(law["not_identified"], list)
    assert {"method", "quantity", "exponent", "lower", "upper"} <= set(printed["optimal"][0])
    assert 3 <= len(printed["verdict"]) <= 5 and printed["verdict"][0].startswith("Doubling N improves loss by")
    html = (out / "index.html").read_text()
    assert html.index("Verdict") < html.index("Performance law")  # the verdict comes first
    assert html.count("data:image/png;base64,") == 6  # + train and eval side by side
    assert "form selection" in html.lower() or "leave-one-run-out" in html
    assert "the compute of perception" in html  # the other study's compute is marked on the envelope
    assert "data scale 7X" in html  # the envelope at the largest data scale, as the seed's Fig 2


@pytest.mark.slow
def test_report_that_produces_nothing_exits_2(tmp_path):
    source = tmp_path / "bare.csv"
    pd.DataFrame({"run_id": ["a", "b", "c"], "value": [1.0, 2.0, 3.0]}).to_csv(source, index=False)
    proc = run("report", str(source), "-o", str(tmp_path / "r"), "--bootstrap", "0")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: {source}: nothing to report: ")


def test_flops_per_param_sample_is_measured_from_the_runs():
    """C = k N D with k read off the final points: 64 epochs at 6 FLOPs per parameter per sample give 384 and
    no warning; a budget in steps (C independent of D) gives the median and a warning that says why."""
    from types import SimpleNamespace

    from scalinglab.analysis import measured_flops_per_param_sample

    n, d = (a.ravel() for a in np.meshgrid([1e4, 4e4, 1.6e5], [400.0, 800.0, 1600.0]))
    grid = {"n_params": n, "dataset_size": d}
    epochs = SimpleNamespace(final=pd.DataFrame({**grid, "flops": 6 * 64 * n * d}), warnings=[])
    assert measured_flops_per_param_sample(epochs) == pytest.approx(384, rel=1e-12)
    assert epochs.warnings == []
    steps = SimpleNamespace(final=pd.DataFrame({**grid, "flops": 6 * 25_600 * n}), warnings=[])
    assert measured_flops_per_param_sample(steps) == pytest.approx(6 * 25_600 / 800, rel=1e-12)
    assert len(steps.warnings) == 1 and "vary 4x" in steps.warnings[0]
    assert measured_flops_per_param_sample(SimpleNamespace(final=pd.DataFrame({"n_params": n}), warnings=[])) == 6.0


def test_a_wide_table_without_metric_or_split_columns_is_reported(tmp_path):
    """One value column named by --y, no 'metric' or 'split' column: the default --metric and --split only name it."""
    n, d = (a.ravel() for a in np.meshgrid(np.geomspace(1e7, 1e9, 5), np.geomspace(1e9, 1e11, 4)))
    noise = np.exp(np.random.default_rng(0).normal(0, 0.003, n.size))
    path = tmp_path / "wide.csv"
    pd.DataFrame({"N": n, "D": d, "loss": chinchilla_loss(n, d) * noise}).to_csv(path, index=False)
    out = str(tmp_path / "r")
    proc = run("report", str(path), "--n", "N", "--d", "D", "--y", "loss", "-o", out, "--form", "chinchilla")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["law"]["form"] == "chinchilla"
    for name, value in TRUE_PARAMS.items():
        lower, upper = summary["law"]["ci"][name]
        assert lower <= value <= upper, (name, lower, upper)


def test_epochs_and_form_assumptions_are_read_for_the_verdict():
    from scalinglab.analysis import samples_per_datum
    from scalinglab.report.verdict import _form_assumptions

    final = pd.DataFrame({"samples_seen": [25_600.0, 51_200.0], "dataset_size": [400.0, 800.0]})
    assert samples_per_datum(final) == 64.0
    assert samples_per_datum(final.drop(columns="samples_seen")) == 1.0
    from scalinglab.fit.forms import get_form

    no_floor_shared = get_form("chinchilla_no_floor_shared")
    assert _form_assumptions(no_floor_shared) == "no floor, E = 0; one exponent for N and D, beta = alpha"
    assert _form_assumptions(get_form("chinchilla_floor=1.8")) == "the floor E = 1.8"
    assert _form_assumptions(get_form("chinchilla")) == _form_assumptions(get_form("kaplan")) == ""


def test_a_nested_law_s_refit_for_suggest_warns_once():
    """No floor in the data: auto picks a no-floor form, `suggest` refits the full chinchilla (E at its bound)
    and its warnings are said once, with the refit, not again as the suggestions' own."""
    n, d = (a.ravel() for a in np.meshgrid(np.geomspace(1e7, 1e9, 5), np.geomspace(1e9, 1e11, 4)))
    noise = np.exp(np.random.default_rng(2).normal(0, 0.003, n.size))
    obs = pd.DataFrame(
        {
            "run_id": np.arange(n.size).astype(str),
            "n_params": n,
            "dataset_size": d,
            "samples_seen": d,
            "steps": 1,
            "flops": 6 * n * d,
            "value": (300 / n**0.3 + 900 / d**0.3) * noise,
        }
    )
    result = analyse(obs, "nested", metric="loss", split=None, bootstrap=20)
    assert result.law.form_.name.startswith("chinchilla_no_floor")
    refit = [w for w in result.warnings if w.startswith("what to run next: ranks runs with the full chinchilla")]
    assert len(refit) == 1 and "E is at its lower bound" in refit[0]
    assert not any(w.startswith("what to run next: law: E is at its lower bound") for w in result.warnings)


def test_the_cost_interval_says_how_many_refits_it_used(analysis, monkeypatch):
    from scalinglab.report import verdict

    assert re.search(r"over \d+ (of the 30 )?bootstrap refits", verdict.cost_sentence(analysis))
    monkeypatch.setattr(verdict, "MAX_SAMPLES", 12)
    assert re.search(r"over \d+ of the 30 bootstrap refits", verdict.cost_sentence(analysis))
    assert "law's value at the best run" in verdict.cost_sentence(analysis)
