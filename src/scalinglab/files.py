"""Reading and writing the project's JSON files: atomic writes, and reads that fail in one line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from scalinglab.errors import UserError


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename it over `path` (atomic on POSIX)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def read_json(path: str | Path) -> Any:
    """The JSON value in `path`; a missing file or invalid JSON is a UserError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None
