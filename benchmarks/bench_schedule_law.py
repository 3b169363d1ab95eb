"""Benchmark: the schedule-aware loss-curve law (Tissue et al. 2024) predicting beyond the checkpoints it saw.

Pythia (the public table in ../shared/data/pythia_evals): every model follows one schedule, 1% linear warmup
then cosine to 10% of the peak over 143,000 steps (Biderman et al. 2023). Per model, the law is fitted on the
checkpoints up to `--fit-until` steps and predicts the later ones, where most of the cosine's annealing lies;
the loss is log LAMBADA perplexity (the table has no validation loss). The baseline is the same power law in the
learning-rate area without the annealing term (the schedule ignored: a constant rate).

The behaviour task (scalinglab's own, `--own`): one model (scale 1, data scale 8) trained at 200 steps with a
constant rate and with cosine, and at 800 steps with cosine and with wsd (sqrt cooldown over the last 20%). Three
scenarios, for several annealing momenta: the law fitted on the two short runs predicts the two long ones; fitted
on the long cosine run it predicts the long wsd run, and the other way round. Checkpoints from `--from-step` on
(the first 100 steps are the initial drop from 9 to 3).

    .venv/bin/python benchmarks/bench_schedule_law.py [--fit-until 73000] [--own] [--decays 0.999,0.99,0.95]
        [--cache curves.npz]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from scalinglab.fit.schedule_law import Curve, ScheduleLaw
from scalinglab.study.config import ScheduleConfig
from scalinglab.study.schedule import learning_rates

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
PYTHIA_STEPS, PYTHIA_WARMUP = 143_000, 1_430


def pythia_lrs() -> np.ndarray:
    """Pythia's per-step multiplier of the peak rate: linear warmup over 1%, cosine to 0.1 at the end."""
    cfg = ScheduleConfig(kind="cosine", warmup_steps=PYTHIA_WARMUP, min_lr_ratio=0.1)
    return learning_rates(cfg, PYTHIA_STEPS)


def pythia(fit_until: int) -> pd.DataFrame:
    table = pd.read_csv(DATA / "pythia_evals" / "pythia_zero_shot.csv")
    table = table[table["step"] >= 1000].assign(loss=lambda t: np.log(t["lambada_openai_ppl"]))
    lrs, flat = pythia_lrs(), np.where(np.arange(PYTHIA_STEPS) < PYTHIA_WARMUP, pythia_lrs(), 1.0)
    rows = []
    for model, curve in table.groupby("model", sort=False):
        steps, loss = curve["step"].to_numpy(), curve["loss"].to_numpy()
        seen, later = steps <= fit_until, steps > fit_until
        row = {"model": model, "n_params": float(curve["n_params"].iloc[0]), "fitted": int(seen.sum())}
        for name, rates in (("schedule", lrs), ("no_anneal", flat)):
            law = ScheduleLaw().fit([Curve(steps[seen], loss[seen], rates, PYTHIA_WARMUP)])
            pred = law.predict(steps[later], rates, PYTHIA_WARMUP)
            row[f"{name}_mean_rel"] = float(np.mean(np.abs(pred / loss[later] - 1)))
            row[f"{name}_final_rel"] = float(pred[-1] / loss[later][-1] - 1)
        rows.append(row)
    return pd.DataFrame(rows).sort_values("n_params")


OWN_RUNS = (("constant", 200, {}), ("cosine", 200, {}), ("cosine", 800, {}), ("wsd", 800, {"decay_shape": "sqrt"}))


def own_curves(runs=OWN_RUNS) -> dict[str, Curve]:
    """The behaviour task at model scale 1, trained once per (schedule, length): its eval loss curves."""
    from scalinglab.study.config import parse_config
    from scalinglab.study.runner import execute
    from scalinglab.study.store import Store

    curves = {}
    for kind, total, extra in runs:
        schedule = {"kind": kind, "warmup_steps": 20, **extra}
        config = parse_config(
            {
                "name": f"schedule-{kind}-{total}",
                "task": "behavior",
                "model_scales": [1],
                "data_scales": [8],  # 16,000 scenes: the 800-step runs see each about 1.6 times
                "batch_size": 32,
                "budget": {"steps": total},
                "eval_every": 20,
                "optimizer": {"name": "adamw", "lr": 0.002},
                "schedule": schedule,
            }
        )
        with tempfile.TemporaryDirectory() as root:
            store = Store.create(Path(root) / "s", config)
            execute(store)
            obs = store.observations()
        curve = obs[(obs["split"] == "eval") & (obs["metric"] == "loss") & (obs["steps"] >= 1)].sort_values("steps")
        rates = learning_rates(config.schedule, total, config.optimizer.lr)
        curves[f"{kind}-{total}"] = Curve(curve["steps"].to_numpy(int), curve["value"].to_numpy(float), rates, 20)
    return curves


def save_curves(path: str, curves: dict[str, Curve]) -> None:
    fields = ("steps", "values", "lrs")
    arrays = {f"{name}/{field}": getattr(c, field) for name, c in curves.items() for field in fields}
    np.savez(path, **arrays, **{f"{name}/warmup": np.array(c.warmup) for name, c in curves.items()})


def load_curves(path: str) -> dict[str, Curve]:
    with np.load(path) as saved:
        names = sorted({key.split("/")[0] for key in saved.files})
        return {
            n: Curve(saved[f"{n}/steps"], saved[f"{n}/values"], saved[f"{n}/lrs"], int(saved[f"{n}/warmup"]))
            for n in names
        }


SCENARIOS = (
    ("short -> long", ("constant-200", "cosine-200"), ("cosine-800", "wsd-800")),
    ("cosine -> wsd", ("cosine-800",), ("wsd-800",)),
    ("wsd -> cosine", ("wsd-800",), ("cosine-800",)),
)


def _from(curve: Curve, first: int) -> Curve:
    keep = curve.steps >= first
    return Curve(curve.steps[keep], curve.values[keep], curve.lrs, curve.warmup)


def own(curves: dict[str, Curve], decays: tuple[float, ...], first: int) -> pd.DataFrame:
    """Each scenario: the law fitted on some runs' eval loss (checkpoints from step `first` on) predicts others."""
    rows = []
    for decay in decays:
        for scenario, fitted, predicted in SCENARIOS:
            law = ScheduleLaw(decay=decay).fit([_from(curves[name], first) for name in fitted])
            for name in predicted:
                target = _from(curves[name], first)
                pred = law.predict(target.steps, target.lrs, target.warmup)
                rows.append(
                    {
                        "decay": decay,
                        "scenario": scenario,
                        "predict": name,
                        "mean_rel": float(np.mean(np.abs(pred / target.values - 1))),
                        "final_rel": float(pred[-1] / target.values[-1] - 1),
                    }
                    | {k: round(v, 4) for k, v in law.params_.items()}
                )
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit-until", type=int, default=73_000)
    parser.add_argument("--own", action="store_true", help="also train the behaviour task both ways")
    parser.add_argument("--from-step", type=int, default=100, help="--own: fit and score checkpoints from here on")
    parser.add_argument("--cache", default=None, help="an .npz of the --own curves: read if present, else written")
    parser.add_argument("--decays", default="0.999,0.99,0.95", help="annealing momenta to compare on --own")
    args = parser.parse_args()
    pd.set_option("display.width", 200)
    print(pythia(args.fit_until).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if args.own:
        start = time.perf_counter()
        curves = load_curves(args.cache) if args.cache and Path(args.cache).is_file() else own_curves()
        print(f"{len(curves)} runs in {time.perf_counter() - start:.0f} s")
        if args.cache:
            save_curves(args.cache, curves)
        decays = tuple(float(d) for d in args.decays.split(","))
        print(own(curves, decays, args.from_step).to_string(index=False, float_format=lambda v: f"{v:.4g}"))


if __name__ == "__main__":
    main()
