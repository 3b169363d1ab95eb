"""Benchmark: importing the same sweep from an MLflow store, TensorBoard event files and a W&B export.

Writes R runs x S steps x 2 metrics with each tracker's own writer, imports each, checks the values
against what was written, and prints rows per second side by side (and the ratio to the W&B CSV).

    .venv/bin/python benchmarks/bench_import.py [--runs 40] [--steps 100]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def value(run: int, step: int, metric: int) -> float:
    return 2.0 + 1.0 / (run + 1) + 10.0 / (step + 1) + 0.1 * metric


def write_all(root: Path, runs: int, steps: int) -> dict[str, Path]:
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient
    from torch.utils.tensorboard import SummaryWriter

    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient((root / "mlruns").as_uri())
    experiment = client.create_experiment("bench")
    history = []
    for r in range(runs):
        params = {"n_params": 1e6 * (r + 1), "dataset_size": 1e8}
        run = client.create_run(experiment, run_name=f"run{r}").info.run_id
        metrics = [Metric(f"eval/m{m}", value(r, s, m), 0, s) for s in range(1, steps + 1) for m in range(2)]
        client.log_batch(run, params=[Param(k, str(v)) for k, v in params.items()])
        for i in range(0, len(metrics), 1000):
            client.log_batch(run, metrics=metrics[i : i + 1000])
        writer = SummaryWriter(str(root / "tb" / f"run{r}"))
        for s in range(1, steps + 1):
            for m in range(2):
                writer.add_scalar(f"eval/m{m}", value(r, s, m), s)
        writer.add_hparams(params, {})
        writer.close()
        history += [
            {"name": f"run{r}", "_step": s, **params, **{f"eval/m{m}": value(r, s, m) for m in range(2)}}
            for s in range(1, steps + 1)
        ]
    pd.DataFrame(history).to_csv(root / "history.csv", index=False)
    return {"mlflow": root / "mlruns", "tensorboard": root / "tb", "wandb": root / "history.csv"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    from scalinglab.importers.mlflow import import_mlflow
    from scalinglab.importers.tensorboard import import_tensorboard
    from scalinglab.importers.wandb import import_wandb

    readers = {"mlflow": import_mlflow, "tensorboard": import_tensorboard, "wandb": import_wandb}
    with tempfile.TemporaryDirectory() as tmp:
        sources = write_all(Path(tmp), args.runs, args.steps)
        seconds = {}
        for kind, read in readers.items():
            started = time.perf_counter()
            obs = read(sources[kind])
            seconds[kind] = time.perf_counter() - started
            keys = zip(obs.run_id, obs.steps, obs.metric, strict=True)
            expected = [value(int(r[3:]), int(s), int(m[1:])) for r, s, m in keys]
            error = float(np.max(np.abs(obs.value.to_numpy() - expected) / expected))
            assert len(obs) == args.runs * args.steps * 2 and error < 1e-6, (kind, len(obs), error)
        rows = args.runs * args.steps * 2
        print(f"{args.runs} runs x {args.steps} steps x 2 metrics = {rows} rows")
        for kind, secs in seconds.items():
            print(f"{kind:12s} {secs:7.2f} s  {rows / secs:9.0f} rows/s  {secs / seconds['wandb']:6.1f}x the W&B CSV")


if __name__ == "__main__":
    main()
