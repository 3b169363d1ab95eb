"""Argoverse 2 motion forecasting: scenario parquet + map JSON in the dataset's own layout.

``<root>/<split>/<scenario_id>/scenario_<scenario_id>.parquet`` holds one row per track per timestep
(110 steps at 10 Hz: 50 observed, 60 to predict) and ``log_map_archive_<scenario_id>.json`` the local
map. The focal track is the prediction target; the other tracks observed at the last history step are
its neighbours (nearest first); lane centerlines (connectors when inside an intersection) and
pedestrian-crossing edges are the map polylines. Read with pandas and json; the `av2` package is not
needed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from scalinglab.behavior.sample import (
    AGENT_TYPES,
    POLYLINE_TYPES,
    TrajectorySet,
    nearest_polylines,
    resample_polyline,
    split_polyline,
    target_frames,
    to_frame,
)
from scalinglab.errors import UserError

OBSERVED_STEPS, TOTAL_STEPS = 50, 110
REQUIRED = ("track_id", "object_type", "timestep", "position_x", "position_y", "focal_track_id")
TYPE_OF = {
    "vehicle": "vehicle",
    "bus": "vehicle",
    "pedestrian": "pedestrian",
    "cyclist": "cyclist",
    "motorcyclist": "cyclist",
    "riderless_bicycle": "cyclist",
}


def _scenario_files(folder: Path) -> tuple[Path, Path]:
    parquet = sorted(folder.glob("scenario_*.parquet"))
    maps = sorted(folder.glob("log_map_archive_*.json"))
    if not parquet:
        raise UserError(f"{folder}: no scenario_*.parquet file")
    if not maps:
        raise UserError(f"{folder}: no log_map_archive_*.json file")
    return parquet[0], maps[0]


def _map_pieces(path: Path, spacing: float, length: int) -> tuple[list[np.ndarray], list[int]]:
    try:
        archive = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON (line {exc.lineno})") from None
    pieces, kinds = [], []
    for key, lane in archive.get("lane_segments", {}).items():
        try:
            line = np.array([[p["x"], p["y"]] for p in lane["centerline"]], dtype=float)
        except (KeyError, TypeError):
            raise UserError(f"{path}: lane segment {key}: no 'centerline' list of x, y points") from None
        kind = POLYLINE_TYPES["connector" if lane.get("is_intersection") else "lane"]
        for piece in split_polyline(resample_polyline(line, spacing), length):
            pieces.append(piece)
            kinds.append(kind)
    for crossing in archive.get("pedestrian_crossings", {}).values():
        for edge in ("edge1", "edge2"):
            if edge in crossing:
                line = np.array([[p["x"], p["y"]] for p in crossing[edge]], dtype=float)
                pieces += split_polyline(resample_polyline(line, spacing), length)
                kinds += [POLYLINE_TYPES["crossing"]] * (len(pieces) - len(kinds))
    return pieces, kinds


@dataclass(frozen=True)
class _Tracks:
    """Every track of a scenario, the focal one first: its positions and presence at every step, its agent type."""

    focal: str
    position: np.ndarray  # (tracks, TOTAL_STEPS, 2) world coordinates (0 where absent)
    present: np.ndarray  # (tracks, TOTAL_STEPS)
    kinds: np.ndarray  # (tracks,) AGENT_TYPES codes

    def history(self, history: int) -> tuple[np.ndarray, np.ndarray]:
        """Every track's positions and presence over the last `history` observed steps."""
        first = OBSERVED_STEPS - history
        return self.position[:, first:OBSERVED_STEPS], self.present[:, first:OBSERVED_STEPS]

    def future(self, horizon: int) -> tuple[np.ndarray, np.ndarray]:
        """The focal track's positions and presence over the first `horizon` future steps."""
        window = slice(OBSERVED_STEPS, OBSERVED_STEPS + horizon)
        return self.position[0, window], self.present[0, window]


def _read_tracks(parquet: Path) -> _Tracks:
    """The scenario parquet's tracks, checked: the columns it needs, a focal track with rows, steps in range."""
    frame = pd.read_parquet(parquet)
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise UserError(f"{parquet}: missing column '{missing[0]}'")
    focal = str(frame["focal_track_id"].iloc[0])
    tracks = list(frame["track_id"].astype(str).unique())
    if focal not in tracks:
        raise UserError(f"{parquet}: column 'focal_track_id': track '{focal}' has no rows")
    tracks.remove(focal)
    tracks.insert(0, focal)
    index = {t: i for i, t in enumerate(tracks)}
    steps = frame["timestep"].to_numpy()
    if (steps < 0).any() or (steps >= TOTAL_STEPS).any():
        row = int(np.flatnonzero((steps < 0) | (steps >= TOTAL_STEPS))[0])
        raise UserError(f"{parquet}: row {row}: column 'timestep' outside 0..{TOTAL_STEPS - 1}")
    rows = frame["track_id"].astype(str).map(index).to_numpy()
    position = np.zeros((len(tracks), TOTAL_STEPS, 2))
    present = np.zeros((len(tracks), TOTAL_STEPS), dtype=bool)
    position[rows, steps] = frame[["position_x", "position_y"]].to_numpy(dtype=float)
    present[rows, steps] = True
    kind_of_track = frame.groupby(frame["track_id"].astype(str))["object_type"].first()
    kinds = np.array([AGENT_TYPES[TYPE_OF.get(str(kind_of_track[t]), "other")] for t in tracks])
    return _Tracks(focal, position, present, kinds)


def _nearest_agents(
    local: np.ndarray, hist_valid: np.ndarray, kinds: np.ndarray, max_agents: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(agents, valid, types), `max_agents` rows: the focal track, then those seen at the last step, nearest first."""
    distance = np.where(hist_valid[:, -1], np.linalg.norm(local[:, -1], axis=1), np.inf)
    distance[0] = -1.0
    chosen = [k for k in np.argsort(distance, kind="stable")[:max_agents] if np.isfinite(distance[k])]
    history = local.shape[1]
    agents = np.zeros((max_agents, history, 2))
    valid = np.zeros((max_agents, history), dtype=bool)
    types = np.full(max_agents, AGENT_TYPES["other"])
    agents[: len(chosen)], valid[: len(chosen)], types[: len(chosen)] = local[chosen], hist_valid[chosen], kinds[chosen]
    return agents, valid, types


def load_av2_scenario(
    folder: str | Path,
    history: int = OBSERVED_STEPS,
    horizon: int = TOTAL_STEPS - OBSERVED_STEPS,
    max_agents: int = 32,
    max_polylines: int = 64,
    polyline_points: int = 10,
) -> TrajectorySet:
    """One scenario as a single sample: the last `history` observed steps, the first `horizon` future ones."""
    folder = Path(folder)
    if not 0 < history <= OBSERVED_STEPS or not 0 < horizon <= TOTAL_STEPS - OBSERVED_STEPS:
        raise UserError(f"AV2 gives {OBSERVED_STEPS} observed and {TOTAL_STEPS - OBSERVED_STEPS} future steps")
    parquet, map_path = _scenario_files(folder)
    tracks = _read_tracks(parquet)
    hist, hist_valid = tracks.history(history)
    future, future_valid = tracks.future(horizon)
    if not hist_valid[0].any():
        raise UserError(f"{parquet}: the focal track '{tracks.focal}' has no observed step in the history window")
    origin, rotation = target_frames(hist[:1], hist_valid[:1])
    local = to_frame(hist[None], origin, rotation)[0]
    agents, valid, types = _nearest_agents(local, hist_valid, tracks.kinds, max_agents)
    pieces, piece_kinds = _map_pieces(map_path, 2.0, polyline_points)
    polylines, polyline_valid, polyline_type = nearest_polylines(
        pieces, piece_kinds, origin, rotation, max_polylines, polyline_points
    )
    return TrajectorySet.from_numpy(
        agents=(agents * valid[..., None])[None],
        agent_valid=valid[None],
        agent_type=types[None],
        future=(to_frame(future[None], origin, rotation) * future_valid[None, :, None]),
        future_valid=future_valid[None],
        polylines=polylines,
        polyline_valid=polyline_valid,
        polyline_type=polyline_type,
    )


def load_av2(root: str | Path, split: str, limit: int | None = None, **options: int) -> TrajectorySet:
    """Every scenario of `<root>/<split>/` (or the first `limit`, in sorted order) as one set."""
    folder = Path(root) / split
    scenarios = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    if not scenarios:
        raise UserError(f"{folder}: no AV2 scenario folders")
    return TrajectorySet.concat([load_av2_scenario(p, **options) for p in scenarios[:limit]])
