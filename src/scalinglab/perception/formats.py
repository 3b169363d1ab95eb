"""COCO-format detection (JSON + images) and KITTI 2D labels (`label_2` text files): read and write.

Readers resize images to the study's image size (when given) and scale the boxes with them; writers
save PNGs and the annotation files, so synthetic scenes can be exported and real data read the same way.
Crowd annotations (COCO) and `DontCare` regions (KITTI) are left out.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch.nn import functional
from torchvision.io import ImageReadMode, decode_image, write_png

from scalinglab.errors import UserError
from scalinglab.perception.sample import DetectionSet

NO_3D = " 0.00 0.00 0.00 0.00 0.00 0.00 0.00"  # dimensions, location, rotation_y
KITTI_CLASSES = ("Car", "Van", "Truck", "Pedestrian", "Person_sitting", "Cyclist", "Tram", "Misc")


def _read_image(path: Path, size: tuple[int, int] | None) -> tuple[torch.Tensor, float, float]:
    if not path.is_file():
        raise UserError(f"{path}: no such image")
    try:
        image = decode_image(str(path), mode=ImageReadMode.RGB)
    except RuntimeError:
        raise UserError(f"{path}: not a readable image") from None
    height, width = image.shape[1:]
    if size is None or (height, width) == tuple(size):
        return image, 1.0, 1.0
    resized = functional.interpolate(
        image[None].float(), size=size, mode="bilinear", antialias=True, align_corners=False
    )
    return resized[0].round().clamp(0, 255).to(torch.uint8), size[1] / width, size[0] / height


def _stack(images: list[torch.Tensor], source: Path) -> torch.Tensor:
    if len({tuple(i.shape) for i in images}) > 1:
        raise UserError(f"{source}: images differ in size; give an image size to resize them to")
    return torch.stack(images)


def load_coco(
    annotations: str | Path,
    images_dir: str | Path,
    image_size: tuple[int, int] | None = None,
    classes: tuple[str, ...] | None = None,
) -> DetectionSet:
    """A COCO detection file: `bbox` [x, y, w, h] -> (x1, y1, x2, y2); categories -> labels 1..C."""
    annotations, images_dir = Path(annotations), Path(images_dir)
    try:
        data = json.loads(annotations.read_text())
    except FileNotFoundError:
        raise UserError(f"{annotations}: no such file") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{annotations}: not valid JSON (line {exc.lineno})") from None
    for key in ("images", "annotations", "categories"):
        if key not in data:
            raise UserError(f"{annotations}: missing key '{key}'")
    names = {c["id"]: c["name"] for c in data["categories"]}
    classes = classes or tuple(names[k] for k in sorted(names))
    label_of = {cid: classes.index(name) + 1 for cid, name in names.items() if name in classes}
    per_image: dict[int, list[tuple[list[float], int]]] = {img["id"]: [] for img in data["images"]}
    for k, ann in enumerate(data["annotations"]):
        if ann.get("iscrowd", 0) or ann.get("category_id") not in label_of:
            continue
        box = ann.get("bbox")
        if not (isinstance(box, list) and len(box) == 4 and box[2] >= 0 and box[3] >= 0):
            raise UserError(f"{annotations}: annotations[{k}]: key 'bbox' must be [x, y, width, height]")
        if ann["image_id"] not in per_image:
            raise UserError(f"{annotations}: annotations[{k}]: image_id {ann['image_id']} is not in 'images'")
        per_image[ann["image_id"]].append((box, label_of[ann["category_id"]]))
    images, boxes, labels = [], [], []
    for img in data["images"]:
        image, sx, sy = _read_image(images_dir / img["file_name"], image_size)
        items = per_image[img["id"]]
        xywh = torch.tensor([b for b, _ in items], dtype=torch.float64).reshape(-1, 4)
        xyxy = torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], dim=1) * torch.tensor(
            [sx, sy, sx, sy], dtype=torch.float64
        )
        images.append(image)
        boxes.append(xyxy.float())
        labels.append(torch.tensor([c for _, c in items], dtype=torch.int64))
    return DetectionSet(_stack(images, annotations), boxes, labels, tuple(classes))


def write_coco(data: DetectionSet, annotations: str | Path, images_dir: str | Path) -> None:
    annotations, images_dir = Path(annotations), Path(images_dir)
    images_dir.mkdir(parents=True, exist_ok=True)
    out = {
        "images": [],
        "annotations": [],
        "categories": [{"id": i + 1, "name": n} for i, n in enumerate(data.classes)],
    }
    for i in range(len(data)):
        name = f"{i:06d}.png"
        write_png(data.images[i], str(images_dir / name))
        out["images"].append(
            {"id": i, "file_name": name, "height": data.images.shape[2], "width": data.images.shape[3]}
        )
        for box, label in zip(data.boxes[i].tolist(), data.labels[i].tolist(), strict=True):
            x1, y1, x2, y2 = box
            out["annotations"].append(
                {
                    "id": len(out["annotations"]),
                    "image_id": i,
                    "category_id": label,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
    annotations.write_text(json.dumps(out))


def load_kitti(
    root: str | Path, image_size: tuple[int, int] | None = None, classes: tuple[str, ...] = KITTI_CLASSES
) -> DetectionSet:
    """KITTI object detection: `root/image_2/<id>.png` and `root/label_2/<id>.txt` (15 fields per object:
    type, truncated, occluded, alpha, left, top, right, bottom, then 3D fields)."""
    root = Path(root)
    label_files = sorted((root / "label_2").glob("*.txt"))
    if not label_files:
        raise UserError(f"{root / 'label_2'}: no KITTI label files (*.txt)")
    images, boxes, labels = [], [], []
    for path in label_files:
        items = []
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) < 15:
                raise UserError(f"{path}: line {number}: expected 15 fields, found {len(fields)}")
            if fields[0] == "DontCare" or fields[0] not in classes:
                continue
            try:
                box = [float(v) for v in fields[4:8]]
            except ValueError:
                raise UserError(f"{path}: line {number}: fields 5-8 (the 2D box) are not numbers") from None
            items.append((box, classes.index(fields[0]) + 1))
        image_path = next(
            (p for p in (root / "image_2" / f"{path.stem}{ext}" for ext in (".png", ".jpg")) if p.is_file()),
            root / "image_2" / f"{path.stem}.png",
        )
        image, sx, sy = _read_image(image_path, image_size)
        images.append(image)
        scale = torch.tensor([sx, sy, sx, sy], dtype=torch.float64)
        boxes.append((torch.tensor([b for b, _ in items], dtype=torch.float64).reshape(-1, 4) * scale).float())
        labels.append(torch.tensor([c for _, c in items], dtype=torch.int64))
    return DetectionSet(_stack(images, root), boxes, labels, tuple(classes))


def write_kitti(data: DetectionSet, root: str | Path) -> None:
    root = Path(root)
    (root / "image_2").mkdir(parents=True, exist_ok=True)
    (root / "label_2").mkdir(parents=True, exist_ok=True)
    for i in range(len(data)):
        write_png(data.images[i], str(root / "image_2" / f"{i:06d}.png"))
        lines = [
            f"{data.classes[label - 1]} 0.00 0 0.00 {x1:.2f} {y1:.2f} {x2:.2f} {y2:.2f}" + NO_3D
            for (x1, y1, x2, y2), label in zip(data.boxes[i].tolist(), data.labels[i].tolist(), strict=True)
        ]
        (root / "label_2" / f"{i:06d}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
