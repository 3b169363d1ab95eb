"""Benchmark: extrapolation on the 92 learning curves of Alabdulmohsin et al. (2022).

Each curve comes with its own fit / held-out split (`Training` 1 / 0). Every form is fitted on the
fit points and scored by RMSLE on the held-out points; "auto" is scalinglab's automatic choice,
made from the fit points alone (`scalinglab.fit.backtest.choose_form`).

    .venv/bin/python benchmarks/bench_backtest.py [--forms power,power_offset,m3,m4] [--limit N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from scalinglab.fit.backtest import backtest
from scalinglab.observations import FitData

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "revisiting_scaling_laws"
# The reference implementation's mean RMSLE per domain (IC, NMT, LM, BB), from the issue.
REFERENCE = {
    "M1": {"IC": 0.105, "NMT": 0.222, "LM": 0.014, "BB": 0.0148},
    "M2": {"IC": 0.082, "NMT": 0.034, "LM": 0.0010, "BB": 0.0148},
    "M3": {"IC": 0.062, "NMT": 0.047, "LM": 0.0023, "BB": 0.0087},
    "M4": {"IC": 0.042, "NMT": 0.021, "LM": 0.0009, "BB": 0.0123},
}


def curves(data_dir: Path) -> list[tuple[str, str, FitData, np.ndarray]]:
    frames = [pd.read_csv(data_dir / f"benchmark.{name}.csv") for name in ("vision", "lang")]
    table = pd.concat(frames, ignore_index=True).drop_duplicates()  # the LM rows come 4 times
    out = []
    for (domain, task, model), group in table.groupby(["Domain", "Task", "Model"], sort=True):
        group = group.sort_values("Seen Examples")
        data = FitData(group["Seen Examples"].to_numpy()[None, :], ("x",), group["Loss"].to_numpy(), None, str(task))
        out.append((domain, f"{task}/{model}", data, group["Training"].to_numpy() == 0))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--forms", default="power,power_offset,m3,m4")
    parser.add_argument("--limit", type=int, default=None, help="only the first N curves (a quick look)")
    args = parser.parse_args()
    forms = args.forms.split(",")
    rows = []
    started = time.perf_counter()
    for domain, name, data, held_out in curves(args.data)[: args.limit]:
        result = backtest(data, held_out, [*forms, "auto"], bootstrap=0)
        scores = result.scores.set_index("form")["rmsle"]
        chosen = f"{result.auto.form}/{result.auto.loss}"
        rows.append({"domain": domain, "curve": name, **scores.to_dict(), "chosen": chosen})
        print(f"{domain} {name}: auto {chosen}, RMSLE {scores['auto']:.4f}", file=sys.stderr, flush=True)
    results = pd.DataFrame(rows)
    order = ["IC", "NMT", "LM", "BB"]
    table = results.groupby("domain")[[*forms, "auto"]].mean().reindex([d for d in order if d in set(results.domain)])
    reference = pd.DataFrame(REFERENCE).reindex(table.index)
    print(f"{len(results)} curves in {time.perf_counter() - started:.0f} s; mean RMSLE on held-out points per domain")
    print(pd.concat([table, reference], axis=1).to_string(float_format=lambda v: f"{v:.4f}"))
    best_reference = reference.min(axis=1)
    print(
        "auto beats the best reference method in:",
        ", ".join(d for d in table.index if table.loc[d, "auto"] < best_reference[d]) or "none",
    )
    print("choices:", results.groupby("domain")["chosen"].value_counts().to_dict())


if __name__ == "__main__":
    main()
