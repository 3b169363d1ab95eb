"""Benchmark: a behaviour-task grid trained two ways, independent cosine runs and wsd with cooldown branches.

The same grid (model scales x data scales x seeds, one pass over each data scale's scenes) is trained as
independent runs with a cosine schedule, and with `branches: true` and a wsd schedule (sqrt cooldown over the
last 20%): one trunk per model size and seed, the smaller data scales cooled down from it. Per cell: the final
eval loss both ways, their difference against the seed-to-seed spread (the mean over cells of the two seeds'
absolute difference); the chinchilla law fitted to each grid's final points, side by side with 95% profile
intervals; the training FLOPs (as trained and counted in full per cell) and the wall time each way.

    .venv/bin/python benchmarks/bench_branches.py [--models 1,2,4,8] [--data 1,2,4] [--seeds 0,1] [--workers 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from scalinglab import ScalingLaw
from scalinglab.errors import UserError
from scalinglab.study.branches import branch_compute
from scalinglab.study.config import parse_config
from scalinglab.study.runner import execute
from scalinglab.study.store import Store

WAYS = {
    "cosine": {"schedule": {"kind": "cosine", "warmup_steps": 10}},
    "wsd branches": {
        "schedule": {"kind": "wsd", "warmup_steps": 10, "decay_fraction": 0.2, "decay_shape": "sqrt"},
        "branches": True,
    },
}


def study(models: list[float], data: list[float], seeds: list[int], extra: dict) -> dict:
    return {
        "name": "branches-bench",
        "task": "behavior",
        "task_options": {"base_samples": 2000, "eval_samples": 500},
        "model_scales": models,
        "data_scales": data,
        "seeds": seeds,
        "budget": {"epochs": 1},
        "batch_size": 32,
        "eval_every": 25,
        "optimizer": {"name": "adamw", "lr": 0.002},
        **extra,
    }


def train(cfg: dict, workers: int) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    """The final eval loss of every run, the runs table and the wall time."""
    with tempfile.TemporaryDirectory() as root:
        store = Store.create(Path(root) / "s", parse_config(cfg))
        start = time.perf_counter()
        execute(store, workers=workers)
        seconds = time.perf_counter() - start
        obs, runs = store.observations(), store.runs()
    evals = obs[(obs["split"] == "eval") & (obs["metric"] == "loss")]
    final = evals.sort_values("steps").groupby("run_id").tail(1)
    return final, runs.merge(obs.groupby("run_id")["steps"].max().rename("total_steps"), on="run_id"), seconds


def fitted(final: pd.DataFrame) -> dict[str, str]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            law = ScalingLaw(form="chinchilla", ci_level=0.95).fit(final, {"y": "value"}, final_only=False)
    except UserError as exc:
        return {"law": f"not fitted: {exc}"}

    def bound(b: float | None) -> str:
        return "open" if b is None else f"{b:.3g}"  # an interval the profile could not close

    return {k: f"{v:.3g} [{bound(law.ci_[k][0])}, {bound(law.ci_[k][1])}]" for k, v in law.params_.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="1,2,4,8")
    parser.add_argument("--data", default="1,2,4")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--save", default=None, help="write each way's final points to PREFIX-<way>.csv")
    args = parser.parse_args()
    models, data = [float(m) for m in args.models.split(",")], [float(d) for d in args.data.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    finals, laws, costs = {}, {}, []
    for way, extra in WAYS.items():
        final, runs, seconds = train(study(models, data, seeds, extra), args.workers)
        if args.save:
            final.to_csv(f"{args.save}-{way.replace(' ', '_')}.csv", index=False)
        finals[way], laws[way] = final, fitted(final)
        full = float((runs["total_steps"] * runs["flops_per_step"]).sum())
        saved = branch_compute(runs, final)  # the last eval of each run is at its last step
        trained = full if saved is None else saved["flops_trained"]
        costs.append({"way": way, "flops_trained": trained, "flops_in_full": full, "wall_s": seconds})
        print(f"{way}: {len(final)} runs in {seconds:.0f} s", flush=True)
    cells = ["model_scale", "data_scale"]
    per = {w: f.groupby(cells)["value"].agg(["mean", lambda v: np.ptp(v.to_numpy())]) for w, f in finals.items()}
    table = pd.concat({w: p.set_axis(["final", "seed_spread"], axis=1) for w, p in per.items()}, axis=1)
    table[("difference", "")] = table[("wsd branches", "final")] - table[("cosine", "final")]
    pd.set_option("display.width", 200)
    print(table.to_string(float_format=lambda v: f"{v:.4f}"))
    spread = np.mean([table[(w, "seed_spread")].mean() for w in WAYS])
    gap = table[("difference", "")].abs().mean()
    print(f"mean |difference| {gap:.4f}; mean seed-to-seed spread {spread:.4f}")
    print(pd.DataFrame(laws).to_string())
    print(pd.DataFrame(costs).to_string(index=False, float_format=lambda v: f"{v:.4g}"))


if __name__ == "__main__":
    main()
