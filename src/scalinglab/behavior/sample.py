"""The one sample type every trajectory source produces, in target-centric coordinates.

A `TrajectorySet` holds S samples as padded tensors:

- ``agents``   [S, A, H, 2] agent histories (agent 0 is the prediction target), metres
- ``agent_valid`` [S, A, H] which history steps are observed
- ``agent_type`` [S, A] 0 vehicle, 1 pedestrian, 2 cyclist, 3 other
- ``future``   [S, F, 2] the target's future
- ``future_valid`` [S, F]
- ``polylines`` [S, P, L, 2] map polylines (P may be 0, as for ETH/UCY), ``polyline_valid`` [S, P, L],
  ``polyline_type`` [S, P] 0 lane, 1 lane connector inside an intersection, 2 crossing, 3 other

Coordinates: the origin is the target's last observed position and +x its heading there (from its
last displacement; unrotated when it is standing still).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch

AGENT_TYPES = {"vehicle": 0, "pedestrian": 1, "cyclist": 2, "other": 3}
POLYLINE_TYPES = {"lane": 0, "connector": 1, "crossing": 2, "other": 3}
STANDING_STILL = 0.05  # metres over the last observed step: below it the heading is not trusted


@dataclass
class TrajectorySet:
    agents: torch.Tensor
    agent_valid: torch.Tensor
    agent_type: torch.Tensor
    future: torch.Tensor
    future_valid: torch.Tensor
    polylines: torch.Tensor
    polyline_valid: torch.Tensor
    polyline_type: torch.Tensor

    def __len__(self) -> int:
        return self.agents.shape[0]

    @property
    def history(self) -> int:
        return self.agents.shape[2]

    @property
    def horizon(self) -> int:
        return self.future.shape[1]

    def subset(self, indices: torch.Tensor | slice) -> TrajectorySet:
        return TrajectorySet(*(getattr(self, f.name)[indices] for f in fields(self)))

    def to(self, device: torch.device | str) -> TrajectorySet:
        return TrajectorySet(*(getattr(self, f.name).to(device, non_blocking=True) for f in fields(self)))

    @staticmethod
    def concat(parts: Sequence[TrajectorySet]) -> TrajectorySet:
        return TrajectorySet(*(torch.cat([getattr(p, f.name) for p in parts]) for f in fields(TrajectorySet)))

    @staticmethod
    def from_numpy(**arrays: np.ndarray) -> TrajectorySet:
        dtypes = {"agent_type": torch.long, "polyline_type": torch.long}
        out = {}
        for f in fields(TrajectorySet):
            array = arrays[f.name]
            if f.name.endswith("valid"):
                out[f.name] = torch.from_numpy(np.ascontiguousarray(array, dtype=bool))
            else:
                out[f.name] = torch.as_tensor(np.ascontiguousarray(array), dtype=dtypes.get(f.name, torch.float32))
        return TrajectorySet(**out)


def target_frames(history: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Origins [S, 2] and rotations [S, 2, 2] that map world points p to (p - origin) @ rotation.

    ``history`` [S, H, 2] is the target's history and ``valid`` [S, H] its mask; the last valid step is
    the origin and the displacement from the valid step before it gives the heading.
    """
    samples, steps = valid.shape
    index = np.arange(steps)
    last = np.where(valid, index, -1).max(axis=1)
    if (last < 0).any():
        raise ValueError("a target has no observed history step")
    before = np.where(valid & (index < last[:, None]), index, -1).max(axis=1)
    rows = np.arange(samples)
    origin = history[rows, last]
    previous = history[rows, np.maximum(before, 0)]
    delta = np.where((before >= 0)[:, None], origin - previous, 0.0)
    length = np.linalg.norm(delta, axis=1)
    moving = length > STANDING_STILL
    cos = np.where(moving, delta[:, 0] / np.maximum(length, 1e-12), 1.0)
    sin = np.where(moving, delta[:, 1] / np.maximum(length, 1e-12), 0.0)
    # (p - o) @ R with R = [[cos, -sin], [sin, cos]] rotates the heading onto +x.
    rotation = np.stack([np.stack([cos, -sin], axis=-1), np.stack([sin, cos], axis=-1)], axis=-2)
    return origin, rotation


def to_frame(points: np.ndarray, origin: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """Points [S, ..., 2] into the per-sample frames from `target_frames`."""
    shape = points.shape
    flat = points.reshape(shape[0], -1, 2) - origin[:, None, :]
    return np.einsum("snk,skj->snj", flat, rotation).reshape(shape)


def resample_polyline(points: np.ndarray, spacing: float) -> np.ndarray:
    """Points along a polyline every `spacing` metres (the last point kept)."""
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    if arc[-1] <= 0:
        return points[:1]
    stations = np.append(np.arange(0.0, arc[-1], spacing), arc[-1])
    return np.stack([np.interp(stations, arc, points[:, k]) for k in range(2)], axis=1)


def split_polyline(points: np.ndarray, length: int) -> list[np.ndarray]:
    """Consecutive pieces of at most `length` points, sharing their end points."""
    if len(points) <= length:
        return [points]
    step = length - 1
    return [points[i : i + length] for i in range(0, len(points) - 1, step)]


def nearest_polylines(
    pieces: list[np.ndarray],
    kinds: list[int],
    origin: np.ndarray,
    rotation: np.ndarray,
    count: int,
    length: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per sample, the `count` map pieces (world coordinates) nearest its origin, in its frame.

    ``origin`` [S, 2] and ``rotation`` [S, 2, 2] come from `target_frames`. Returns points
    [S, count, length, 2] (zero where unused), masks [S, count, length] and types [S, count]; pieces of
    more than `length` points are cut, slots beyond the number of pieces are padding of type "other".
    """
    samples = len(origin)
    out = np.zeros((samples, count, length, 2))
    valid = np.zeros((samples, count, length), dtype=bool)
    types = np.full((samples, count), POLYLINE_TYPES["other"], dtype=np.int64)
    if not pieces or not count:
        return out, valid, types
    padded = np.zeros((len(pieces), length, 2))
    mask = np.zeros((len(pieces), length), dtype=bool)
    for k, piece in enumerate(pieces):
        piece = piece[:length]
        padded[k, : len(piece)], mask[k, : len(piece)] = piece, True
    moved = to_frame(np.broadcast_to(padded, (samples, *padded.shape)), origin, rotation)  # [S, N, L, 2]
    distance = np.where(mask, np.linalg.norm(moved, axis=-1), np.inf).min(axis=2)
    order = np.argsort(distance, axis=1, kind="stable")[:, :count]
    taken = order.shape[1]
    valid[:, :taken] = mask[order]
    out[:, :taken] = np.take_along_axis(moved, order[..., None, None], 1) * valid[:, :taken, :, None]
    types[:, :taken] = np.asarray(kinds)[order]
    return out, valid, types
