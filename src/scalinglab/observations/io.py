"""Reading and writing observations tables (CSV, TSV, parquet): atomic writes, reads that fail in one line."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pandas as pd

from scalinglab.errors import UserError
from scalinglab.observations.schema import SCHEMA

_PANDAS_DTYPES = {"string": "string", "float": "float64", "int": "int64", "bool": "bool"}


def empty_observations() -> pd.DataFrame:
    """An observations table with the schema's columns and no rows."""
    return pd.DataFrame({name: pd.Series(dtype=_PANDAS_DTYPES[kind]) for name, (kind, _) in SCHEMA.items()})


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV or parquet file as it is; a file that cannot be read is a UserError naming it."""
    path = Path(path)
    if path.is_dir():
        hint = (
            "a study folder: `scalinglab report` reads it, `scalinglab study export` writes its table"
            if (path / "study.sqlite").is_file()
            else "a folder, not a table file"
        )
        raise UserError(f"{path}: {hint}")
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".csv", ".txt", ".tsv"):
            return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path}: cannot be read as {suffix[1:]}: {first}") from None
    raise UserError(f"{path}: unknown file type '{suffix}'; use .csv, .tsv or .parquet")


def write_table(frame: pd.DataFrame, output: str | Path) -> None:
    """Write a table as CSV or parquet (by suffix), atomically; a file that cannot be written is a UserError."""
    output = Path(output)
    suffix = output.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise UserError(f"{output}: unknown file type '{suffix}'; use .csv or .parquet")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        why = "a file is in the way" if isinstance(exc, (FileExistsError, NotADirectoryError)) else exc.strerror
        raise UserError(f"{output}: cannot create the folder {output.parent} ({why})") from None
    tmp = output.with_name(output.name + ".tmp")
    try:
        if suffix == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
        tmp.replace(output)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise UserError(f"{output}: cannot be written ({exc.strerror or exc})") from None
