"""The perception task: synthetic scenes, COCO / KITTI round trips, the detector family, mAP, the runner."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from scalinglab.errors import UserError
from scalinglab.perception.augment import augment
from scalinglab.perception.formats import load_coco, load_kitti, write_coco, write_kitti
from scalinglab.perception.model import BackboneSpec, backbone_at_scale, backbone_parameters, build_detector
from scalinglab.perception.synthetic import CLASSES, SceneOptions, synthetic_scenes
from scalinglab.study.config import parse_config
from scalinglab.study.runner import execute
from scalinglab.study.store import Store
from scalinglab.tasks.perception import PerceptionTask

OPTIONS = SceneOptions(height=64, width=96)


@pytest.fixture(scope="module")
def scenes():
    return synthetic_scenes(OPTIONS, 80, seed=0)


def test_synthetic_scenes_are_deterministic_nested_and_labelled(scenes):
    again = synthetic_scenes(OPTIONS, 10, seed=0)
    assert torch.equal(again.images, scenes.images[:10])
    assert all(torch.equal(a, b) for a, b in zip(again.boxes, scenes.boxes[:10], strict=True))
    assert not torch.equal(synthetic_scenes(OPTIONS, 10, seed=1).images, again.images)
    boxes = torch.cat(scenes.boxes)
    labels = torch.cat(scenes.labels)
    assert len(boxes) > 60
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= 96).all() and (boxes[:, 3] <= 64).all()
    assert ((boxes[:, 2] - boxes[:, 0]) >= 4).all() and ((boxes[:, 3] - boxes[:, 1]) >= 4).all()
    assert set(labels.tolist()) == set(range(1, len(CLASSES) + 1))


def test_coco_round_trip_is_exact_and_resizing_scales_boxes(scenes, tmp_path):
    part = scenes.subset(range(6))
    write_coco(part, tmp_path / "ann.json", tmp_path / "img")
    back = load_coco(tmp_path / "ann.json", tmp_path / "img")
    assert torch.equal(back.images, part.images) and back.classes == CLASSES
    for a, b, la, lb in zip(back.boxes, part.boxes, back.labels, part.labels, strict=True):
        torch.testing.assert_close(a, b)
        assert torch.equal(la, lb)
    half = load_coco(tmp_path / "ann.json", tmp_path / "img", image_size=(32, 48))
    assert half.images.shape[2:] == (32, 48)
    torch.testing.assert_close(half.boxes[0], part.boxes[0] / 2)


def test_kitti_round_trip_is_exact(scenes, tmp_path):
    part = scenes.subset(range(5))
    kitti = type(part)(part.images, part.boxes, part.labels, ("Car", "Truck", "Pedestrian", "Cyclist", "Sign"))
    write_kitti(kitti, tmp_path)
    back = load_kitti(tmp_path, classes=kitti.classes)
    assert torch.equal(back.images, part.images)
    for a, b, la, lb in zip(back.boxes, part.boxes, back.labels, part.labels, strict=True):
        torch.testing.assert_close(a, b)
        assert torch.equal(la, lb)


def test_loader_errors_name_the_file(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"images": [], "annotations": []}))
    with pytest.raises(UserError, match="a.json: missing key 'categories'"):
        load_coco(tmp_path / "a.json", tmp_path)
    (tmp_path / "label_2").mkdir()
    (tmp_path / "label_2" / "000000.txt").write_text("Car 0 0 0 1 2 3\n")
    with pytest.raises(UserError, match=r"000000.txt: line 1: expected 15 fields, found 7"):
        load_kitti(tmp_path)


@pytest.mark.parametrize("stem", ["patch", "overlap_act"])
def test_family_baseline_then_convnext_by_parameters(stem):
    baseline = backbone_at_scale(1, 8, stem=stem)
    assert baseline.kind == "vgg"
    every = [BackboneSpec("convnext", d, stem=stem) for d in range(2, 34, 2)]
    for scale in (2, 4, 8):
        spec = backbone_at_scale(scale, 8, stem=stem)
        assert spec.kind == "convnext"
        target = scale * backbone_parameters(baseline)
        brute = min(every, key=lambda s: abs(math.log(backbone_parameters(s) / target)))
        assert spec == brute  # the closed-form width search agrees with trying every width
        ratio = backbone_parameters(spec) / backbone_parameters(baseline)
        assert ratio == pytest.approx(scale, rel=0.25)
        detector = build_detector(spec, 5, (64, 96))
        backbone = detector.backbone.features
        assert sum(p.numel() for p in backbone.parameters()) == backbone_parameters(spec)  # exact, not estimated
    assert backbone_at_scale(40, 64, named=True).kind == "convnext_xlarge"


def test_flip_moves_boxes_with_the_image_and_is_seeded(scenes):
    part = scenes.subset(range(8))
    torch.manual_seed(3)
    out = augment(part, hflip=True)
    torch.manual_seed(3)
    again = augment(part, hflip=True)
    assert torch.equal(out.images, again.images)
    width = part.images.shape[-1]
    flipped = [i for i in range(8) if not torch.equal(out.images[i], part.images[i])]
    assert 0 < len(flipped) < 8  # each image drawn independently
    for i in range(8):
        if i in flipped:
            assert torch.equal(out.images[i], part.images[i].flip(-1))
            x1, y1, x2, y2 = part.boxes[i].unbind(-1)
            assert torch.equal(out.boxes[i], torch.stack([width - x2, y1, width - x1, y2], -1))
        else:
            assert torch.equal(out.boxes[i], part.boxes[i])
        assert torch.equal(out.labels[i], part.labels[i])
    assert augment(part, hflip=False) is part
    jittered = augment(part, hflip=False, color_jitter=0.4)
    assert jittered.images.dtype == torch.uint8 and not torch.equal(jittered.images, part.images)
    assert all(torch.equal(a, b) for a, b in zip(jittered.boxes, part.boxes, strict=True))


class Oracle(nn.Module):
    """Returns given detections in eval mode and a zero loss in train mode."""

    def __init__(self, detections):
        super().__init__()
        self.detections = detections
        self.calls = 0
        self.weight = nn.Parameter(torch.zeros(()))

    def forward(self, images, targets=None):
        if self.training:
            return {"loss": self.weight * 0}
        out = self.detections[self.calls : self.calls + len(images)]
        self.calls += len(images)
        return out


def test_map_is_one_on_perfect_predictions_and_zero_on_none(scenes):
    task = PerceptionTask({"eval_batch": 8})
    data = scenes.subset(range(20))
    perfect = [
        {"boxes": b, "scores": torch.ones(len(b)), "labels": c} for b, c in zip(data.boxes, data.labels, strict=True)
    ]
    scores = task.evaluate(Oracle(perfect), data, torch.device("cpu"))
    assert scores["mAP"] == pytest.approx(1.0) and scores["mAP50"] == pytest.approx(1.0)
    empty = [{"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.long)}] * 20
    scores = task.evaluate(Oracle(empty), data, torch.device("cpu"))
    assert scores["mAP"] == 0.0 and scores["mAP50"] == 0.0

    def shifted(fraction: float) -> list[dict]:
        return [
            {
                "boxes": b + torch.stack([(b[:, 2] - b[:, 0]) * fraction, torch.zeros(len(b))] * 2, dim=1),
                "scores": torch.ones(len(b)),
                "labels": c,
            }
            for b, c in zip(data.boxes, data.labels, strict=True)
        ]

    # Shifted by half their width: IoU 1/3, below every COCO threshold.
    assert task.evaluate(Oracle(shifted(0.5)), data, torch.device("cpu"))["mAP50"] == 0.0
    # Shifted by a fifth: IoU 0.8 / 1.2 = 2/3, a hit at IoU .50, .55, .60, .65 and a miss from .70 on, so
    # mAP@[.5:.95] is 4 of its 10 thresholds.
    scores = task.evaluate(Oracle(shifted(0.2)), data, torch.device("cpu"))
    assert (scores["mAP50"], scores["mAP75"]) == (pytest.approx(1.0), 0.0)
    assert scores["mAP"] == pytest.approx(0.4)


def test_a_few_training_steps_reduce_the_loss(scenes):
    torch.manual_seed(0)
    task = PerceptionTask({"image_height": 64, "image_width": 96, "base_width": 4, "fpn_channels": 32})
    model = task.build_model(1, "width")
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    batch = task.batch(scenes, torch.arange(8), torch.device("cpu"))
    losses = []
    for _ in range(25):
        loss = task.loss(model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


@pytest.mark.slow
def test_study_of_the_perception_task(tmp_path):
    config = parse_config(
        {
            "name": "p",
            "task": "perception",
            "task_options": {
                "image_height": 64,
                "image_width": 96,
                "base_samples": 16,
                "eval_samples": 8,
                "base_width": 4,
                "fpn_channels": 32,
            },
            "model_scales": [1, 4],
            "data_scales": [0.5, 1],
            "budget": {"steps": 2},
            "batch_size": 4,
            "eval_every": 2,
        }
    )
    store = Store.create(tmp_path / "s", config)
    assert execute(store) == {"done": 4}
    obs = store.observations()
    assert {"mAP", "mAP50", "mAP75", "loss"} <= set(obs.metric)
    assert set(obs.loc[obs.metric == "mAP", "higher_is_better"]) == {1}
    assert sorted(obs.dataset_size.unique()) == [8, 16]


@pytest.mark.parametrize("kind", ["vgg", "convnext"])
def test_fpn_levels_follow_the_finest_stride(kind):
    for finest in (4, 8):
        spec = BackboneSpec(kind, 8, finest_stride=finest)
        detector = build_detector(spec, 5, (64, 96))
        maps = detector.backbone(torch.zeros(1, 3, 64, 96))
        assert [tuple(m.shape[2:]) for m in maps.values()] == [(64 // s, 96 // s) for s in spec.strides]
        # Every backbone parameter takes part (nothing past the last tap is counted in N).
        detector.backbone(torch.rand(1, 3, 64, 96))["2"].sum().backward()
        assert all(p.grad is not None for p in detector.backbone.features.parameters())


def test_task_options_reach_the_backbone():
    options = {
        "base_width": 4,
        "finest_stride": 4,
        "convnext_stem": "overlap_act",
        "drop_path": 0.1,
        "layer_scale": 1.0,
    }
    task = PerceptionTask({**options, "image_height": 64, "image_width": 96, "fpn_channels": 32})
    assert task.backbone(1) == BackboneSpec("vgg", 4, finest_stride=4, drop_path=0.1, layer_scale=1.0)
    spec = task.backbone(4)
    assert (spec.kind, spec.finest_stride, spec.stem, spec.drop_path, spec.layer_scale) == (
        "convnext",
        4,
        "overlap_act",
        0.1,
        1.0,
    )
    assert spec.width == backbone_at_scale(4, 4, finest_stride=4, stem="overlap_act").width
    model = task.build_model(4, "width")
    assert sum(p.numel() for p in model.backbone.features.parameters()) == backbone_parameters(spec)


def test_min_box_side_labels_smaller_objects_in_the_same_images():
    base = {"image_height": 64, "image_width": 96, "base_samples": 12, "eval_samples": 4, "base_width": 4}
    default = PerceptionTask(base).build_data(1.0, 0).train
    small = PerceptionTask({**base, "min_box_side": 1}).build_data(1.0, 0).train
    assert torch.equal(default.images, small.images)
    sides = [torch.minimum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) for b in default.boxes]
    assert all(bool((s >= 4).all()) for s in sides)
    assert sum(len(b) for b in small.boxes) > sum(len(b) for b in default.boxes)
    for big, every in zip(default.boxes, small.boxes, strict=True):  # the default's boxes are among them
        assert all(any(torch.equal(box, other) for other in every) for box in big)


def test_lookalikes_and_shadows_add_pixels_but_no_labels():
    base = {"image_height": 64, "image_width": 96, "base_samples": 40, "eval_samples": 4, "max_depth": 5}
    plain = PerceptionTask(base).build_data(1.0, 0).train
    hard = PerceptionTask({**base, "lookalikes": 3, "shadows": 2}).build_data(1.0, 0).train
    changed = (plain.images != hard.images).flatten(1).any(1)
    assert int(changed.sum()) >= 35  # Poisson(3) look-alikes + Poisson(2) shadows: almost every image
    for boxes, labels, more_boxes, more_labels in zip(plain.boxes, plain.labels, hard.boxes, hard.labels, strict=True):
        # The labelled objects are the same; a look-alike in front can only hide part (or most) of one.
        assert len(more_labels) <= len(labels)
        for box, label in zip(more_boxes, more_labels, strict=True):
            inside = (labels == label) & (boxes[:, :2] <= box[:2]).all(1) & (boxes[:, 2:] >= box[2:]).all(1)
            assert bool(inside.any())


def test_max_depth_brings_objects_closer():
    base = {"image_height": 64, "image_width": 96, "base_samples": 40, "eval_samples": 4}
    far = PerceptionTask(base).build_data(1.0, 0).train
    near = PerceptionTask({**base, "max_depth": 3}).build_data(1.0, 0).train
    heights = [torch.cat([b[:, 3] - b[:, 1] for b in data.boxes]) for data in (far, near)]
    # Size goes as 1/depth; far objects too small for a box are left out, so near scenes label more objects
    # (162 vs 91 here) and their median box is taller (13 vs 8 px).
    assert len(heights[1]) > 1.5 * len(heights[0])
    assert float(heights[1].median()) > 1.4 * float(heights[0].median())
