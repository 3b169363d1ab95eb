"""Shared fixtures: paths to the reference data, skipping cleanly when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


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
