"""Importers: runs kept in experiment trackers (MLflow, TensorBoard, W&B exports) as the observations table.

Each returns a frame with the columns of `scalinglab.observations.SCHEMA`; `detect` tells a source's kind.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from scalinglab.errors import UserError

KINDS = ("mlflow", "tensorboard", "wandb")
_EXPORT_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl", ".parquet", ".pq")


def detect(source: str) -> str:
    """mlflow, tensorboard or wandb: a tracking URI or MLflow store folder, a folder of event files, a file."""
    scheme = urlparse(source).scheme
    if scheme and len(scheme) > 1 and scheme != "file":
        return "mlflow"
    path = Path(urlparse(source).path if scheme == "file" else source)
    if path.is_file() and path.suffix.lower() in _EXPORT_SUFFIXES:
        return "wandb"
    if path.is_dir():
        if scheme == "file" or any(path.glob("*/meta.yaml")) or (path / "meta.yaml").is_file():
            return "mlflow"
        if next(path.rglob("*tfevents*"), None) is not None:
            return "tensorboard"
        raise UserError(f"{source}: neither an MLflow store (no */meta.yaml) nor TensorBoard logs (no *tfevents*)")
    if not path.exists():
        raise UserError(f"{source}: no such file or folder")
    raise UserError(f"{source}: unknown source; give a tracking URI, a folder, or a .csv/.json export")
