"""Benchmark: the behaviour task.

Parts (``--part``, default all):

- ``eth``: ETH/UCY leave-one-scene-out, all five splits. The default transformer at ``--scale``
  (of the 1X family) is trained on each split's training scenes through the study runner and scored on
  the left-out scene: ADE/FDE best of 20, next to published results.
- ``grid``: synthetic traffic, minADE (K=6) per model scale x data scale over a CPU-sized grid, trained
  through the study runner with one optimiser and schedule for every cell.
- ``throughput``: training samples/s per model scale on synthetic traffic (CPU; CUDA when present).
- ``generation``: synthetic scenes generated per second.

    .venv/bin/python benchmarks/bench_behavior.py [--part eth|grid|throughput|generation] [--threads 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from rich.console import Console

from common import training_rate
from scalinglab.behavior.synthetic import SyntheticOptions, simulate_chunk
from scalinglab.study.config import parse_config
from scalinglab.study.runner import execute
from scalinglab.study.store import Store
from scalinglab.tasks.behavior import BehaviorTask

ETH_UCY = Path(__file__).resolve().parents[2] / "shared" / "data" / "eth_ucy"
PUBLISHED = {  # ADE / FDE in metres, averaged over the five splits, best of 20
    "Social-GAN": (0.58, 1.18),
    "Trajectron++": (0.19, 0.41),
    "AgentFormer": (0.23, 0.39),
}


def run_study(config: dict, console: Console) -> pd.DataFrame:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.create(Path(tmp) / "study", parse_config(config))
        execute(store, console=console)
        return store.observations()


def eth(args: argparse.Namespace, console: Console) -> None:
    rows = []
    for scene in args.scenes.split(","):
        started = time.perf_counter()
        obs = run_study(
            {
                "name": f"eth-ucy-{scene}",
                "task": "behavior",
                "task_options": {"source": "eth_ucy", "root": str(args.eth_root), "scene": scene},
                "model_scales": [args.scale],
                "data_scales": [1],
                "budget": {"steps": args.steps},
                "batch_size": 64,
                "optimizer": {"name": "adamw", "lr": 1e-3, "weight_decay": 0.01},
                "schedule": {"kind": "cosine", "warmup_steps": 100},
                "eval_every": args.steps,
            },
            console,
        )
        final = obs[obs.split == "eval"].pivot_table(index="steps", columns="metric", values="value").iloc[-1]
        rows.append(
            {"split": scene, "ADE": final["minADE"], "FDE": final["minFDE"], "seconds": time.perf_counter() - started}
        )
        print(f"{scene}: ADE {final['minADE']:.3f} FDE {final['minFDE']:.3f}", flush=True)
    table = pd.DataFrame(rows).set_index("split")
    table.loc["average"] = table.mean()
    n_params = int(obs.n_params.iloc[0])
    print(f"\nETH/UCY, best of 20, scale {args.scale:g}X ({n_params:,} parameters), {args.steps} steps of 64")
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    for name, (ade, fde) in PUBLISHED.items():
        print(f"{name}: ADE {ade:.2f} FDE {fde:.2f}")


def grid(args: argparse.Namespace, console: Console) -> None:
    obs = run_study(
        {
            "name": "behavior-grid",
            "task": "behavior",
            "task_options": {"base_samples": 1000, "eval_samples": 1000, "base_width": 32},
            "model_scales": [1, 4, 16],
            "scale_by": "width",
            "data_scales": [1, 3, 7],
            "budget": {"epochs": args.epochs},
            "batch_size": 64,
            "optimizer": {"name": "adamw", "lr": 1e-3, "weight_decay": 0.01},
            "schedule": {"kind": "cosine", "warmup_steps": 50},
            "eval_every": 100000,
        },
        console,
    )
    final = obs[(obs.metric == "minADE") & (obs.split == "eval")]
    table = final.pivot_table(index="n_params", columns="dataset_size", values="value")
    print(
        "\nSynthetic traffic: eval minADE (m, K=6) per parameters (rows) x training scenes (columns),",
        f"{args.epochs:g} epochs",
    )
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))


def throughput(args: argparse.Namespace, console: Console) -> None:
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    task = BehaviorTask({"base_samples": 512, "eval_samples": 16})
    data = task.build_data(1.0, 0)
    print("\nTraining throughput, synthetic traffic (history 20, horizon 30, 12 agents, 32 polylines), batch 64")
    for device_name in devices:
        device = torch.device(device_name)
        for scale in (1, 4, 16, 32):
            model = task.build_model(scale, "width").to(device)
            rate = training_rate(task, data, model, device, steps=30, batch=64)
            n_params = sum(p.numel() for p in model.parameters())
            print(f"{device_name} {scale:>2}X {n_params:>10,} parameters: {rate:8.0f} samples/s")


def generation(args: argparse.Namespace, console: Console) -> None:
    options = SyntheticOptions()
    simulate_chunk(options, 0, 0)  # compile the kernel
    started, scenes = time.perf_counter(), 0
    for chunk in range(1, 9):
        scenes += len(simulate_chunk(options, 0, chunk))
    seconds = time.perf_counter() - started
    print(
        f"\nSynthetic traffic generation: {scenes} scenes in {seconds:.2f} s",
        f"= {scenes / seconds:.0f} scenes/s (one process)",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["eth", "grid", "throughput", "generation", "all"], default="all")
    parser.add_argument("--eth-root", type=Path, default=ETH_UCY)
    parser.add_argument("--scale", type=float, default=4.0, help="model scale for the ETH/UCY splits")
    parser.add_argument("--steps", type=int, default=3000, help="training steps per ETH/UCY split")
    parser.add_argument("--epochs", type=float, default=8, help="epochs per cell of the synthetic grid")
    parser.add_argument("--scenes", default="eth,hotel,univ,zara1,zara2", help="ETH/UCY splits to run")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    console = Console(stderr=True)
    parts = {"generation": generation, "throughput": throughput, "eth": eth, "grid": grid}
    for name, part in parts.items():
        if args.part in (name, "all"):
            part(args, console)


if __name__ == "__main__":
    main()
