"""Benchmark: training samples/s and model-FLOPs utilisation (MFU) of every behaviour and perception scale on GPU.

The models are those of the scale plan (benchmarks/plan_scale.py: the behaviour transformer at base width 64,
1X..32X; VGG and timm's named ConvNeXt variants under FCOS, 1X..11.3X). Each is built, compiled (--compile)
and run under the study's precision (--precision) through the study runner's own code
(`build_run`, `autocast`, `measure_step_flops`), so the figures are those a study would see. MFU is the
counted FLOPs per step (forward + backward) x steps/s over the device's dense bf16 peak (--peak-tflops, else
known from the device's name).

On a machine without a CUDA device it says so and exits 0: nothing is measured on the CPU.

    .venv/bin/python benchmarks/bench_gpu.py [--steps 20] [--precision auto|bf16|fp32] [--compile] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from plan_scale import BEHAVIOR, BEHAVIOR_SCALES, PERCEPTION, PERCEPTION_SCALES
from scalinglab.study.config import parse_config
from scalinglab.study.records import RunSpec
from scalinglab.study.train import autocast, batch_at, build_run, measure_step_flops

PEAK_TFLOPS = {  # dense bf16 tensor-core peaks; the first name found in the device's name wins
    "H200": 989,
    "H100 PCIe": 756,
    "H100": 989,
    "A100": 312,
    "L40S": 362,
    "L4": 121,
    "A10": 125,
}


def peak_for(name: str) -> float | None:
    return next((v * 1e12 for key, v in PEAK_TFLOPS.items() if key in name), None)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(task: str, options: dict, scale: float, batch: int, args: argparse.Namespace, device: str = "cuda") -> dict:
    config = parse_config({
        "task": task, "task_options": {**options, "base_samples": 2 * batch}, "model_scales": [scale],
        "data_scales": [1], "budget": {"steps": args.steps + args.warmup}, "batch_size": batch,
        "eval_every": 10**6, "device": device, "precision": args.precision, "compile": args.compile,
    })  # fmt: skip
    run = build_run(config, RunSpec("bench", scale, 1.0, 0), torch.device(device))
    flops = measure_step_flops(run.task, run.model, batch_at(config, run, 0))

    def step(i: int) -> None:
        with autocast(config, run.device):
            loss = run.task.loss(run.forward, batch_at(config, run, i))
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        run.optimizer.step()

    started = time.perf_counter()
    for i in range(args.warmup):  # compiles here with --compile
        step(i)
    _sync(run.device)
    warm = time.perf_counter() - started
    if run.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    for i in range(args.steps):
        step(args.warmup + i)
    _sync(run.device)
    seconds = time.perf_counter() - started
    return {
        "task": task,
        "scale": scale,
        "params": run.n_params,
        "batch": batch,
        "samples_per_s": args.steps * batch / seconds,
        "flops_per_step": flops,
        "achieved_flops": flops * args.steps / seconds,
        "warmup_s": warm,
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if run.device.type == "cuda" else float("nan"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per scale")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--behavior-batch", type=int, default=256)
    parser.add_argument("--perception-batch", type=int, default=16)
    parser.add_argument("--image-size", default="512x896", help="perception HxW")
    parser.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto")
    parser.add_argument("--compile", action="store_true", help="torch.compile each model (the study's compile key)")
    parser.add_argument("--peak-tflops", type=float, help="the device's dense peak, if not known by name")
    parser.add_argument("--json", help="write the figures as JSON here")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print(f"no CUDA device on this machine (torch {torch.__version__}): nothing measured; "
              "run this benchmark where a GPU is present")  # fmt: skip
        return 0
    name = torch.cuda.get_device_name()
    peak = args.peak_tflops * 1e12 if args.peak_tflops else peak_for(name)
    height, width = (int(v) for v in args.image_size.lower().split("x"))
    print(f"{name}; precision {args.precision}, compile {args.compile}; peak "
          f"{'unknown (give --peak-tflops)' if peak is None else f'{peak / 1e12:.0f} TFLOP/s'}")  # fmt: skip
    print("| task | scale | params | batch | samples/s | TFLOP/s | MFU | peak mem GiB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    rows = []
    jobs = [("behavior", BEHAVIOR, s, args.behavior_batch) for s in BEHAVIOR_SCALES]
    perception = {**PERCEPTION, "image_height": height, "image_width": width}
    jobs += [("perception", perception, s, args.perception_batch) for s in PERCEPTION_SCALES]
    for task, options, scale, batch in jobs:
        try:
            row = measure(task, options, scale, batch, args)
        except torch.cuda.OutOfMemoryError:
            print(f"| {task} | {scale:g}X | | {batch} | out of memory | | | |", flush=True)
            torch.cuda.empty_cache()
            continue
        row["mfu"] = None if peak is None else row["achieved_flops"] / peak
        mfu = "" if row["mfu"] is None else f"{row['mfu']:.1%}"
        print(f"| {task} | {scale:g}X | {row['params'] / 1e6:.1f} M | {batch} | {row['samples_per_s']:,.0f} | "
              f"{row['achieved_flops'] / 1e12:.1f} | {mfu} | {row['peak_memory_gib']:.1f} |", flush=True)  # fmt: skip
        rows.append(row)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"device": name, "peak_flops": peak, **vars(args), "rows": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
