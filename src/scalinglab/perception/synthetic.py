"""Synthetic driving scenes: a road in perspective with lane markings, sky, ground and roadside clutter,
and cars, trucks, pedestrians, cyclists and signs at varied distance, position, colour and lighting.

Objects are placed on the ground plane at a depth z and drawn far to near, so near objects occlude far
ones; a box is kept when at least `min_visible` of its object's pixels stay visible. Look-alikes
(`lookalikes` per image on average) are unlabelled objects that differ from a class by one part: a parked
bicycle (a cyclist without rider), a bollard (a pedestrian without head or legs), a lamp post (a sign
without face), a billboard (a truck body on legs), a road barrier (a car body without wheels or windows).
`shadows` darkens patches of ground and road. Image i depends only on (seed, i): a larger data scale
contains a smaller one. Rendering is plain numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from scalinglab.perception.sample import DetectionSet

CLASSES = ("car", "truck", "pedestrian", "cyclist", "sign")
# Width and height in units of the image width at depth z = 1.
SIZES = {
    "car": (0.34, 0.22),
    "truck": (0.42, 0.42),
    "pedestrian": (0.08, 0.26),
    "cyclist": (0.14, 0.24),
    "sign": (0.08, 0.3),
}
CLASS_WEIGHTS = np.array([0.4, 0.12, 0.2, 0.13, 0.15])
CLASS_PROBS = CLASS_WEIGHTS / CLASS_WEIGHTS.sum()
# Each class's unlabelled look-alike, drawn at the class's size.
LOOKALIKES = {"car": "barrier", "truck": "billboard", "pedestrian": "bollard", "cyclist": "bicycle", "sign": "lamp"}


# Named shifts of the synthetic scenes for extra eval sets (task option overrides): "hard" adds unlabelled
# look-alikes and shadow patches and places objects deeper (smaller in the image).
EVAL_PRESETS: dict[str, dict[str, float]] = {"hard": {"lookalikes": 2.0, "shadows": 2.0, "max_depth": 14.0}}


@dataclass(frozen=True)
class SceneOptions:
    height: int = 96
    width: int = 128
    mean_objects: float = 5.0
    min_visible: float = 0.3
    min_size: float = 4.0  # pixels, both sides
    max_depth: float = 9.0  # objects stand at depths 1..max_depth (size ~ 1/depth)
    lookalikes: float = 0.0  # mean number of unlabelled look-alikes per image
    shadows: float = 0.0  # mean number of shadow patches on the ground per image


def _disc(
    canvas: np.ndarray,
    ids: np.ndarray,
    cx: float,
    cy: float,
    r: float,
    colour: np.ndarray,
    ident: int,
    ring: bool = False,
) -> None:
    h, w = ids.shape
    x0, x1 = max(int(cx - r), 0), min(int(cx + r) + 1, w)
    y0, y1 = max(int(cy - r), 0), min(int(cy + r) + 1, h)
    if x0 >= x1 or y0 >= y1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1]
    dist = np.hypot(xx + 0.5 - cx, yy + 0.5 - cy)
    mask = dist <= r
    if ring:
        mask &= dist >= 0.6 * r
    canvas[y0:y1, x0:x1][mask] = colour
    ids[y0:y1, x0:x1][mask] = ident


def _rect(
    canvas: np.ndarray, ids: np.ndarray, x0: float, y0: float, x1: float, y1: float, colour: np.ndarray, ident: int
) -> None:
    h, w = ids.shape
    a, b = max(int(round(x0)), 0), min(int(round(x1)), w)
    c, d = max(int(round(y0)), 0), min(int(round(y1)), h)
    if a < b and c < d:
        canvas[c:d, a:b] = colour
        ids[c:d, a:b] = ident


def _draw(
    kind: str, canvas, ids, cx: float, bottom: float, w: float, h: float, rng: np.random.Generator, ident: int
) -> None:
    colour = rng.uniform(0.05, 0.95, 3)
    dark = np.array([0.08, 0.08, 0.1])
    left, top = cx - w / 2, bottom - h
    if kind == "car":
        _rect(canvas, ids, left, top + 0.35 * h, left + w, bottom - 0.12 * h, colour, ident)
        _rect(canvas, ids, left + 0.18 * w, top, left + 0.82 * w, top + 0.4 * h, colour * 0.85, ident)
        _rect(
            canvas,
            ids,
            left + 0.25 * w,
            top + 0.08 * h,
            left + 0.75 * w,
            top + 0.33 * h,
            np.array([0.55, 0.7, 0.85]) * rng.uniform(0.5, 1),
            ident,
        )
        for x in (left + 0.2 * w, left + 0.8 * w):
            _disc(canvas, ids, x, bottom - 0.12 * h, 0.12 * h, dark, ident)
    elif kind == "truck":
        _rect(canvas, ids, left, top, left + 0.7 * w, bottom - 0.1 * h, colour, ident)
        _rect(canvas, ids, left + 0.7 * w, top + 0.35 * h, left + w, bottom - 0.1 * h, rng.uniform(0.1, 0.9, 3), ident)
        for x in (left + 0.15 * w, left + 0.5 * w, left + 0.85 * w):
            _disc(canvas, ids, x, bottom - 0.08 * h, 0.08 * h, dark, ident)
    elif kind == "pedestrian":
        _disc(canvas, ids, cx, top + 0.09 * h, 0.09 * h, np.array([0.8, 0.6, 0.45]) * rng.uniform(0.5, 1.1), ident)
        _rect(canvas, ids, cx - w / 2, top + 0.18 * h, cx + w / 2, top + 0.6 * h, colour, ident)
        _rect(canvas, ids, cx - w / 2, top + 0.6 * h, cx - 0.05 * w, bottom, colour * 0.6, ident)
        _rect(canvas, ids, cx + 0.05 * w, top + 0.6 * h, cx + w / 2, bottom, colour * 0.6, ident)
    elif kind == "cyclist":
        r = 0.22 * h
        for x in (left + r, left + w - r):
            _disc(canvas, ids, x, bottom - r, r, dark, ident, ring=True)
        _rect(canvas, ids, cx - 0.12 * w, top + 0.15 * h, cx + 0.12 * w, bottom - 1.2 * r, colour, ident)
        _disc(canvas, ids, cx, top + 0.08 * h, 0.08 * h, np.array([0.8, 0.6, 0.45]), ident)
        _rect(canvas, ids, left + r, bottom - 1.3 * r, left + w - r, bottom - 1.0 * r, colour * 0.5, ident)
    elif kind == "sign":  # a pole and a round or square face
        _rect(canvas, ids, cx - 0.08 * w, top + 0.4 * h, cx + 0.08 * w, bottom, np.array([0.5, 0.5, 0.5]), ident)
        face = [np.array([0.85, 0.1, 0.1]), np.array([0.1, 0.3, 0.8]), np.array([0.95, 0.8, 0.1])][rng.integers(3)]
        if rng.random() < 0.5:
            _disc(canvas, ids, cx, top + w / 2, w / 2, face, ident)
        else:
            _rect(canvas, ids, left, top, left + w, top + w, face, ident)
    elif kind == "barrier":  # a car's body, no cabin, windows or wheels: striped
        stripe = rng.uniform(0.05, 0.95, 3)
        for i in range(5):
            x0, x1 = left + i * w / 5, left + (i + 1) * w / 5
            _rect(canvas, ids, x0, top + 0.35 * h, x1, bottom, colour if i % 2 else stripe, ident)
    elif kind == "billboard":  # a truck's body on two legs, no cab or wheels
        _rect(canvas, ids, left, top, left + w, top + 0.6 * h, colour, ident)
        poster = rng.uniform(0.05, 0.95, 3)
        _rect(canvas, ids, left + 0.1 * w, top + 0.15 * h, left + 0.6 * w, top + 0.45 * h, poster, ident)
        for x in (left + 0.2 * w, left + 0.8 * w):
            _rect(canvas, ids, x - 0.03 * w, top + 0.6 * h, x + 0.03 * w, bottom, np.array([0.4, 0.4, 0.4]), ident)
    elif kind == "bollard":  # a pedestrian's outline, one piece, no head or legs
        _disc(canvas, ids, cx, top + 0.18 * h, w / 2, colour, ident)
        _rect(canvas, ids, cx - w / 2, top + 0.18 * h, cx + w / 2, bottom, colour, ident)
    elif kind == "bicycle":  # a cyclist's wheels and frame, no rider
        r = 0.22 * h
        for x in (left + r, left + w - r):
            _disc(canvas, ids, x, bottom - r, r, dark, ident, ring=True)
        _rect(canvas, ids, left + r, bottom - 1.3 * r, left + w - r, bottom - 1.0 * r, colour * 0.5, ident)
        _rect(canvas, ids, cx - 0.04 * w, bottom - 2.2 * r, cx + 0.04 * w, bottom - 1.0 * r, colour * 0.5, ident)
    else:  # lamp: a sign's pole, taller, with a small lamp and no face
        _rect(canvas, ids, cx - 0.08 * w, top, cx + 0.08 * w, bottom, np.array([0.5, 0.5, 0.5]), ident)
        _rect(canvas, ids, cx - 0.3 * w, top, cx + 0.3 * w, top + 0.08 * h, np.array([0.95, 0.95, 0.8]), ident)


def _lateral(rng: np.random.Generator, kinds: np.ndarray) -> np.ndarray:
    """Each object's lateral position in road half-widths: signs stand beside the road, the rest on or by it."""
    n = len(kinds)
    return np.where(CLASSES.index("sign") == kinds, rng.choice([-1.25, 1.25], n), rng.uniform(-1.1, 1.1, n))


def render_scene(options: SceneOptions, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image (uint8 [3, H, W]), its boxes [k, 4] (x1, y1, x2, y2) and labels [k] (1-based)."""
    h, w = options.height, options.width
    canvas = np.zeros((h, w, 3))
    ids = np.zeros((h, w), dtype=np.int64)
    horizon = h * rng.uniform(0.3, 0.5)
    rows = np.arange(h)[:, None]
    sky_top, sky_bottom = rng.uniform(0.3, 0.8, 3), rng.uniform(0.6, 1.0, 3)
    t = np.clip(rows / horizon, 0, 1)[..., None]
    canvas[:] = sky_top * (1 - t) + sky_bottom * t  # [H, 1, 3] broadcast over the width
    ground = rng.uniform(0.2, 0.5, 3) * np.array([0.8, 1.0, 0.7])
    canvas[int(horizon) :] = ground
    for _ in range(rng.integers(2, 7)):  # roadside clutter above the horizon: buildings, trees
        bw, bh = rng.uniform(0.05, 0.25) * w, rng.uniform(0.05, 0.3) * h
        bx = rng.uniform(0, w)
        _rect(canvas, np.zeros_like(ids), bx, horizon - bh, bx + bw, horizon + 1, rng.uniform(0.1, 0.7, 3), 0)
    vanish = w * rng.uniform(0.35, 0.65)
    half_bottom = w * rng.uniform(0.45, 0.7)
    f = np.clip((np.arange(h) + 0.5 - horizon) / (h - horizon), 0, None)[:, None]  # 0 at the horizon, 1 at the bottom
    cols = np.arange(w)[None, :] + 0.5
    centre, half = vanish + (w / 2 - vanish) * f, half_bottom * f
    below = f > 0
    road_mask = below & (np.abs(cols - centre) < half)
    canvas[road_mask] = rng.uniform(0.25, 0.45)
    dashes = below & ((f * 12) % 1 < 0.5)
    for lane in (-1 / 3, 1 / 3):
        canvas[dashes & (np.abs(cols - (centre + lane * half)) < 0.5 + f)] = 0.9
    # Shadows and look-alikes draw from a spawned stream, so the labelled objects and everything else in
    # the scene are the same with or without them.
    extras = rng.spawn(1)[0]
    for _ in range(extras.poisson(options.shadows) if options.shadows > 0 else 0):
        sy = extras.uniform(horizon, h)
        sh, sw, sx = extras.uniform(0.03, 0.15) * h, extras.uniform(0.1, 0.5) * w, extras.uniform(-0.1, 1.0) * w
        a, b = max(int(sx), 0), min(int(sx + sw), w)
        c, d = max(int(sy), 0), min(int(sy + sh), h)
        canvas[c:d, a:b] *= extras.uniform(0.4, 0.8)

    count = min(rng.poisson(options.mean_objects) + 1, 12)
    kinds = rng.choice(len(CLASSES), size=count, p=CLASS_PROBS)
    depth = rng.uniform(1.0, options.max_depth, size=count)
    lateral = _lateral(rng, kinds)
    labelled = np.ones(count, dtype=bool)
    if options.lookalikes > 0:  # unlabelled, placed and sized like the class they resemble
        extra = extras.poisson(options.lookalikes)
        extra_kinds = extras.choice(len(CLASSES), size=extra, p=CLASS_PROBS)
        extra_lateral = _lateral(extras, extra_kinds)
        kinds = np.concatenate([kinds, extra_kinds])
        depth = np.concatenate([depth, extras.uniform(1.0, options.max_depth, size=extra)])
        lateral = np.concatenate([lateral, extra_lateral])
        labelled = np.concatenate([labelled, np.zeros(extra, dtype=bool)])
    order = np.argsort(-depth)  # far first
    labels, idents = [], []
    full_area = {}
    for rank, k in enumerate(order):
        kind = CLASSES[kinds[k]]
        f = 1.0 / depth[k]
        bottom = horizon + (h - horizon) * f
        centre, half = vanish + (w / 2 - vanish) * f, half_bottom * f
        cx = centre + lateral[k] * half
        draws = rng if labelled[k] else extras
        bw, bh = SIZES[kind][0] * w * f * draws.uniform(0.85, 1.15), SIZES[kind][1] * w * f * draws.uniform(0.85, 1.15)
        ident = rank + 1
        alone = np.zeros_like(ids)  # the object's own pixels, before anything nearer covers them
        _draw(kind if labelled[k] else LOOKALIKES[kind], canvas, alone, cx, bottom, bw, bh, draws, ident)
        ids[alone == ident] = ident
        if labelled[k]:
            full_area[ident] = int((alone == ident).sum())
            idents.append(ident)
            labels.append(kinds[k] + 1)
    kept_boxes, kept_labels = [], []
    for ident, label in zip(idents, labels, strict=True):
        visible = ids == ident
        if full_area[ident] == 0 or visible.sum() < options.min_visible * full_area[ident]:
            continue
        rows_, cols_ = np.nonzero(visible)
        box = [cols_.min(), rows_.min(), cols_.max() + 1, rows_.max() + 1]
        if box[2] - box[0] >= options.min_size and box[3] - box[1] >= options.min_size:
            kept_boxes.append(box)
            kept_labels.append(label)
    light = rng.uniform(0.55, 1.25)
    image = np.clip(canvas * light + rng.normal(0, 0.03, canvas.shape), 0, 1)
    return (
        (image * 255).astype(np.uint8).transpose(2, 0, 1),
        np.asarray(kept_boxes, dtype=np.float32).reshape(-1, 4),
        np.asarray(kept_labels, dtype=np.int64),
    )


def synthetic_scenes(options: SceneOptions, count: int, seed: int) -> DetectionSet:
    """The first `count` images of the stream for `seed`."""
    images, boxes, labels = [], [], []
    for i in range(count):
        image, b, lab = render_scene(options, np.random.default_rng([seed, i]))
        images.append(torch.from_numpy(image))
        boxes.append(torch.from_numpy(b))
        labels.append(torch.from_numpy(lab))
    return DetectionSet(torch.stack(images), boxes, labels, CLASSES)
