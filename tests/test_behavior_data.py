"""The three trajectory sources: ETH/UCY and AV2 loaders (hand-made files and the real data), synthetic traffic."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from scalinglab.behavior.av2 import load_av2, load_av2_scenario
from scalinglab.behavior.eth_ucy import load_eth_ucy, read_scene_file
from scalinglab.behavior.sample import AGENT_TYPES, POLYLINE_TYPES
from scalinglab.behavior.synthetic import SyntheticOptions, simulate_chunk, synthetic_traffic
from scalinglab.errors import UserError


def write_scene(path, tracks):
    """tracks: agent -> list of (frame, x, y)."""
    lines = [f"{f}\t{a}\t{x}\t{y}" for a, rows in tracks.items() for f, x, y in rows]
    path.write_text("\n".join(sorted(lines, key=lambda line: float(line.split()[0]))) + "\n")


def test_eth_ucy_windows_targets_and_coordinates(tmp_path):
    folder = tmp_path / "eth" / "test"
    folder.mkdir(parents=True)
    # Agent 1 walks along +y at 1 m per frame for 21 frames: two 20-frame windows.
    # Agent 2 stands at (4, 0) for frames 0..7 only: never a target, a neighbour in both windows.
    write_scene(
        folder / "scene.txt",
        {1: [(10 * k, 3.0, float(k)) for k in range(21)], 2: [(10 * k, 4.0, 0.0) for k in range(8)]},
    )
    data = load_eth_ucy(tmp_path, "eth", "test")
    assert len(data) == 2
    # Target-centric: last observed position at the origin, heading (+y in the world) along +x.
    torch.testing.assert_close(data.agents[0, 0, -1], torch.zeros(2))
    torch.testing.assert_close(data.agents[0, 0, 0], torch.tensor([-7.0, 0.0]))
    torch.testing.assert_close(data.future[0], torch.stack([torch.arange(1.0, 13.0), torch.zeros(12)], -1))
    # Agent 2 in the first window: (4, 0) in the world is (1, -7) from the target at (3, 7); rotated so
    # that +y becomes +x, that is 7 m behind and 1 m to the right.
    assert data.agent_valid[0, 1].tolist() == [True] * 8
    torch.testing.assert_close(data.agents[0, 1, -1], torch.tensor([-7.0, -1.0]))
    assert data.agent_valid[1, 1].tolist() == [True] * 7 + [False]  # gone at the second window's last frame
    torch.testing.assert_close(data.agents[1, 1, -1], torch.zeros(2))  # unobserved steps are zeros
    assert (data.agent_type[:, :2] == AGENT_TYPES["pedestrian"]).all()
    assert data.polylines.shape[1] == 0


def test_eth_ucy_bad_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("0\t1\t1.0\t2.0\n10\t1\tx\t2.0\n")
    with pytest.raises(UserError, match=r"bad.txt: line 2: .* is not four numbers"):
        read_scene_file(path)
    path.write_text("0\t1\t1.0\n")
    with pytest.raises(UserError, match=r"bad.txt: line 1: expected 4 fields"):
        read_scene_file(path)
    with pytest.raises(UserError, match="no ETH/UCY scene files"):
        load_eth_ucy(tmp_path, "hotel", "train")


def test_eth_ucy_real_splits(eth_ucy_root):
    data = load_eth_ucy(eth_ucy_root, "zara1", "test")
    assert len(data) > 1000
    assert data.history == 8 and data.horizon == 12
    assert data.agent_valid[:, 0].all()  # targets are observed in every frame
    torch.testing.assert_close(data.agents[:, 0, -1], torch.zeros(len(data), 2))
    speed = (data.future[:, 1:] - data.future[:, :-1]).norm(dim=-1) / 0.4
    assert speed.median() < 2.5  # pedestrians, in metres per second


def test_av2_real_scenario(av2_root):
    folder = next((av2_root / "val").iterdir())
    data = load_av2_scenario(folder, history=50, horizon=60)
    frame = pd.read_parquet(next(folder.glob("scenario_*.parquet")))
    focal = frame[frame.track_id == frame.focal_track_id.iloc[0]].set_index("timestep")
    world = focal[["position_x", "position_y"]].to_numpy()
    # Distances from the last observed position are preserved by the target-centric frame.
    expected = np.linalg.norm(world[50:110] - world[49], axis=1)
    np.testing.assert_allclose(data.future[0].norm(dim=-1).numpy(), expected, atol=1e-4)
    np.testing.assert_allclose(
        data.agents[0, 0].norm(dim=-1).numpy(), np.linalg.norm(world[:50] - world[49], axis=1), atol=1e-4
    )
    assert data.future[0, -1, 0] > 0  # it drives forward, along +x
    assert data.agent_valid[0, 1:].any(dim=1).sum() > 5  # neighbours
    types = set(data.polyline_type[0, data.polyline_valid[0].any(1)].tolist())
    assert {POLYLINE_TYPES["lane"], POLYLINE_TYPES["connector"]} <= types
    short = load_av2(av2_root, "val", history=20, horizon=30)
    torch.testing.assert_close(short.future[0], data.future[0, :30])
    torch.testing.assert_close(short.agents[0, 0], data.agents[0, 0, 30:])


def test_av2_errors(tmp_path, av2_root):
    folder = tmp_path / "val" / "abc"
    folder.mkdir(parents=True)
    with pytest.raises(UserError, match="no scenario_.*parquet"):
        load_av2_scenario(folder)
    source = next((av2_root / "val").iterdir())
    frame = pd.read_parquet(next(source.glob("scenario_*.parquet"))).drop(columns=["position_y"])
    frame.to_parquet(folder / "scenario_abc.parquet")
    (folder / "log_map_archive_abc.json").write_text("{}")
    with pytest.raises(UserError, match="missing column 'position_y'"):
        load_av2_scenario(folder)


def test_synthetic_traffic_is_deterministic_and_nested():
    options = SyntheticOptions(history=10, horizon=15)
    small = synthetic_traffic(options, 40, seed=3)
    large = synthetic_traffic(options, 300, seed=3)
    torch.testing.assert_close(large.subset(slice(0, 40)).agents, small.agents)
    torch.testing.assert_close(large.subset(slice(0, 40)).future, small.future)
    other = synthetic_traffic(options, 40, seed=4)
    assert not torch.allclose(other.future, small.future)


def test_scenes_per_layout_sets_the_chunk_and_keeps_data_nested():
    options = SyntheticOptions(history=5, horizon=5, scenes_per_layout=8)
    data = synthetic_traffic(options, 30, seed=3)
    parts, have = [], 0
    while have < 30:  # chunk c: the scenes simulated on layout c, at most 8
        parts.append(simulate_chunk(options, seed=3, chunk=len(parts)))
        assert 0 < len(parts[-1]) <= 8
        have += len(parts[-1])
    assert len(parts) >= 4  # 30 scenes span at least 4 layouts, against 1 at the default 256 a layout
    expected = torch.cat([p.future for p in parts])[:30]
    torch.testing.assert_close(data.future, expected)
    torch.testing.assert_close(synthetic_traffic(options, 12, seed=3).future, data.future[:12])


def test_synthetic_traffic_is_physical_and_multimodal():
    data = simulate_chunk(SyntheticOptions(history=20, horizon=30), seed=0, chunk=0)
    assert len(data) > 200
    steps = torch.cat([data.agents[:, 0, -1:], data.future], dim=1).diff(dim=1).norm(dim=-1) / 0.1
    assert steps.max() < 20.0  # m/s: no jumps
    accel = steps.diff(dim=1).abs() / 0.1
    assert accel.quantile(0.99) < 9.0
    end = data.future[:, -1]
    # Futures differ in kind: left turns, right turns, straight on, and cars that stop.
    assert (end[:, 1] > 3).sum() > 10 and (end[:, 1] < -3).sum() > 10
    assert ((end[:, 1].abs() < 1.5) & (end[:, 0] > 10)).sum() > 30
    assert (end.norm(dim=-1) < 2).sum() > 5
    assert (data.agent_type == AGENT_TYPES["pedestrian"])[data.agent_valid.any(-1)].any()
    assert data.polyline_valid.any(-1).all()


def test_synthetic_map_follows_the_polyline_options():
    data = synthetic_traffic(SyntheticOptions(history=5, horizon=5, max_polylines=7, polyline_points=6), 4, seed=0)
    assert data.polylines.shape[1:] == (7, 6, 2)
    assert data.polyline_valid.any(-1).all()
