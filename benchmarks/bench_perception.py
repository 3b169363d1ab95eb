"""Benchmark: the perception task.

- ``grid``: synthetic driving scenes, COCO mAP per model scale (VGG baseline 1X, ConvNeXt above) x data
  fraction, trained through the study runner with one optimiser and schedule for every cell.
- ``throughput``: training images/s per model scale (CPU; CUDA when present).
- ``generation``: synthetic images rendered per second.
- ``bands``: for a grid kept with ``--out DIR``, mAP on training and eval images by object size.

    .venv/bin/python benchmarks/bench_perception.py [--part grid|throughput|generation|bands] [--steps 600]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import tempfile
import time
from pathlib import Path

import torch
import yaml
from rich.console import Console
from torchmetrics.detection import MeanAveragePrecision

from common import training_rate
from scalinglab.perception.model import backbone_parameters
from scalinglab.perception.synthetic import SceneOptions, synthetic_scenes
from scalinglab.study.config import parse_config
from scalinglab.study.runner import execute
from scalinglab.study.store import Store
from scalinglab.tasks.perception import PerceptionTask

SCALES = (1, 2, 4, 11.3)
OPTIONS = {"image_height": 96, "image_width": 128, "base_width": 8, "fpn_channels": 64}


def task_options(args: argparse.Namespace) -> dict:
    """The task options every part runs with: the CPU defaults, the FPN's finest level and any ``--set``."""
    extra = {key: yaml.safe_load(value) for key, value in (o.split("=", 1) for o in args.set)}
    return {**OPTIONS, "finest_stride": args.finest_stride, **extra}


def grid(args: argparse.Namespace, console: Console) -> None:
    config = {
        "name": "perception-grid",
        "task": "perception",
        "task_options": {**task_options(args), "base_samples": args.images, "eval_samples": 300},
        "model_scales": [float(v) for v in args.scales.split(",")],
        "data_scales": [float(v) for v in args.fractions.split(",")],
        "budget": {"steps": args.steps},
        "batch_size": 16,
        "optimizer": {"name": "adamw", "lr": args.lr, "weight_decay": 0.05},
        "schedule": {"kind": "cosine", "warmup_steps": 50},
        "eval_every": args.eval_every or args.steps,
        "seeds": [int(v) for v in args.seeds.split(",")],
    }
    with contextlib.ExitStack() as stack:
        # --out keeps the study (observations, checkpoints) and resumes it when run again.
        directory = Path(args.out) if args.out else Path(stack.enter_context(tempfile.TemporaryDirectory())) / "study"
        store = Store.create(directory, parse_config(config))
        started = time.perf_counter()
        execute(store, workers=args.workers, console=console)
        obs = store.observations()
    evals = obs[obs.split == "eval"]
    final = evals[evals.steps == evals.groupby("run_id").steps.transform("max")]  # each run's last eval
    for metric in ("mAP", "mAP50", "mAP75"):
        table = final[final.metric == metric].pivot_table(index="model_scale", columns="data_scale", values="value")
        print(
            f"\nSynthetic scenes: eval {metric} per model scale (rows) x data fraction (columns), "
            f"{args.steps} steps, mean over seeds {args.seeds}"
        )
        print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    params = final.groupby("model_scale")["n_params"].first()
    print("\nparameters per model scale:", {f"{k:g}X": int(v) for k, v in params.items()})
    print(f"{len(final.run_id.unique())} runs in {time.perf_counter() - started:.0f} s")


def throughput(args: argparse.Namespace, console: Console) -> None:
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    task = PerceptionTask({**task_options(args), "base_samples": 64, "eval_samples": 8})
    data = task.build_data(1.0, 0)
    baseline = backbone_parameters(task.backbone(1))
    stride, stem = task.options.finest_stride, task.options.convnext_stem
    print(f"\nTraining throughput, scenes 96x128, batch 16, FPN from stride {stride}, {stem} stem")
    for device_name in devices:
        device = torch.device(device_name)
        for scale in SCALES:
            model = task.build_model(scale, "width").to(device)
            rate = training_rate(task, data, model, device, steps=10, batch=16)
            spec = task.backbone(scale)
            total = sum(p.numel() for p in model.parameters())
            ratio = backbone_parameters(spec) / baseline
            print(
                f"{device_name} {scale:>4g}X {spec.kind}-{spec.width} backbone {ratio:5.2f}x, {total:>9,} parameters:"
                f" {rate:6.1f} images/s"
            )


BANDS = {"<8 px": (0.0, 8.0), "8-14 px": (8.0, 14.0), ">=14 px": (14.0, math.inf)}


def _in_band(boxes: torch.Tensor, band: tuple[float, float]) -> torch.Tensor:
    side = torch.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    return (side >= band[0]) & (side < band[1])


@torch.no_grad()
def banded_map(model: torch.nn.Module, data, count: int, batch: int) -> dict[str, tuple[float, float]]:
    """(mAP, mAP@.5) over the first ``count`` images, overall and per band of the box's longer side."""
    metrics = {name: MeanAveragePrecision(box_format="xyxy", backend="pycocotools") for name in ("all", *BANDS)}
    model.eval()
    count = min(count, len(data))
    for start in range(0, count, batch):
        images, targets = data.subset(range(start, min(start + batch, count))).batch(torch.device("cpu"))
        preds = [{k: p[k] for k in ("boxes", "scores", "labels")} for p in model(images)]
        targets = [{k: t[k] for k in ("boxes", "labels")} for t in targets]
        metrics["all"].update(preds, targets)
        for name, band in BANDS.items():
            keep = [{k: v[_in_band(d["boxes"], band)] for k, v in d.items()} for d in preds + targets]
            metrics[name].update(keep[: len(preds)], keep[len(preds) :])
    scores = {name: metric.compute() for name, metric in metrics.items()}
    return {name: (float(s["map"]), float(s["map_50"])) for name, s in scores.items()}


def bands(args: argparse.Namespace, console: Console) -> None:
    """mAP on training and eval images by object size, for every finished run of a kept grid (--out)."""
    if not args.out:
        raise SystemExit("--part bands reads a grid kept with --out DIR")
    store = Store.open(args.out)
    config = store.config()
    task = PerceptionTask(config.task_options)
    print(f"\nmAP / mAP@.5 by the box's longer side, first 300 images of each split ({args.out})")
    for run in store.runs().itertuples():
        if run.status != "done":
            continue
        data = task.build_data(run.data_scale, run.seed)
        model = task.build_model(run.model_scale, config.scale_by)
        state = torch.load(Path(args.out) / "runs" / run.run_id / "checkpoint.pt", weights_only=True)
        model.load_state_dict(state["model"])
        for split, images in (("train", data.train), ("eval", data.eval)):
            scores = banded_map(model, images, 300, task.options.eval_batch)
            cells = "  ".join(f"{k} {a:.3f} / {b:.3f}" for k, (a, b) in scores.items())
            print(f"{run.run_id} {split:<5} {cells}")


def generation(args: argparse.Namespace, console: Console) -> None:
    for label, options in (
        ("default", SceneOptions()),
        ("max_depth 5, 3 look-alikes, 2 shadows", SceneOptions(max_depth=5, lookalikes=3, shadows=2)),
    ):
        started = time.perf_counter()
        synthetic_scenes(options, 200, 0)
        seconds = time.perf_counter() - started
        print(f"Synthetic scene rendering (96x128, {label}): {200 / seconds:.0f} images/s (one process)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["grid", "throughput", "generation", "bands", "all"], default="all")
    parser.add_argument("--steps", type=int, default=600, help="training steps per grid cell")
    parser.add_argument("--images", type=int, default=2000, help="training images at data fraction 1.0")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--scales", default="1,2,4,11.3", help="model scales of the grid")
    parser.add_argument("--fractions", default="0.075,0.5,1.0", help="data fractions of the grid")
    parser.add_argument("--seeds", default="0", help="training seeds of every grid cell (init and batch order)")
    parser.add_argument("--lr", type=float, default=1e-3, help="AdamW peak learning rate of every cell")
    parser.add_argument("--set", action="append", default=[], help="a task option KEY=VALUE (repeatable)")
    parser.add_argument("--eval-every", type=int, default=0, help="grid eval interval (default: the last step)")
    parser.add_argument("--out", help="keep the grid's study in this folder (resumed if it holds the same study)")
    parser.add_argument("--finest-stride", type=int, choices=[4, 8], default=8, help="the FPN's finest level")
    args = parser.parse_args()
    console = Console(stderr=True)
    for name, part in {"generation": generation, "throughput": throughput, "grid": grid}.items():
        if args.part in (name, "all"):
            part(args, console)
    if args.part == "bands" or (args.part == "all" and args.out):
        bands(args, console)


if __name__ == "__main__":
    main()
