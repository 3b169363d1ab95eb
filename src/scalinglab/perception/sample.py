"""The one sample type every detection source produces: images with boxes and class labels.

``images`` is uint8 [S, 3, H, W]; ``boxes[i]`` float [k, 4] in pixels (x1, y1, x2, y2), ``labels[i]``
int64 [k] in 1..C (0 is kept for the background, as torchvision's detection heads expect).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class DetectionSet:
    images: torch.Tensor
    boxes: list[torch.Tensor]
    labels: list[torch.Tensor]
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return self.images.shape[0]

    def subset(self, indices: torch.Tensor | list[int] | range) -> DetectionSet:
        index = [int(i) for i in (indices.tolist() if isinstance(indices, torch.Tensor) else indices)]
        return DetectionSet(
            self.images[index], [self.boxes[i] for i in index], [self.labels[i] for i in index], self.classes
        )

    def batch(self, device: torch.device | str) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
        """Float images in [0, 1] and torchvision-style targets, on `device`."""
        images = (self.images.to(device, non_blocking=True).float() / 255.0).unbind(0)
        targets = [
            {"boxes": b.to(device), "labels": c.to(device)} for b, c in zip(self.boxes, self.labels, strict=True)
        ]
        return list(images), targets
