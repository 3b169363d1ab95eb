"""Shared fixtures: paths to the reference data (skipping cleanly when it is absent), and a lock holder.

Under `pytest -n K --dist loadgroup` (`make test`) each module is one group, so its module fixtures are built
once, and every test marked `ray` joins one group, so no two Ray instances start at once."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        group = "ray" if item.get_closest_marker("ray") else item.module.__name__
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="session")
def chinchilla_csv() -> Path:
    path = SHARED_DATA / "chinchilla_epoch" / "svg_extracted_data.csv"
    if not path.is_file():
        pytest.skip(f"reference data not found at {path} (it lives beside the project, in ../shared/data)")
    return path


@pytest.fixture(scope="session")
def eth_ucy_root() -> Path:
    path = SHARED_DATA / "eth_ucy"
    if not (path / "eth" / "test").is_dir():
        pytest.skip(f"ETH/UCY data not found at {path} (it lives beside the project, in ../shared/data)")
    return path


@pytest.fixture(scope="session")
def av2_root() -> Path:
    path = SHARED_DATA / "av2_motion"
    if not (path / "val").is_dir():
        pytest.skip(f"AV2 scenario not found at {path} (it lives beside the project, in ../shared/data)")
    return path


# Holds a run's lock (writing its pid, as the runner does) until killed.
_HOLD_LOCK = """
import fcntl, os, sys, time

os.makedirs(sys.argv[1], exist_ok=True)
fd = os.open(os.path.join(sys.argv[1], "lock"), os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, str(os.getpid()).encode())
print("locked", flush=True)
time.sleep(120)
"""


@contextmanager
def _hold(run_dir: Path) -> Iterator[subprocess.Popen]:
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(run_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield holder
    finally:
        holder.kill()
        holder.wait()


@pytest.fixture
def lock_holder() -> Callable[[Path], AbstractContextManager[subprocess.Popen]]:
    """`with lock_holder(run_dir) as process:` another live process holds that run's lock until the block ends."""
    return _hold
