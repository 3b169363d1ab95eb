"""Where a study's run folders (checkpoints) live: a local path or any URI pyarrow or fsspec opens.

`storage:` in the config (default: the study directory itself) names the root; run `<run_id>` keeps its
checkpoint under `<root>/runs/<run_id>/`. The same layer serves every executor, and Ray Train is handed the
same filesystem (`RunConfig(storage_path=..., storage_filesystem=...)`), so a run resumed on another machine
finds its checkpoints wherever they were written. The SQLite store never moves here: the driver alone writes
it, on its own disk. `SCALINGLAB_STORAGE` overrides the config's root (for a study whose checkpoints were
moved). Torch-free: bytes in, bytes out.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs

from scalinglab.errors import UserError

STORAGE_ENV = "SCALINGLAB_STORAGE"


def open_filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path inside it) for a local path or URI; schemes pyarrow lacks go through fsspec."""
    if "://" not in uri:
        return pafs.LocalFileSystem(), str(Path(uri).expanduser().resolve())
    try:
        fs, path = pafs.FileSystem.from_uri(uri)
    except OSError as exc:  # a bucket that cannot be reached, missing credentials
        raise UserError(f"storage '{uri}': cannot be opened ({' '.join(str(exc).split())})") from None
    except ValueError:  # ArrowInvalid: a scheme pyarrow does not know
        try:
            import fsspec
        except ImportError:
            raise UserError(f"storage '{uri}': pyarrow cannot open this URI and fsspec is not installed") from None
        try:
            spec_fs, path = fsspec.core.url_to_fs(uri)
        except (ImportError, ValueError) as exc:
            raise UserError(f"storage '{uri}': cannot be opened ({' '.join(str(exc).split())})") from None
        fs = pafs.PyFileSystem(pafs.FSSpecHandler(spec_fs))
    return fs, path.rstrip("/") or "/"


@dataclass(frozen=True)
class Folder:
    """A folder on a pyarrow filesystem; files are written whole (a kill leaves the old file or the new one)."""

    fs: pafs.FileSystem
    path: str

    @classmethod
    def at(cls, uri: str) -> Folder:
        return cls(*open_filesystem(uri))

    def child(self, *names: str) -> Folder:
        return Folder(self.fs, posixpath.join(self.path, *names))

    @property
    def local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    def describe(self, name: str | None = None) -> str:
        """The file's address as a person would write it (a plain path on the local disk)."""
        path = self.path if name is None else posixpath.join(self.path, name)
        if self.local:
            return path
        return f"{self.fs.type_name}://{path.lstrip('/')}" if self.fs.type_name != "py" else path

    def exists(self, name: str) -> bool:
        return self.fs.get_file_info(posixpath.join(self.path, name)).type == pafs.FileType.File

    def read(self, name: str) -> bytes:
        with self.fs.open_input_stream(posixpath.join(self.path, name)) as stream:
            return stream.read()

    def write(self, name: str, data: bytes) -> None:
        """Write `name` whole: on a local disk through a temporary file and a rename; an object store's
        upload is atomic by itself (the object appears only once it is complete)."""
        self.fs.create_dir(self.path, recursive=True)
        target = posixpath.join(self.path, name)
        if not self.local:
            with self.fs.open_output_stream(target) as stream:
                stream.write(data)
            return
        tmp = target + ".tmp"
        with self.fs.open_output_stream(tmp) as stream:
            stream.write(data)
        self.fs.move(tmp, target)

    def move(self, name: str, new_name: str) -> None:
        self.fs.move(posixpath.join(self.path, name), posixpath.join(self.path, new_name))


def run_folder(configured: str | None, run_dir: Path) -> Folder:
    """The folder of one run's checkpoints: `<root>/runs/<run_id>` with a storage root, else `run_dir` itself.

    `run_dir` is the run's folder in the study directory (`DIR/runs/<run_id>`), where its lock always stays.
    """
    root = os.environ.get(STORAGE_ENV) or configured
    if root is None:
        return Folder.at(str(run_dir))
    return Folder.at(root).child("runs", Path(run_dir).name)
