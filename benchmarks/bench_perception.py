"""Benchmark: the perception task.

- ``grid``: synthetic driving scenes, COCO mAP per model scale (VGG baseline 1X, ConvNeXt above) x data
  fraction, trained through the study runner with one optimiser and schedule for every cell.
- ``throughput``: training images/s per model scale (CPU; CUDA when present).
- ``generation``: synthetic images rendered per second.

    .venv/bin/python benchmarks/bench_perception.py [--part grid|throughput|generation] [--steps 600]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import yaml
from rich.console import Console

from common import training_rate
from scalinglab.perception.model import backbone_at_scale, backbone_parameters
from scalinglab.perception.synthetic import SceneOptions, synthetic_scenes
from scalinglab.study.config import parse_config
from scalinglab.study.runner import execute
from scalinglab.study.store import Store
from scalinglab.tasks.perception import PerceptionTask

SCALES = (1, 2, 4, 11.3)
OPTIONS = {"image_height": 96, "image_width": 128, "base_width": 8, "fpn_channels": 64}


def grid(args: argparse.Namespace, console: Console) -> None:
    config = {
        "name": "perception-grid",
        "task": "perception",
        "task_options": {
            **OPTIONS,
            "base_samples": args.images,
            "eval_samples": 300,
            "finest_stride": args.finest_stride,
            **{key: yaml.safe_load(value) for key, value in (o.split("=", 1) for o in args.set)},
        },
        "model_scales": [float(v) for v in args.scales.split(",")],
        "data_scales": [float(v) for v in args.fractions.split(",")],
        "budget": {"steps": args.steps},
        "batch_size": 16,
        "optimizer": {"name": "adamw", "lr": args.lr, "weight_decay": 0.05},
        "schedule": {"kind": "cosine", "warmup_steps": 50},
        "eval_every": args.steps,
    }
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.create(Path(tmp) / "study", parse_config(config))
        started = time.perf_counter()
        execute(store, workers=args.workers, console=console)
        obs = store.observations()
    final = obs[obs.split == "eval"]
    for metric in ("mAP", "mAP50"):
        table = final[final.metric == metric].pivot_table(index="model_scale", columns="data_scale", values="value")
        print(f"\nSynthetic scenes: eval {metric} per model scale (rows) x data fraction (columns), {args.steps} steps")
        print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    params = final.groupby("model_scale")["n_params"].first()
    print("\nparameters per model scale:", {f"{k:g}X": int(v) for k, v in params.items()})
    print(f"{len(final.run_id.unique())} runs in {time.perf_counter() - started:.0f} s")


def throughput(args: argparse.Namespace, console: Console) -> None:
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    task = PerceptionTask({**OPTIONS, "base_samples": 64, "eval_samples": 8})
    data = task.build_data(1.0, 0)
    baseline = backbone_parameters(backbone_at_scale(1, 8))
    print("\nTraining throughput, synthetic scenes 96x128, batch 16")
    for device_name in devices:
        device = torch.device(device_name)
        for scale in SCALES:
            model = task.build_model(scale, "width").to(device)
            rate = training_rate(task, data, model, device, steps=10, batch=16)
            spec = backbone_at_scale(scale, 8)
            total = sum(p.numel() for p in model.parameters())
            ratio = backbone_parameters(spec) / baseline
            print(
                f"{device_name} {scale:>4g}X {spec.kind}-{spec.width} backbone {ratio:5.2f}x, {total:>9,} parameters:"
                f" {rate:6.1f} images/s"
            )


def generation(args: argparse.Namespace, console: Console) -> None:
    started = time.perf_counter()
    synthetic_scenes(SceneOptions(), 200, 0)
    seconds = time.perf_counter() - started
    print(f"\nSynthetic scene rendering (96x128): {200 / seconds:.0f} images/s (one process)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["grid", "throughput", "generation", "all"], default="all")
    parser.add_argument("--steps", type=int, default=600, help="training steps per grid cell")
    parser.add_argument("--images", type=int, default=2000, help="training images at data fraction 1.0")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--scales", default="1,2,4,11.3", help="model scales of the grid")
    parser.add_argument("--fractions", default="0.075,0.5,1.0", help="data fractions of the grid")
    parser.add_argument("--lr", type=float, default=1e-3, help="AdamW peak learning rate of every cell")
    parser.add_argument("--set", action="append", default=[], help="a task option KEY=VALUE (repeatable)")
    parser.add_argument("--finest-stride", type=int, choices=[4, 8], default=8, help="the FPN's finest level")
    args = parser.parse_args()
    console = Console(stderr=True)
    for name, part in {"generation": generation, "throughput": throughput, "grid": grid}.items():
        if args.part in (name, "all"):
            part(args, console)


if __name__ == "__main__":
    main()
