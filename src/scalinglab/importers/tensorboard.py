"""TensorBoard event files as observations: every folder holding event files is a run, its scalars per step.

Read with TensorBoard's own event reader. N and D come from hparams, text summaries or scalars of the run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from scalinglab.errors import UserError
from scalinglab.importers.common import TrackedRun, to_observations

EVENT_GLOB = "*tfevents*"


def _accumulator(path: Path):
    try:
        from tensorboard.backend.event_processing import event_accumulator as ea
    except ImportError:
        raise UserError("reading TensorBoard files needs tensorboard: pip install 'scalinglab[tensorboard]'") from None
    keep_all = {ea.SCALARS: 0, ea.TENSORS: 0, ea.HISTOGRAMS: 1, ea.IMAGES: 1, ea.AUDIO: 1, ea.COMPRESSED_HISTOGRAMS: 1}
    acc = ea.EventAccumulator(str(path), size_guidance=keep_all)
    try:
        acc.Reload()
    except Exception as exc:  # a truncated or foreign file: the reader raises its own types
        raise UserError(f"{path}: cannot be read as TensorBoard event files ({type(exc).__name__}: {exc})") from None
    return acc


def run_folders(logdir: Path) -> list[Path]:
    """The folders under `logdir` (itself included) that hold event files, in path order."""
    if not logdir.is_dir():
        raise UserError(f"{logdir}: no such folder")
    folders = sorted({p.parent for p in logdir.rglob(EVENT_GLOB) if p.is_file()})
    if not folders:
        raise UserError(f"{logdir}: no TensorBoard event files ({EVENT_GLOB}) in it or below it")
    return folders


def _read_folder(path: Path) -> tuple[dict[str, str], dict[str, list[tuple[float, float]]], bool]:
    """(params, scalar histories, whether the folder holds hparams) of one folder's event files."""
    from tensorboard.util import tensor_util

    acc = _accumulator(path)
    tags = acc.Tags()
    series = {tag: [(float(e.step), float(e.value)) for e in acc.Scalars(tag)] for tag in tags.get("scalars", [])}
    params: dict[str, str] = {}
    for tag in tags.get("tensors", []):
        plugin = acc.SummaryMetadata(tag).plugin_data.plugin_name
        events = acc.Tensors(tag)
        if not events:
            continue
        if plugin == "scalars":  # TF2-style scalars are stored as tensors
            series[tag] = [(float(e.step), float(tensor_util.make_ndarray(e.tensor_proto).item())) for e in events]
        elif plugin == "text":
            text = tensor_util.make_ndarray(events[-1].tensor_proto).flatten()
            value = text[0].decode("utf-8", "replace") if text.size and isinstance(text[0], bytes) else str(text)
            params[tag.removesuffix("/text_summary")] = value
    hparams = _hparams(acc)
    params.update(hparams)
    return params, series, bool(hparams)


def _hparams(acc) -> dict[str, str]:
    """The hparams plugin's values of a session (what `SummaryWriter.add_hparams` writes)."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    out: dict[str, str] = {}
    try:
        contents = acc.PluginTagToContent("hparams").values()
    except KeyError:  # no hparams in these files
        return out
    for content in contents:
        data = plugin_data_pb2.HParamsPluginData.FromString(content)
        if data.WhichOneof("data") != "session_start_info":
            continue
        for name, value in data.session_start_info.hparams.items():
            kind = value.WhichOneof("kind")
            if kind == "number_value":
                out[name] = repr(value.number_value)
            elif kind == "string_value":
                out[name] = value.string_value
            elif kind == "bool_value":
                out[name] = str(value.bool_value)
    return out


def read_tensorboard_runs(logdir: str | Path) -> list[TrackedRun]:
    """Every run under `logdir`; a sub-folder holding only hparams (as `add_hparams` writes) joins its parent."""
    logdir = Path(logdir)
    folders = run_folders(logdir)
    runs: dict[Path, TrackedRun] = {}
    for folder in folders:
        params, series, has_hparams = _read_folder(folder)
        parent = next((runs[p] for p in folder.parents if p in runs), None)
        if has_hparams and parent is not None:
            parent.params.update(params)  # its scalars are add_hparams' metric summary, not a curve
            continue
        name = folder.relative_to(logdir).as_posix()
        name = logdir.resolve().name if name == "." else name
        runs[folder] = TrackedRun(name, f"{logdir}: run '{name}'", params, series)
    return list(runs.values())


def import_tensorboard(
    logdir: str | Path,
    *,
    n: str | None = None,
    d: str | None = None,
    metrics: Sequence[str] | None = None,
    samples_seen: str | None = None,
    flops: str | None = None,
    split: str = "eval",
    runs_table: dict[str, dict[str, str]] | None = None,
) -> pd.DataFrame:
    """The observations table of the TensorBoard runs under `logdir` (run id: the folder's path below it)."""
    return to_observations(
        read_tensorboard_runs(logdir),
        source=str(logdir),
        n=n,
        d=d,
        metrics=metrics,
        samples_seen=samples_seen,
        flops=flops,
        split=split,
        runs_table=runs_table,
    )
