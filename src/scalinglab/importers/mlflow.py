"""Runs of MLflow experiments, read through the MLflow client from any tracking URI, as observations.

N and D come from each run's params or tags; every metric history is a curve of checkpoints (its steps).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd

from scalinglab.errors import UserError
from scalinglab.importers.common import TrackedRun, to_observations


def tracking_uri(source: str | Path) -> str:
    """A tracking URI as MLflow takes it: a local folder becomes a file:// URI (it must exist)."""
    text = str(source)
    scheme = urlparse(text).scheme
    if scheme and len(scheme) > 1 and scheme != "file":  # http(s), databricks, sqlite, postgresql, ...
        return text
    path = Path(urlparse(text).path if scheme == "file" else text)
    if not path.is_dir():
        raise UserError(f"{source}: no such MLflow store folder")
    # MLflow keeps reading and writing local folder stores, but refuses them unless asked to.
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return path.resolve().as_uri()


def client(uri: str):  # -> mlflow.tracking.MlflowClient
    """An MLflow client for `uri`; a missing mlflow package is a UserError saying what to install."""
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise UserError("reading MLflow needs the mlflow client: pip install 'scalinglab[mlflow]'") from None
    return MlflowClient(tracking_uri=uri)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def read_mlflow_runs(
    source: str | Path, experiments: Sequence[str] | None = None, filter_string: str = ""
) -> list[TrackedRun]:
    """The runs of the named experiments (names or ids; all experiments when none) with their histories."""
    uri = tracking_uri(source)
    mlflow_client = client(uri)
    from mlflow.exceptions import MlflowException

    try:
        chosen = _experiments(mlflow_client, source, experiments)
        runs: list[tuple[TrackedRun, str]] = []
        for experiment in chosen:
            token = None
            while True:
                page = mlflow_client.search_runs(
                    [experiment.experiment_id], filter_string=filter_string, max_results=1000, page_token=token
                )
                for run in page:
                    runs.append((_tracked(mlflow_client, source, experiment.name, run), run.info.run_id))
                token = page.token
                if not token:
                    break
    except MlflowException as exc:
        raise UserError(f"{source}: {_first_line(exc)}") from None
    names = [r.name for r, _ in runs]
    for run, run_id in runs:  # run names are not unique in MLflow; the run id tells repeats apart
        if names.count(run.name) > 1:
            run.name = f"{run.name}-{run_id[:8]}"
    return [run for run, _ in runs]


def _experiments(mlflow_client, source: str | Path, wanted: Sequence[str] | None) -> list:
    every = mlflow_client.search_experiments()
    if not wanted:
        return [e for e in every if e.name != "Default" or mlflow_client.search_runs([e.experiment_id], max_results=1)]
    chosen = []
    for name in wanted:
        match = [e for e in every if name in (e.name, e.experiment_id)]
        if not match:
            listed = ", ".join(f"'{e.name}'" for e in every) or "none"
            raise UserError(f"{source}: no experiment '{name}'; experiments are {listed}")
        chosen.append(match[0])
    return chosen


def _tracked(mlflow_client, source: str | Path, experiment: str, run) -> TrackedRun:
    name = run.info.run_name or run.info.run_id
    tags = {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}
    params = {**tags, **run.data.params}
    series = {
        key: [(float(m.step), float(m.value)) for m in mlflow_client.get_metric_history(run.info.run_id, key)]
        for key in run.data.metrics
    }
    return TrackedRun(name, f"{source}: experiment '{experiment}', run '{name}'", params, series)


def import_mlflow(
    source: str | Path,
    experiments: Sequence[str] | None = None,
    *,
    filter_string: str = "",
    n: str | None = None,
    d: str | None = None,
    metrics: Sequence[str] | None = None,
    samples_seen: str | None = None,
    flops: str | None = None,
    split: str = "eval",
    runs_table: dict[str, dict[str, str]] | None = None,
) -> pd.DataFrame:
    """The observations table of MLflow runs: `source` is a tracking URI or a local store folder.

    `experiments` are names or ids (all when None); `filter_string` is MLflow's run filter
    (e.g. "attributes.status = 'FINISHED'"). N and D are params or tags (`n`, `d`; see `to_observations`).
    """
    runs = read_mlflow_runs(source, experiments, filter_string)
    return to_observations(
        runs,
        source=str(source),
        n=n,
        d=d,
        metrics=metrics,
        samples_seen=samples_seen,
        flops=flops,
        split=split,
        runs_table=runs_table,
    )
