"""The study commands as a user runs them: real processes, one-line errors, killed drivers, locks, Ray addresses."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.slow  # every test here runs the CLI in a fresh process

TINY = {
    "name": "tiny",
    "task": "toy",
    "task_options": {"base_samples": 64, "eval_samples": 64},
    "model_scales": [1, 2],
    "data_scales": [1],
    "budget": {"steps": 8},
    "batch_size": 32,
    "eval_every": 4,
}


def cli(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "scalinglab", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    """The single stderr line of a user error (exit code 2); fails on a traceback or a second line."""
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def write_config(path: Path, **overrides) -> Path:
    path.write_text(yaml.safe_dump({**TINY, **overrides}))
    return path


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory) -> Path:
    """A finished two-run study, trained once through the CLI; tests copy it."""
    root = tmp_path_factory.mktemp("tiny")
    proc = cli("study", "run", str(write_config(root / "tiny.yaml")), "-o", str(root / "study"))
    assert proc.returncode == 0, proc.stderr
    return root / "study"


def copy_study(source: Path, tmp_path: Path) -> Path:
    target = tmp_path / "study"
    shutil.copytree(source, target)
    return target


def query(directory: Path, sql: str, *args) -> list[tuple]:
    with sqlite3.connect(directory / "study.sqlite") as conn:
        return conn.execute(sql, args).fetchall()


def eval_curve(directory: Path, run_id: str) -> pd.DataFrame:
    with sqlite3.connect(directory / "study.sqlite") as conn:
        obs = pd.read_sql_query(
            "SELECT * FROM observations WHERE run_id = ? ORDER BY steps, split, metric", conn, params=(run_id,)
        )
    return obs.drop(columns="wall_time").reset_index(drop=True)


# --- reading a study is cheap -------------------------------------------------------------------------


@pytest.mark.slow
def test_reading_a_study_never_imports_torch(tiny_study, tmp_path):
    for modules in ("scalinglab.study.store, scalinglab.study.runner", "scalinglab.cli.main"):
        code = f"import {modules}; import sys; assert 'torch' not in sys.modules"
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
    # the status and export commands, run in one process to the end, leave torch unloaded
    status = ["study", "status", str(tiny_study)]
    export = ["study", "export", str(tiny_study), "-o", str(tmp_path / "o.csv")]
    code = f"""
import sys
from scalinglab.cli.main import app
for args in ({status!r}, {export!r}):
    try:
        app(args)
    except SystemExit as exc:
        assert exc.code in (0, None), exc.code
assert "torch" not in sys.modules, "torch was imported"
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert len(pd.read_csv(tmp_path / "o.csv")) == len(query(tiny_study, "SELECT * FROM observations"))


# --- runs that fail, checkpoints that do not load -------------------------------------------------------


@pytest.mark.slow
def test_status_shows_a_failed_run(tmp_path):
    directory = tmp_path / "study"
    (directory / "runs").mkdir(parents=True)
    (directory / "runs" / "m2-d1-s0").write_text("a file where the run's folder goes")  # the run cannot start
    proc = cli("study", "run", str(write_config(tmp_path / "c.yaml")), "-o", str(directory))
    assert proc.returncode == 0, proc.stderr
    assert "run m2-d1-s0 failed: FileExistsError" in proc.stderr
    status = cli("study", "status", str(directory))
    assert status.returncode == 0, status.stderr
    assert "Traceback" not in status.stderr
    assert "FileExistsError" in status.stdout and "failed" in status.stdout
    assert f"study {directory}: 1 done, 1 failed" in " ".join(status.stdout.split())


@pytest.mark.slow
def test_a_corrupt_checkpoint_is_set_aside_and_the_run_completes(tiny_study, tmp_path):
    directory = copy_study(tiny_study, tmp_path)
    before = {run_id: eval_curve(directory, run_id) for run_id in ("m1-d1-s0", "m2-d1-s0")}
    # m1 was interrupted and its checkpoint holds garbage; m2 failed and its checkpoint is cut short
    garbage = os.urandom(3000)
    (directory / "runs" / "m1-d1-s0" / "checkpoint.pt").write_bytes(garbage)
    ckpt = directory / "runs" / "m2-d1-s0" / "checkpoint.pt"
    truncated = ckpt.read_bytes()[:500]
    ckpt.write_bytes(truncated)
    with sqlite3.connect(directory / "study.sqlite") as conn:
        conn.execute("UPDATE runs SET status = 'running' WHERE run_id = 'm1-d1-s0'")
        conn.execute("UPDATE runs SET status = 'failed', error = 'killed' WHERE run_id = 'm2-d1-s0'")
    proc = cli("study", "resume", str(directory), "--retry-failed")
    assert proc.returncode == 0, proc.stderr
    notices = [line for line in proc.stderr.splitlines() if "could not be loaded" in line]
    assert len(notices) == 2, proc.stderr
    for run_id in ("m1-d1-s0", "m2-d1-s0"):
        (line,) = [n for n in notices if n.startswith(f"run {run_id}: ")]
        assert "not a readable checkpoint" in line and "moved to checkpoint.pt.corrupt, training from step 0" in line
        assert "weights_only" not in line
        pd.testing.assert_frame_equal(eval_curve(directory, run_id), before[run_id])  # trained again, the same
    assert (directory / "runs" / "m1-d1-s0" / "checkpoint.pt.corrupt").read_bytes() == garbage
    assert (directory / "runs" / "m2-d1-s0" / "checkpoint.pt.corrupt").read_bytes() == truncated
    assert query(directory, "SELECT DISTINCT status FROM runs") == [("done",)]
    assert query(directory, "SELECT resumed_from_step FROM runs") == [(0,), (0,)]


# --- worker lifetime and the run lock ------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")  # a zombie has exited; only its parent's reaping is left


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")
def test_workers_die_with_the_driver_and_a_resume_completes(tmp_path):
    cfg = write_config(
        tmp_path / "c.yaml", model_scales=[1, 2, 4], data_scales=[1, 2], budget={"steps": 300}, eval_every=20
    )
    directory = tmp_path / "study"
    with open(tmp_path / "driver.err", "w") as err:
        driver = subprocess.Popen(
            [sys.executable, "-m", "scalinglab", "study", "run", str(cfg), "-o", str(directory), "--workers", "2"],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    deadline, workers = time.time() + 180, []
    while time.time() < deadline and not workers:
        time.sleep(0.2)
        try:
            landed = query(directory, "SELECT count(*) FROM observations")[0][0]
            running = query(directory, "SELECT count(*) FROM runs WHERE status = 'running'")[0][0]
        except sqlite3.OperationalError:  # not created yet
            continue
        if landed and running:
            workers = [pid for pid in _children(driver.pid) if _alive(pid)]
    assert driver.poll() is None and workers, (tmp_path / "driver.err").read_text()
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    deadline = time.time() + 10
    while time.time() < deadline and any(_alive(pid) for pid in workers):
        time.sleep(0.1)
    assert not [pid for pid in workers if _alive(pid)], "worker processes outlived the killed driver"

    proc = cli("study", "resume", str(directory), "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    assert "skipped" not in proc.stderr  # no live worker held a run
    assert query(directory, "SELECT DISTINCT status FROM runs") == [("done",)]
    curves = query(
        directory, "SELECT run_id, count(*) FROM observations WHERE metric = 'loss' AND split = 'eval' GROUP BY run_id"
    )
    assert sorted(n for _, n in curves) == [15] * 6  # every run once: steps 20, 40, ..., 300


@pytest.mark.slow
def test_a_run_locked_by_a_live_process_is_skipped_with_a_notice(tmp_path, lock_holder):
    directory = tmp_path / "study"
    with lock_holder(directory / "runs" / "m1-d1-s0") as holder:
        proc = cli("study", "run", str(write_config(tmp_path / "c.yaml")), "-o", str(directory))
        assert proc.returncode == 0, proc.stderr
        (line,) = [line for line in proc.stderr.splitlines() if "skipped" in line]
        assert line.startswith("run m1-d1-s0 skipped: ") and f"held by process {holder.pid}" in line
        assert dict(query(directory, "SELECT run_id, status FROM runs")) == {"m1-d1-s0": "pending", "m2-d1-s0": "done"}
        assert query(directory, "SELECT attempts FROM runs WHERE run_id = 'm1-d1-s0'") == [(0,)]
        assert not (directory / "runs" / "m1-d1-s0" / "checkpoint.pt").exists()
    proc = cli("study", "resume", str(directory))
    assert proc.returncode == 0, proc.stderr
    assert dict(query(directory, "SELECT run_id, attempts FROM runs WHERE status = 'done'")) == {
        "m1-d1-s0": 1,
        "m2-d1-s0": 1,
    }


# --- Ray addresses ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        (["--address", "not an address"], {}, "--address: 'not an address' is not a Ray address"),
        (["--address", "127.0.0.1:99999"], {}, "--address: '127.0.0.1:99999' is not a Ray address"),
        ([], {"RAY_ADDRESS": "localhost"}, "RAY_ADDRESS: 'localhost' is not a Ray address"),
        (["--ray-timeout", "0"], {}, "--ray-timeout must be > 0"),
    ],
)
def test_a_malformed_ray_address_is_one_line_and_creates_nothing(tmp_path, args, env, needle):
    proc = cli(
        "study",
        "run",
        str(write_config(tmp_path / "c.yaml")),
        "-o",
        str(tmp_path / "s"),
        "--executor",
        "ray",
        *args,
        env=env,
    )
    one_line_error(proc, needle)
    assert not (tmp_path / "s").exists()


@pytest.mark.slow
def test_an_unreachable_ray_cluster_fails_within_the_timeout(tiny_study, tmp_path):
    pytest.importorskip("ray")
    cfg = str(write_config(tmp_path / "c.yaml"))
    started = time.monotonic()
    proc = cli("study", "run", cfg, "-o", str(tmp_path / "a"), "--executor", "ray", "--address", "127.0.0.1:1")
    one_line_error(proc, "Ray at 127.0.0.1:1 cannot be reached")
    assert not (tmp_path / "a").exists()  # nothing was created
    directory = copy_study(tiny_study, tmp_path)
    database = (directory / "study.sqlite").read_bytes()
    proc = cli("study", "resume", str(directory), "--executor", "ray", "--address", "127.0.0.1:1")
    one_line_error(proc, "Ray at 127.0.0.1:1 cannot be reached")
    assert (directory / "study.sqlite").read_bytes() == database  # a resume that cannot start changes nothing
    # a port that accepts connections but never answers as Ray would: the connect timeout ends it
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        proc = cli(
            "study",
            "run",
            cfg,
            "-o",
            str(tmp_path / "b"),
            "--executor",
            "ray",
            env={"RAY_ADDRESS": address, "SCALINGLAB_RAY_TIMEOUT": "3"},
        )
    one_line_error(proc, f"Ray at {address}: no answer within 3 s")
    assert not (tmp_path / "b").exists()
    assert time.monotonic() - started < 60


# --- one-line errors instead of tracebacks ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (b"name: t\xe9st\ntask: toy\n", "not UTF-8 text (byte 8, line 1)"),
        (b"name: a\ntask: toy\nname: b\n", "key 'name' is given twice (line 3)"),
        (b"task: toy\noptimizer:\n  lr: 0.1\n  lr: 0.2\n", "key 'lr' is given twice (line 4)"),
        (b"task: toy\nmodel_scales: [1X, .inf]\n", "key 'model_scales': inf is not a finite positive multiplier"),
        (b"task: toy\nmodel_scales: [1X]\ndata_scales: [-1]\n", "key 'data_scales': -1 is not a finite positive"),
    ],
    ids=["not-utf8", "duplicate-key", "duplicate-nested-key", "inf-scale", "negative-scale"],
)
def test_config_file_errors_are_one_line(tmp_path, text, needle):
    path = tmp_path / "study.yaml"
    path.write_bytes(text)
    proc = cli("study", "run", str(path), "-o", str(tmp_path / "s"))
    one_line_error(proc, f"error: {path}: {needle}")
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--executor", "dask"], "--executor must be local or ray, not 'dask'"),
        (["--workers", "0"], "--workers must be >= 1, got 0"),
        (["--address", "127.0.0.1:6379"], "--address is for --executor ray"),
    ],
)
def test_bad_executor_options_create_nothing(tmp_path, args, needle):
    proc = cli("study", "run", str(write_config(tmp_path / "c.yaml")), "-o", str(tmp_path / "s"), *args)
    one_line_error(proc, needle)
    assert not (tmp_path / "s").exists()


def test_export_creates_a_missing_folder(tiny_study, tmp_path):
    output = tmp_path / "new" / "deeper" / "obs.parquet"
    proc = cli("study", "export", str(tiny_study), "-o", str(output))
    assert proc.returncode == 0, proc.stderr
    assert len(pd.read_parquet(output)) == len(query(tiny_study, "SELECT * FROM observations"))
    (tmp_path / "afile").write_text("x")
    one_line_error(
        cli("study", "export", str(tiny_study), "-o", str(tmp_path / "afile" / "obs.csv")),
        f"{tmp_path / 'afile' / 'obs.csv'}: cannot create the folder {tmp_path / 'afile'}",
    )


@pytest.mark.parametrize("command", ["status", "export", "resume", "run"])
def test_a_garbage_database_is_one_line_and_left_as_it_is(tmp_path, command):
    directory = tmp_path / "study"
    directory.mkdir()
    garbage = os.urandom(4096)
    (directory / "study.sqlite").write_bytes(garbage)
    args = {
        "status": ["status", str(directory)],
        "export": ["export", str(directory), "-o", str(tmp_path / "o.csv")],
        "resume": ["resume", str(directory)],
        "run": ["run", str(write_config(tmp_path / "c.yaml")), "-o", str(directory)],
    }[command]
    one_line_error(cli("study", *args), f"error: {directory / 'study.sqlite'}: not a study database")
    assert (directory / "study.sqlite").read_bytes() == garbage
    assert not (tmp_path / "o.csv").exists()


def test_run_resume_and_export_print_json_on_stdout(tiny_study, tmp_path):
    study = copy_study(tiny_study, tmp_path)
    resumed = cli("study", "resume", str(study), "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout) == {"directory": str(study), "counts": {"done": 2}}
    exported = cli("study", "export", str(study), "-o", str(tmp_path / "obs.csv"), "--json")
    assert exported.returncode == 0, exported.stderr
    rows = len(query(study, "SELECT * FROM observations"))
    assert json.loads(exported.stdout) == {"output": str(tmp_path / "obs.csv"), "rows": rows}
