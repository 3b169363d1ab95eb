"""Synthetic traffic: signalised four-way intersections simulated at 10 Hz, generated locally by seed.

Each chunk of scenes shares one intersection layout (lane width and arm angles drawn per chunk): four
arms with two lanes each way, lane connectors for left turns (inner lane), straight on (both lanes) and
right turns (outer lane), lane-change routes on the approach, and a crosswalk on every arm. Vehicles
follow their route with the intelligent driver model (IDM) towards the nearest obstacle on their path
ahead (the car in front, a crossing vehicle, a pedestrian on the crosswalk, or the stop line when the
light is red), slowing for curves from a curvature speed limit. Pedestrians cross at the crosswalks.
The light state is hidden from the model, so a car near the stop line may stop or go, and the route is
hidden too, so futures at the intersection are multi-modal; interactions come from the gaps.

Scene i of a dataset depends only on (seed, i // scenes_per_layout): a larger data scale is a superset of a
smaller one, and fewer scenes per layout give a dataset more distinct intersections at the same size. The
target of a scene is a vehicle near the intersection at the last observed step, observed over the whole
window; sensor-like noise is added to the observed histories.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numba
import numpy as np

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

CHUNK = 256  # default scenes simulated together (one layout)
DT = 0.1  # seconds per step (10 Hz)
WARMUP = 30  # steps simulated before the observed window starts
DS = 0.5  # metres between route samples
LOOKAHEAD_POINTS, LOOKAHEAD_SPACING = 20, 2.0  # the path ahead checked for obstacles: 40 m
CAR_LENGTH, PATH_RADIUS, PED_RADIUS = 4.5, 1.6, 2.0
IN_LENGTH, OUT_LENGTH = 90.0, 130.0


@dataclass(frozen=True)
class SyntheticOptions:
    history: int = 20
    horizon: int = 30
    vehicles: int = 14
    pedestrians: int = 4
    max_agents: int = 12
    max_polylines: int = 32
    polyline_points: int = 10
    noise: float = 0.05  # metres, standard deviation of the observed positions
    scenes_per_layout: int = CHUNK  # scenes simulated together on one intersection layout


# Named shifts of the synthetic traffic for extra eval sets (task option overrides): "dense" doubles the
# vehicles and pedestrians in a scene, so more of the agents a model sees interact (yield, queue, brake).
EVAL_PRESETS: dict[str, dict[str, int]] = {"dense": {"vehicles": 28, "pedestrians": 8}}


@dataclass
class Route:
    points: np.ndarray  # [M, 2] every DS metres
    stop_s: float  # arc length of the stop line (inf: none)
    arm: int
    turn: str  # left, straight, right


@dataclass
class Layout:
    routes: list[Route]
    x: np.ndarray  # [R, M] route samples, padded with the last point
    y: np.ndarray
    speed_limit: np.ndarray  # [R, M] curvature speed limit, smoothed so cars brake before a curve
    length: np.ndarray  # [R]
    stop_s: np.ndarray  # [R]
    arm: np.ndarray  # [R]
    left_turn: np.ndarray  # [R] bool
    starts: dict[tuple[int, int], list[int]]  # (arm, lane) -> routes starting in that lane
    crossings: list[np.ndarray]  # per arm: crosswalk end points [2, 2]
    map_pieces: list[np.ndarray]
    map_kinds: list[int]


def _bezier(p0: np.ndarray, d0: np.ndarray, p3: np.ndarray, d3: np.ndarray, turn: str) -> np.ndarray:
    chord = float(np.linalg.norm(p3 - p0))
    k = chord / 3 if turn == "straight" else 0.39 * chord
    t = np.linspace(0, 1, max(8, int(chord / 0.25)))[:, None]
    p1, p2 = p0 + k * d0, p3 - k * d3
    return (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t**2 * p2 + t**3 * p3


def _speed_limit(points: np.ndarray) -> np.ndarray:
    heading = np.unwrap(np.arctan2(*np.diff(points, axis=0).T[::-1]))
    curvature = np.abs(np.gradient(heading, DS)) if len(heading) > 1 else np.zeros(1)
    curvature = np.append(curvature, curvature[-1])
    return _brake(np.minimum(np.sqrt(2.5 / np.maximum(curvature, 1e-4)), 30.0), DS)


@numba.njit(cache=True)
def _brake(limit, ds):  # pragma: no cover (compiled)
    """The speed limit lowered so that a vehicle braking at 2 m/s^2 meets each slower stretch at its limit."""
    for i in range(len(limit) - 2, -1, -1):
        limit[i] = min(limit[i], math.sqrt(limit[i + 1] ** 2 + 2 * 2.0 * ds))
    return limit


def make_layout(rng: np.random.Generator, polyline_points: int) -> Layout:
    """One intersection: its routes (for the simulation) and its map, cut into pieces of `polyline_points`."""
    width = rng.uniform(3.2, 3.8)
    angles = np.deg2rad(np.arange(4) * 90.0 + rng.uniform(-12, 12, size=4))
    u = np.stack([np.cos(angles), np.sin(angles)], axis=1)  # outward along each arm
    n = np.stack([-np.sin(angles), np.cos(angles)], axis=1)  # inbound lanes lie on +n
    box = 2 * width + 2.5  # the intersection box's half size along an arm
    stop = box + 3.0  # stop line; the crosswalk lies between it and the box
    offsets = (np.arange(2) + 0.5) * width

    def inbound(a: int, lane_from: int, lane_to: int, change_at: float | None) -> np.ndarray:
        r = np.arange(box + IN_LENGTH, box - 1e-9, -DS)
        off = np.full_like(r, offsets[lane_from])
        if change_at is not None:  # cosine blend over 30 m, starting `change_at` from the box
            blend = np.clip((box + change_at - r) / 30.0, 0, 1)
            off = offsets[lane_from] + (offsets[lane_to] - offsets[lane_from]) * (1 - np.cos(np.pi * blend)) / 2
        return r[:, None] * u[a] + off[:, None] * n[a]

    def outbound(b: int, lane: int) -> np.ndarray:
        r = np.arange(box, box + OUT_LENGTH, DS)
        return r[:, None] * u[b] - offsets[lane] * n[b]

    turns = {"left": (-1, 0, 0), "straight": (2, None, None), "right": (1, 1, 1)}
    routes, starts = [], {}
    connectors: dict[tuple, np.ndarray] = {}
    for a in range(4):
        for lane_from in range(2):
            for lane_to in range(2):
                for change_at in [None] if lane_from == lane_to else [45.0, 75.0]:
                    head = inbound(a, lane_from, lane_to, change_at)
                    for turn, (shift, need_lane, exit_lane) in turns.items():
                        if need_lane is not None and lane_to != need_lane:
                            continue
                        b = (a + shift) % 4
                        exit_lane = lane_to if exit_lane is None else exit_lane
                        tail = outbound(b, exit_lane)
                        key = (a, lane_to, b, exit_lane)
                        if key not in connectors:
                            connectors[key] = _bezier(head[-1], -u[a], tail[0], u[b], turn)
                        points = resample_polyline(np.concatenate([head, connectors[key][1:-1], tail]), DS)
                        routes.append(Route(points, IN_LENGTH + box - stop, a, turn))
                        starts.setdefault((a, lane_from), []).append(len(routes) - 1)

    size = max(len(r.points) for r in routes)
    pad = [np.concatenate([r.points, np.repeat(r.points[-1:], size - len(r.points), axis=0)]) for r in routes]
    limits = [np.pad(_speed_limit(r.points), (0, size - len(r.points)), mode="edge") for r in routes]
    crossings = [
        np.stack([(box + 1.2) * u[a] - (2 * width + 2.5) * n[a], (box + 1.2) * u[a] + (2 * width + 2.5) * n[a]])
        for a in range(4)
    ]

    pieces, kinds = [], []
    spacing = 2.0
    lanes = [inbound(a, k, k, None) for a in range(4) for k in range(2)] + [
        outbound(b, k) for b in range(4) for k in range(2)
    ]
    for lane in lanes:
        for piece in split_polyline(resample_polyline(lane, spacing), polyline_points):
            pieces.append(piece)
            kinds.append(POLYLINE_TYPES["lane"])
    for curve in connectors.values():
        for piece in split_polyline(resample_polyline(curve, spacing), polyline_points):
            pieces.append(piece)
            kinds.append(POLYLINE_TYPES["connector"])
    for crossing in crossings:
        pieces.append(resample_polyline(crossing, spacing)[:polyline_points])
        kinds.append(POLYLINE_TYPES["crossing"])
    return Layout(
        routes=routes,
        x=np.stack(pad)[..., 0],
        y=np.stack(pad)[..., 1],
        speed_limit=np.stack(limits),
        length=np.array([(len(r.points) - 1) * DS for r in routes]),
        stop_s=np.array([r.stop_s for r in routes]),
        arm=np.array([r.arm for r in routes]),
        left_turn=np.array([r.turn == "left" for r in routes]),
        starts=starts,
        crossings=crossings,
        map_pieces=pieces,
        map_kinds=kinds,
    )


def _lookup(table: np.ndarray, route: np.ndarray, s: np.ndarray) -> np.ndarray:
    """table[route] at arc length s, interpolated between the samples every DS metres."""
    index = np.clip(s / DS, 0, table.shape[1] - 1.000001)
    low = index.astype(np.int64)
    frac = index - low
    return table[route, low] * (1 - frac) + table[route, low + 1] * frac


def _positions(layout: Layout, route: np.ndarray, s: np.ndarray) -> np.ndarray:
    return np.stack([_lookup(layout.x, route, s), _lookup(layout.y, route, s)], axis=-1)


@numba.njit(cache=True)
def _nearest_obstacles(path, tangent, pos, on_route, priority, speed, ped_pos, ped_here):  # pragma: no cover
    """Gap [B, V] to the nearest obstacle on each car's path ahead and the closing speed [B, V].

    Car j is an obstacle to car i when j's position lies within PATH_RADIUS of i's path ahead. When
    each lies on the other's path (a crossing conflict), the one with priority goes first (straight
    and right turns before left turns, then the lower index), so two cars never wait for each other.
    """
    b_count, v_count, k_count = path.shape[0], path.shape[1], path.shape[2]
    q_count = ped_pos.shape[1]
    gap = np.full((b_count, v_count), np.inf)
    dv = np.zeros((b_count, v_count))
    first = np.empty((v_count, v_count), dtype=np.int64)
    r2, p2 = PATH_RADIUS**2, PED_RADIUS**2
    for b in range(b_count):
        first[:] = k_count
        for i in range(v_count):
            if not on_route[b, i]:
                continue
            for j in range(v_count):
                if j == i or not on_route[b, j]:
                    continue
                for k in range(k_count):
                    dx, dy = path[b, i, k, 0] - pos[b, j, 0], path[b, i, k, 1] - pos[b, j, 1]
                    if dx * dx + dy * dy < r2:
                        first[i, j] = k
                        break
        for i in range(v_count):
            if not on_route[b, i]:
                continue
            hx, hy = tangent[b, i, 0, 0], tangent[b, i, 0, 1]
            for j in range(v_count):
                k = first[i, j]
                if k == k_count:
                    continue
                if first[j, i] < k_count:
                    i_wins = priority[b, i] > priority[b, j] or (priority[b, i] == priority[b, j] and i < j)
                    if i_wins:
                        continue
                tx, ty = tangent[b, i, k, 0], tangent[b, i, k, 1]
                along = (k + 1) * LOOKAHEAD_SPACING + (pos[b, j, 0] - path[b, i, k, 0]) * tx
                along += (pos[b, j, 1] - path[b, i, k, 1]) * ty
                g = along - CAR_LENGTH
                if g < gap[b, i]:
                    gap[b, i] = g
                    dv[b, i] = speed[b, i] - speed[b, j] * (hx * tangent[b, j, 0, 0] + hy * tangent[b, j, 0, 1])
            for j in range(q_count):
                if not ped_here[b, j]:
                    continue
                for k in range(k_count):
                    dx, dy = path[b, i, k, 0] - ped_pos[b, j, 0], path[b, i, k, 1] - ped_pos[b, j, 1]
                    if dx * dx + dy * dy < p2:
                        g = (k + 1) * LOOKAHEAD_SPACING - 2.5
                        if g < gap[b, i]:
                            gap[b, i] = g
                            dv[b, i] = speed[b, i]
                        break
    return gap, dv


def simulate_chunk(options: SyntheticOptions, seed: int, chunk: int) -> TrajectorySet:
    """The scenes of one chunk (up to `scenes_per_layout`; scenes without a usable target are dropped)."""
    rng = np.random.default_rng([seed, chunk])
    layout = make_layout(rng, options.polyline_points)
    b, v, q = options.scenes_per_layout, options.vehicles, options.pedestrians
    steps = WARMUP + options.history + options.horizon

    # Vehicles: a lane, a position on it, a route from that lane, IDM parameters.
    lane_keys = sorted(layout.starts)
    lane = rng.integers(len(lane_keys), size=(b, v))
    route = np.empty((b, v), dtype=np.int64)
    choice = rng.random((b, v))
    for k, key in enumerate(lane_keys):
        options_k = np.array(layout.starts[key])
        pick = np.minimum((choice * len(options_k)).astype(np.int64), len(options_k) - 1)
        route = np.where(lane == k, options_k[pick], route)
    s = rng.uniform(0, IN_LENGTH + 10, size=(b, v))
    order = np.argsort(s, axis=1)  # keep one car per 12 m of a lane
    active = np.ones((b, v), dtype=bool)
    sorted_s, sorted_lane = np.take_along_axis(s, order, 1), np.take_along_axis(lane, order, 1)
    for i in range(1, v):
        close = (sorted_lane[:, :i] == sorted_lane[:, i : i + 1]) & (
            np.abs(sorted_s[:, :i] - sorted_s[:, i : i + 1]) < 12
        )
        close &= np.take_along_axis(active, order[:, :i], 1)
        np.put_along_axis(active, order[:, i : i + 1], ~close.any(axis=1, keepdims=True), 1)
    v0 = rng.uniform(9, 15, size=(b, v))
    headway = rng.uniform(1.0, 1.8, size=(b, v))
    a_max, b_comf, s0 = rng.uniform(1.2, 2.2, size=(b, v)), 2.0, 2.0
    speed = np.minimum(v0, _lookup(layout.speed_limit, route, s)) * rng.uniform(0.5, 1.0, size=(b, v))
    priority = ~layout.left_turn[route]  # straight and right turns go before left turns

    # Pedestrians: a crosswalk, a direction, a start time and a walking speed.
    ped_active = rng.random((b, q)) < 0.6
    crossing = np.stack(layout.crossings)[rng.integers(4, size=(b, q))]  # [B, Q, 2, 2]
    flip = rng.random((b, q)) < 0.5
    ped_from = np.where(flip[..., None], crossing[:, :, 1], crossing[:, :, 0])
    ped_to = np.where(flip[..., None], crossing[:, :, 0], crossing[:, :, 1])
    ped_dir = (ped_to - ped_from) / np.linalg.norm(ped_to - ped_from, axis=-1, keepdims=True)
    ped_start = rng.uniform(0, steps * DT, size=(b, q))
    ped_speed = rng.uniform(1.1, 1.7, size=(b, q))
    ped_length = np.linalg.norm(ped_to - ped_from, axis=-1)

    # Lights: arms 0 and 2 share a phase, 1 and 3 the other; green, yellow (3 s), all red (1.5 s).
    green = rng.uniform(8, 14, size=b)
    period = 2 * (green + 4.5)
    offset = rng.uniform(0, 1, size=b) * period

    track = np.zeros((b, v + q, steps, 2))
    valid = np.zeros((b, v + q, steps), dtype=bool)
    ahead = (np.arange(1, LOOKAHEAD_POINTS + 1) * LOOKAHEAD_SPACING)[None, None, :]
    for t in range(steps):
        time = t * DT
        pos = _positions(layout, route, s)
        walked = np.clip(time - ped_start, 0, None) * ped_speed
        ped_pos = ped_from + ped_dir * walked[..., None]
        track[:, :v, t], track[:, v:, t] = pos, ped_pos
        on_route = active & (s < layout.length[route] - 1.0)
        valid[:, :v, t], valid[:, v:, t] = on_route, ped_active

        # The obstacle nearest along each car's path ahead.
        path_s = s[..., None] + ahead
        path = _positions(layout, np.broadcast_to(route[..., None], path_s.shape), path_s)  # [B, V, K, 2]
        tangent = np.diff(path, axis=2, append=path[:, :, -1:] + (path[:, :, -1:] - path[:, :, -2:-1]))
        tangent /= np.maximum(np.linalg.norm(tangent, axis=-1, keepdims=True), 1e-9)
        ped_here = ped_active & (walked > 0) & (walked < ped_length + 1)
        gap, dv = _nearest_obstacles(path, tangent, pos, on_route, priority, speed, ped_pos, ped_here)

        phase = (time + offset) % period  # [B]
        half = period / 2
        in_half = phase % half
        red_for_first = phase >= half  # arms 0 and 2 are red in the second half
        light_red = np.where(np.isin(layout.arm[route], (0, 2)), red_for_first[:, None], ~red_for_first[:, None])
        light_red |= (in_half > green)[:, None]  # yellow and all-red stop everyone who can
        to_line = layout.stop_s[route] - s
        must_stop = light_red & (to_line > 0) & (to_line > speed**2 / (2 * 4.0) - 0.5)
        dv = np.where(must_stop & (to_line - 1.0 < gap), speed, dv)
        gap = np.where(must_stop, np.minimum(gap, to_line - 1.0), gap)

        desired = np.maximum(np.minimum(v0, _lookup(layout.speed_limit, route, s + speed)), 0.5)
        wanted_gap = s0 + speed * headway + speed * dv / (2 * np.sqrt(a_max * b_comf))
        interaction = np.where(np.isfinite(gap), (np.maximum(wanted_gap, 0) / np.maximum(gap, 0.1)) ** 2, 0.0)
        accel = np.clip(a_max * (1 - (speed / desired) ** 4 - interaction), -8.0, a_max)
        speed = np.maximum(speed + accel * DT, 0.0)
        s = s + speed * DT * active
    return _samples(options, rng, layout, track[:, :, WARMUP:], valid[:, :, WARMUP:], v)


def _samples(
    options: SyntheticOptions,
    rng: np.random.Generator,
    layout: Layout,
    track: np.ndarray,
    valid: np.ndarray,
    v: int,
) -> TrajectorySet:
    h = options.history
    b, agents = track.shape[:2]
    kinds = np.array([AGENT_TYPES["vehicle"]] * v + [AGENT_TYPES["pedestrian"]] * (agents - v))
    # A target: a car seen over the whole window, near the intersection at the last observed step.
    seen = valid[:, :v].all(axis=2)
    centre_distance = np.linalg.norm(track[:, :v, h - 1], axis=-1)
    moving = np.linalg.norm(track[:, :v, -1] - track[:, :v, h - 1], axis=-1) > 1.0
    score = np.where(seen, rng.random((b, v)) + (centre_distance < 45) + moving, -np.inf)
    target = np.argmax(score, axis=1)
    keep = np.isfinite(score[np.arange(b), target])
    track, valid, target = track[keep], valid[keep], target[keep]
    b = len(target)
    rows = np.arange(b)

    noisy = track[:, :, :h] + rng.normal(0.0, options.noise, size=track[:, :, :h].shape)
    origin, rotation = target_frames(noisy[rows, target], valid[rows, target, :h])
    local = to_frame(noisy, origin, rotation)
    future = to_frame(track[rows, target, h:][:, None], origin, rotation)[:, 0]

    last = local[:, :, h - 1]
    distance = np.where(valid[:, :, h - 1], np.linalg.norm(last, axis=-1), np.inf)
    distance[rows, target] = -1.0  # the target first
    order = np.argsort(distance, axis=1, kind="stable")[:, : options.max_agents]
    agents_out = np.take_along_axis(local, order[..., None, None], 1)
    valid_out = (
        np.take_along_axis(valid[:, :, :h], order[..., None], 1)
        & np.isfinite(np.take_along_axis(distance, order, 1))[..., None]
    )
    types_out = kinds[order]

    polylines, polyline_valid, polyline_type = nearest_polylines(
        layout.map_pieces, layout.map_kinds, origin, rotation, options.max_polylines, options.polyline_points
    )
    return TrajectorySet.from_numpy(
        agents=agents_out * valid_out[..., None],
        agent_valid=valid_out,
        agent_type=types_out,
        future=future,
        future_valid=np.ones(future.shape[:2], dtype=bool),
        polylines=polylines,
        polyline_valid=polyline_valid,
        polyline_type=polyline_type,
    )


# Each stream's chunks simulated so far in this process: a sweep's data scales are prefixes of one stream,
# so the 7X cell extends the chunks the 1X..4X cells already simulated instead of starting again.
_STREAMS: dict[tuple[SyntheticOptions, int], list[TrajectorySet]] = {}


def synthetic_traffic(options: SyntheticOptions, scenes: int, seed: int) -> TrajectorySet:
    """The first `scenes` scenes of the stream for `seed` (its chunks are simulated once per process)."""
    chunks = _STREAMS.setdefault((options, seed), [])
    parts, have = [], 0
    for chunk in itertools.count():
        if have >= scenes:
            break
        if chunk == len(chunks):
            chunks.append(simulate_chunk(options, seed, chunk))
        parts.append(chunks[chunk])
        have += len(chunks[chunk])
    return TrajectorySet.concat(parts).subset(slice(0, scenes))
