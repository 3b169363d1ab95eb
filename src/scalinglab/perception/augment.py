"""Training-time augmentation for detection batches, through torchvision's v2 transforms (boxes follow
the image): a random horizontal flip and, optionally, photometric jitter. Random draws come from
torch's global generator, which the study runner seeds per run."""

from __future__ import annotations

import functools

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from scalinglab.perception.sample import DetectionSet


@functools.lru_cache(maxsize=8)
def _transform(hflip: bool, color_jitter: float) -> v2.Compose | None:
    steps: list[v2.Transform] = []
    if hflip:
        steps.append(v2.RandomHorizontalFlip(0.5))
    if color_jitter > 0:
        steps.append(
            v2.ColorJitter(
                brightness=color_jitter, contrast=color_jitter, saturation=color_jitter, hue=color_jitter / 10
            )
        )
    return v2.Compose(steps) if steps else None


def augment(data: DetectionSet, hflip: bool = True, color_jitter: float = 0.0) -> DetectionSet:
    """Each image drawn independently; boxes are flipped with their image, labels are unchanged."""
    transform = _transform(hflip, color_jitter)
    if transform is None or len(data) == 0:
        return data
    height, width = data.images.shape[-2:]
    images, boxes = [], []
    for image, box in zip(data.images, data.boxes, strict=True):
        wrapped = tv_tensors.BoundingBoxes(box, format="XYXY", canvas_size=(height, width))
        out_image, out_box = transform(tv_tensors.Image(image), wrapped)
        images.append(out_image.as_subclass(torch.Tensor))
        boxes.append(out_box.as_subclass(torch.Tensor))
    return DetectionSet(torch.stack(images), boxes, list(data.labels), data.classes)
