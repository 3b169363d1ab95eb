"""Live mirrors of a study's runs in TensorBoard and MLflow, fed by the driver's events (config `logging:`).

One tracker run per grid cell: params are model scale, data scale, N, D and seed; the training loss is logged
as it trains (`train/batch_loss`), and each observation row as `<split>/<metric>` at its step when the run ends.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scalinglab.errors import UserError
from scalinglab.study.config import StudyConfig
from scalinglab.study.records import Done, Event, Failed, Progress, RunResult, RunSpec, Started

LIVE_LOSS = "train/batch_loss"
RUN_TAG = "scalinglab.run_id"


def metric_key(row: dict) -> str:
    """The tracker's key of an observation row: `<split>/<metric>`, e.g. eval/minADE (importers split it back)."""
    return f"{row['split']}/{row['metric']}"


def run_params(spec: RunSpec, result: RunResult | None = None) -> dict[str, float | int]:
    """What a tracker records about a run: the grid cell, and N and D once the run has built them."""
    params: dict[str, float | int] = {"model_scale": spec.model_scale, "data_scale": spec.data_scale, "seed": spec.seed}
    params |= dict(spec.hparams)  # a search's trial: lr, batch_size, ... (the importers read them back)
    if result is not None:
        params |= {"n_params": result.n_params, "dataset_size": result.dataset_size}
    return params


def _under(study_dir: Path, location: str) -> Path:
    path = Path(location).expanduser()
    return path if path.is_absolute() else study_dir / path


class TensorBoardSink:
    """An event-file folder per run under `logdir`, named by the run id; hparams written when the run ends."""

    def __init__(self, logdir: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise UserError("logging.tensorboard needs tensorboard: pip install 'scalinglab[tensorboard]'") from None
        self._writer_class = SummaryWriter
        self.logdir = logdir
        self.writers: dict[str, Any] = {}

    def _writer(self, run_id: str):
        if run_id not in self.writers:
            self.writers[run_id] = self._writer_class(str(self.logdir / run_id))
        return self.writers[run_id]

    def start(self, spec: RunSpec) -> None:
        self._writer(spec.run_id)

    def progress(self, run_id: str, step: int, loss: float) -> None:
        self._writer(run_id).add_scalar(LIVE_LOSS, loss, step)

    def done(self, spec: RunSpec, result: RunResult) -> None:
        from torch.utils.tensorboard.summary import hparams

        writer = self._writer(spec.run_id)
        for row in result.rows:
            writer.add_scalar(metric_key(row), float(row["value"]), int(row["steps"]))
            writer.add_scalar("samples_seen", float(row["samples_seen"]), int(row["steps"]))
            writer.add_scalar("flops", float(row["flops"]), int(row["steps"]))
        for summary in hparams(run_params(spec, result), {}):
            writer.file_writer.add_summary(summary)
        self.end(spec.run_id)

    def end(self, run_id: str, failed: bool = False) -> None:
        writer = self.writers.pop(run_id, None)
        if writer is not None:
            writer.close()

    def close(self) -> None:
        for run_id in list(self.writers):
            self.end(run_id)


class MlflowSink:
    """An MLflow run per grid cell in one experiment; a resumed study goes on in the cell's earlier run."""

    def __init__(self, tracking_uri: str, experiment: str) -> None:
        from scalinglab.importers.mlflow import client

        if "://" not in tracking_uri and not tracking_uri.startswith(("databricks", "file:")):
            Path(tracking_uri).mkdir(parents=True, exist_ok=True)
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow asks for this for folder stores
            tracking_uri = Path(tracking_uri).resolve().as_uri()
        self.client = client(tracking_uri)
        from mlflow.exceptions import MlflowException

        try:
            found = self.client.get_experiment_by_name(experiment)
            self.experiment_id = found.experiment_id if found else self.client.create_experiment(experiment)
        except MlflowException as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(f"logging.mlflow: {tracking_uri}: {first}") from None
        self.runs: dict[str, str] = {}

    def _run(self, spec: RunSpec) -> str:
        if spec.run_id not in self.runs:
            earlier = self.client.search_runs(
                [self.experiment_id], filter_string=f"tags.\"{RUN_TAG}\" = '{spec.run_id}'", max_results=1
            )
            if earlier:
                self.runs[spec.run_id] = earlier[0].info.run_id
            else:
                run = self.client.create_run(self.experiment_id, run_name=spec.run_id, tags={RUN_TAG: spec.run_id})
                self.runs[spec.run_id] = run.info.run_id
        return self.runs[spec.run_id]

    def start(self, spec: RunSpec) -> None:
        from mlflow.entities import Param

        run = self._run(spec)
        self.client.log_batch(run, params=[Param(k, str(v)) for k, v in run_params(spec).items()])
        self.client.update_run(run, status="RUNNING")

    def progress(self, run_id: str, step: int, loss: float) -> None:
        if run_id in self.runs:
            self.client.log_metric(self.runs[run_id], LIVE_LOSS, loss, step=step)

    def done(self, spec: RunSpec, result: RunResult) -> None:
        from mlflow.entities import Metric, Param

        run = self._run(spec)
        now = int(time.time() * 1000)
        metrics = []
        for row in result.rows:
            step = int(row["steps"])
            metrics.append(Metric(metric_key(row), float(row["value"]), now, step))
            metrics += [Metric("samples_seen", float(row["samples_seen"]), now, step)]
            metrics += [Metric("flops", float(row["flops"]), now, step)]
        extra = {k: v for k, v in run_params(spec, result).items() if k in ("n_params", "dataset_size")}
        self.client.log_batch(run, params=[Param(k, str(v)) for k, v in extra.items()])
        for i in range(0, len(metrics), 1000):  # MLflow takes at most 1000 metrics a batch
            self.client.log_batch(run, metrics=metrics[i : i + 1000])
        self.end(spec.run_id)

    def end(self, run_id: str, failed: bool = False) -> None:
        run = self.runs.pop(run_id, None)
        if run is not None:
            self.client.set_terminated(run, status="FAILED" if failed else "FINISHED")

    def close(self) -> None:
        for run_id in list(self.runs):
            self.client.update_run(self.runs.pop(run_id), status="KILLED")  # left unfinished; a resume goes on


class Tracker:
    """Feeds the driver's events to the configured sinks; a no-op when the config's `logging:` is empty.

    A sink that fails mid-study is switched off with one warning: mirroring never stops the training.
    """

    def __init__(self, config: StudyConfig, study_dir: str | Path, specs: Sequence[RunSpec]) -> None:
        study_dir = Path(study_dir)
        self.specs = {spec.run_id: spec for spec in specs}
        self.sinks: list[Any] = []
        self.last_loss: dict[str, tuple[int, float]] = {}
        settings = config.logging
        if settings.tensorboard is not None:
            self.sinks.append(TensorBoardSink(_under(study_dir, settings.tensorboard)))
        if settings.mlflow is not None:
            uri = settings.mlflow.tracking_uri
            if "://" not in uri and not uri.startswith(("databricks", "file:")):
                uri = str(_under(study_dir, uri))
            self.sinks.append(MlflowSink(uri, settings.mlflow.experiment or config.name))

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __call__(self, event: Event) -> None:
        if not self.sinks or event.run_id not in self.specs:
            return
        spec = self.specs[event.run_id]
        if isinstance(event, Progress):
            if not math.isfinite(event.loss) or self.last_loss.get(spec.run_id, (None, None))[1] == event.loss:
                return  # the loop re-reports the last loss it read between reads
            self.last_loss[spec.run_id] = (event.step, event.loss)
        for sink in list(self.sinks):
            try:
                if isinstance(event, Started):
                    sink.start(spec)
                elif isinstance(event, Progress):
                    sink.progress(spec.run_id, event.step, event.loss)
                elif isinstance(event, Done):
                    sink.done(spec, event.result)
                elif isinstance(event, Failed):
                    sink.end(spec.run_id, failed=True)
            except Exception as exc:  # a tracker's own errors (network, disk) vary by backend
                self.sinks.remove(sink)
                name = type(sink).__name__.removesuffix("Sink")
                warnings.warn(f"logging to {name} stopped: {type(exc).__name__}: {exc}", stacklevel=2)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
        self.sinks = []
