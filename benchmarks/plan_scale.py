"""Plan: what the seed's full sweeps would cost on A100 / H100 GPUs, and how to lay them out on a Ray cluster.

FLOPs per training sample (forward + backward) of every scale are measured with the study runner's own counter
(`measure_step_flops`, PyTorch's FlopCounterMode on a real batch, on the CPU). A run's FLOPs are FLOPs/sample x
epochs x D; GPU-hours are FLOPs / (peak dense bf16 FLOP/s x MFU). The sizes of the seed's data sets are not
published: D at 1X / 100% and the epochs are arguments (defaults below), and every figure scales linearly with them.

Perception FLOPs are measured at --measure-size and scaled to --image-size by the pixel ratio (every layer of
the backbone, FPN and FCOS head is convolutional, so FLOPs grow with the pixel count).

Layout: each model scale gets the fewest GPUs per run (a power of two, at most --max-workers) that bring its
largest cell under --run-days on an H100; the sweep's wall time is a longest-first schedule of all cells on
--cluster-gpus GPUs, assuming data-parallel runs scale linearly in GPUs (an upper bound on speed).

    .venv/bin/python benchmarks/plan_scale.py [--json plan.json] [--cluster-gpus 64] [--mfu 0.35]
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import time

import torch

from scalinglab.study.train import measure_step_flops
from scalinglab.tasks import build_task

PEAK = {"A100": 312e12, "H100": 989e12}  # dense bf16 tensor-core FLOP/s (SXM parts)
BEHAVIOR = {  # the behaviour transformer at a GPU size: 2 s observed, 3 s predicted at 10 Hz, 6 modes, a busy
    "source": "synthetic",  # urban scene of 64 agents and 256 map polylines; width 256 x 6 layers at 1X
    "history": 20,
    "horizon": 30,
    "num_modes": 6,
    "base_width": 256,
    "base_depth": 6,
    "max_agents": 64,
    "max_polylines": 256,
    "vehicles": 48,
    "pedestrians": 16,
    "base_samples": 2,
    "eval_samples": 2,
}
BEHAVIOR_SCALES = (1, 2, 4, 8, 16, 32)
BEHAVIOR_DATA = (1, 2, 4, 7)
PERCEPTION = {  # VGG (width 120) at 1X; timm's named ConvNeXt variants above it (11.3X: ConvNeXt-XL)
    "source": "synthetic",
    "named_convnext": True,
    "base_width": 120,
    "convnext_stem": "patch",
    "finest_stride": 8,
    "fpn_channels": 256,
    "base_samples": 2,
    "eval_samples": 2,
}
PERCEPTION_SCALES = (1, 2, 4, 11.3)
PERCEPTION_DATA = (0.075, 0.5, 1.0)


def measure(task_name: str, options: dict, scale: float, batch: int) -> dict:
    """Parameters and FLOPs per training sample of the task's model at `scale`, by the runner's counter."""
    task = build_task(task_name, options)
    data = task.build_data(1, 0)
    torch.manual_seed(0)
    model = task.build_model(scale, "width")
    params = sum(p.numel() for p in model.parameters())
    started = time.perf_counter()
    flops = measure_step_flops(task, model, task.batch(data.train, torch.arange(batch), torch.device("cpu")))
    name = getattr(task, "backbone", None)
    name = name(scale).kind if name is not None else f"width {task.model_config(scale, 'width').width}"
    return {"scale": scale, "model": name, "params": params, "flops_per_sample": flops / batch,
            "seconds": time.perf_counter() - started}  # fmt: skip


def layout(cells: list[dict], cluster_gpus: int, run_days: float, max_workers: int) -> dict:
    """GPUs per run per model scale, and the sweep's wall time on the cluster (longest cell first)."""
    workers = {}
    for cell in cells:
        need = cell["gpu_hours"]["H100"] / (24 * run_days)
        w = min(max_workers, 2 ** max(0, math.ceil(math.log2(max(need, 1)))))
        workers[cell["scale"]] = max(workers.get(cell["scale"], 1), w)
    free = [(0.0, g) for g in range(cluster_gpus)]  # (time the GPU is free, id)
    heapq.heapify(free)
    end = 0.0
    for cell in sorted(cells, key=lambda c: -c["gpu_hours"]["H100"]):
        w = workers[cell["scale"]]
        taken = [heapq.heappop(free) for _ in range(w)]
        start = max(t for t, _ in taken)
        hours = cell["gpu_hours"]["H100"] / w
        cell["workers_per_run"], cell["wall_hours_h100"] = w, hours
        for _, g in taken:
            heapq.heappush(free, (start + hours, g))
        end = max(end, start + hours)
    return {"workers_per_run": workers, "sweep_days_h100": end / 24}


def plan(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    mh, mw = args.measure_size
    ih, iw = args.image_size
    pixel_ratio = (ih * iw) / (mh * mw)
    studies = {
        "behavior": (BEHAVIOR, BEHAVIOR_SCALES, BEHAVIOR_DATA, args.behavior_samples, args.behavior_epochs, 1.0, 2),
        "perception": (
            {**PERCEPTION, "image_height": mh, "image_width": mw},
            PERCEPTION_SCALES,
            PERCEPTION_DATA,
            args.perception_images,
            args.perception_epochs,
            pixel_ratio,
            1,
        ),
    }
    out: dict = {"assumptions": {k: v for k, v in vars(args).items() if k != "json"}, "peak_flops": PEAK}
    for name, (options, scales, data_scales, base, epochs, ratio, batch) in studies.items():
        models = []
        for scale in scales:
            row = measure(name, options, scale, batch)
            row["flops_per_sample"] *= ratio
            models.append(row)
            what = f"{row['params'] / 1e6:.1f} M params, {row['flops_per_sample']:.3e} FLOPs/sample"
            print(f"{name} {scale:g}X: {row['model']}, {what} (measured in {row['seconds']:.0f} s)", flush=True)
        cells = []
        for row in models:
            for d in data_scales:
                flops = row["flops_per_sample"] * epochs * base * d
                hours = {gpu: flops / (peak * args.mfu) / 3600 for gpu, peak in PEAK.items()}
                cells.append({"scale": row["scale"], "data_scale": d, "flops": flops, "gpu_hours": hours})
        sweep = layout(cells, args.cluster_gpus, args.run_days, args.max_workers)
        totals = {gpu: sum(c["gpu_hours"][gpu] for c in cells) for gpu in PEAK}
        out[name] = {"models": models, "cells": cells, "total_gpu_hours": totals, **sweep}
    return out


def report(result: dict) -> None:
    a = result["assumptions"]
    print(f"\nMFU {a['mfu']:.0%} of dense bf16 peak (A100 312, H100 989 TFLOP/s); cluster {a['cluster_gpus']} GPUs")
    for name in ("behavior", "perception"):
        r = result[name]
        unit = "scenes" if name == "behavior" else "images"
        base = a["behavior_samples"] if name == "behavior" else a["perception_images"]
        epochs = a["behavior_epochs"] if name == "behavior" else a["perception_epochs"]
        print(f"\n{name}: D at 1X / 100% = {base:.3g} {unit}, {epochs:g} epochs")
        print("| scale | model | params | FLOPs/sample | data | A100 GPU-h | H100 GPU-h | GPUs/run | H100 wall h |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        models = {m["scale"]: m for m in r["models"]}
        for c in r["cells"]:
            m = models[c["scale"]]
            print(f"| {c['scale']:g}X | {m['model']} | {m['params'] / 1e6:.1f} M | {m['flops_per_sample']:.3g} | "
                  f"{c['data_scale']:g} | {c['gpu_hours']['A100']:,.0f} | {c['gpu_hours']['H100']:,.0f} | "
                  f"{c['workers_per_run']} | {c['wall_hours_h100']:,.1f} |")  # fmt: skip
        t = r["total_gpu_hours"]
        print(f"total: {t['A100']:,.0f} A100 GPU-hours, {t['H100']:,.0f} H100 GPU-hours; "
              f"sweep on {a['cluster_gpus']} H100s: {r['sweep_days_h100']:.1f} days")  # fmt: skip


def _size(text: str) -> tuple[int, int]:
    h, w = (int(v) for v in text.lower().split("x"))
    return h, w


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--behavior-samples", type=float, default=1e7, help="training scenes at 1X")
    parser.add_argument("--behavior-epochs", type=float, default=10)
    parser.add_argument("--perception-images", type=float, default=1e6, help="training images at 100%%")
    parser.add_argument("--perception-epochs", type=float, default=24)
    parser.add_argument("--image-size", type=_size, default=(512, 896), help="HxW the cost is for")
    parser.add_argument("--measure-size", type=_size, default=(192, 320), help="HxW measured on the CPU")
    parser.add_argument("--mfu", type=float, default=0.35, help="model-FLOPs utilisation assumed")
    parser.add_argument("--cluster-gpus", type=int, default=64)
    parser.add_argument("--run-days", type=float, default=3.0, help="target wall time of the largest run")
    parser.add_argument("--max-workers", type=int, default=32, help="most GPUs for one run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="write the plan as JSON here")
    args = parser.parse_args()
    result = plan(args)
    report(result)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()
