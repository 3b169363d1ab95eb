"""ETH/UCY pedestrian trajectories in the Trajectron++ text layout.

Each scene file holds whitespace-separated rows ``frame_id agent_id x y`` (metres); consecutive frames
are 10 ids = 0.4 s apart. The leave-one-scene-out splits live in ``<root>/<scene>/{train,val,test}/``
for the scenes eth, hotel, univ, zara1 and zara2. The standard protocol observes 8 steps and predicts
12: every window of 20 consecutive frames yields one sample per pedestrian present in all 20 frames,
with the other pedestrians seen during the 8 observed frames as neighbours.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scalinglab.behavior.sample import AGENT_TYPES, TrajectorySet, target_frames, to_frame
from scalinglab.errors import UserError

SCENES = ("eth", "hotel", "univ", "zara1", "zara2")
FRAME_STEP = 10
HISTORY, HORIZON = 8, 12


def read_scene_file(path: Path) -> np.ndarray:
    """Rows (frame, agent, x, y) as a float array; a bad line ends in one UserError naming it."""
    rows = []
    with open(path) as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 4:
                raise UserError(f"{path}: line {number}: expected 4 fields 'frame agent x y', found {len(fields)}")
            try:
                values = [float(v) for v in fields]
            except ValueError:
                raise UserError(f"{path}: line {number}: '{line.strip()}' is not four numbers") from None
            if not np.isfinite(values).all():
                raise UserError(f"{path}: line {number}: a value is not finite")
            rows.append(values)
    if not rows:
        raise UserError(f"{path}: no trajectory rows")
    return np.asarray(rows)


def scene_samples(rows: np.ndarray, history: int = HISTORY, horizon: int = HORIZON, max_agents: int = 16) -> dict:
    """The samples of one scene file as numpy arrays (world coordinates, not yet target-centric)."""
    frames = np.unique(rows[:, 0])
    agents = np.unique(rows[:, 1])
    frame_index = np.searchsorted(frames, rows[:, 0])
    agent_index = np.searchsorted(agents, rows[:, 1])
    position = np.zeros((len(frames), len(agents), 2))
    present = np.zeros((len(frames), len(agents)), dtype=bool)
    position[frame_index, agent_index] = rows[:, 2:4]
    present[frame_index, agent_index] = True

    window = history + horizon
    out: dict[str, list] = {"agents": [], "agent_valid": [], "future": []}
    for start in range(len(frames) - window + 1):
        if frames[start + window - 1] - frames[start] != (window - 1) * FRAME_STEP:
            continue  # a gap in the recording
        seen = present[start : start + window]
        targets = np.flatnonzero(seen.all(axis=0))
        if not len(targets):
            continue
        observed = np.flatnonzero(seen[:history].any(axis=0))
        hist = position[start : start + history, observed].transpose(1, 0, 2)  # [n, H, 2]
        hist_valid = seen[:history, observed].T
        for target in targets:
            t = np.searchsorted(observed, target)
            # Distance at the last observed frame, or the closest approach for those not seen then.
            gaps = np.where(hist_valid, np.linalg.norm(hist - hist[t, -1], axis=2), np.inf)
            distance = np.where(hist_valid[:, -1], gaps[:, -1], gaps.min(axis=1))
            distance[t] = -1.0
            chosen = np.argsort(distance, kind="stable")[:max_agents]
            agents_out = np.zeros((max_agents, history, 2))
            valid_out = np.zeros((max_agents, history), dtype=bool)
            agents_out[: len(chosen)] = hist[chosen]
            valid_out[: len(chosen)] = hist_valid[chosen]
            out["agents"].append(agents_out)
            out["agent_valid"].append(valid_out)
            out["future"].append(position[start + history : start + window, target])
    return {
        k: np.asarray(v).reshape(-1, *shape)
        for (k, v), shape in zip(
            out.items(), [(max_agents, history, 2), (max_agents, history), (horizon, 2)], strict=True
        )
    }


def load_eth_ucy(root: str | Path, scene: str, split: str, max_agents: int = 16) -> TrajectorySet:
    """All samples of one leave-one-out split, e.g. scene 'eth', split 'train' (the other four scenes)."""
    root = Path(root)
    if scene not in SCENES:
        raise UserError(f"ETH/UCY scene '{scene}' is not one of: {', '.join(SCENES)}")
    folder = root / scene / split
    files = sorted(folder.glob("*.txt"))
    if not files:
        raise UserError(f"{folder}: no ETH/UCY scene files (*.txt) found")
    parts = [scene_samples(read_scene_file(f), max_agents=max_agents) for f in files]
    arrays = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    if not len(arrays["future"]):
        raise UserError(f"{folder}: no window of {HISTORY + HORIZON} consecutive frames with a full track")
    origin, rotation = target_frames(arrays["agents"][:, 0], arrays["agent_valid"][:, 0])
    valid = arrays["agent_valid"]
    count = len(valid)
    return TrajectorySet.from_numpy(
        agents=to_frame(arrays["agents"], origin, rotation) * valid[..., None],
        agent_valid=valid,
        agent_type=np.full(valid.shape[:2], AGENT_TYPES["pedestrian"]),
        future=to_frame(arrays["future"], origin, rotation),
        future_valid=np.ones((count, HORIZON), dtype=bool),
        polylines=np.zeros((count, 0, 2, 2)),
        polyline_valid=np.zeros((count, 0, 2), dtype=bool),
        polyline_type=np.zeros((count, 0), dtype=np.int64),
    )
