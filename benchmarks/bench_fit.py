"""Benchmark: the 4,500-start Chinchilla fit, scalinglab against a per-start scipy L-BFGS-B loop.

The reference is the published replication's protocol (Besiroglu et al. 2024): scipy.optimize.minimize
with L-BFGS-B and default settings, one start at a time, on the summed Huber loss (delta 1e-3) of log
residuals. Both run here, in one process, on the same data and grid.

    .venv/bin/python benchmarks/bench_fit.py [--data PATH] [--ref-every K] [--bootstrap 1000]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import huber

from scalinglab import ScalingLaw
from scalinglab.fit.forms import get_form

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "chinchilla_epoch" / "svg_extracted_data.csv"
COLUMNS = {"n": "Model Size", "c": "Training FLOP", "y": "loss"}


def reference_fit(log_n: np.ndarray, log_d: np.ndarray, log_y: np.ndarray, starts: np.ndarray, delta: float):
    """One scipy L-BFGS-B run per start, as in the published replication; the best end point."""

    def objective(theta: np.ndarray) -> float:
        e, a, b, alpha, beta = theta
        pred = np.logaddexp(np.logaddexp(e, a - alpha * log_n), b - beta * log_d)
        return float(np.sum(huber(delta, pred - log_y)))

    best = (np.inf, None)
    for start in starts:
        res = minimize(objective, start, method="L-BFGS-B")
        if res.fun < best[0]:
            best = (float(res.fun), res.x)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--ref-every", type=int, default=1, help="run the reference on every K-th start only")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    table = pd.read_csv(args.data).sort_values("loss").iloc[:-5]
    n = table["Model Size"].to_numpy()
    log_n, log_d, log_y = (
        np.log(n),
        np.log(table["Training FLOP"].to_numpy() / (6 * n)),
        np.log(table["loss"].to_numpy()),
    )
    form = get_form("chinchilla")
    starts = form.start_grid(np.stack([log_n, log_d]), log_y)

    ScalingLaw().fit(table.iloc[:40], COLUMNS, d_from_flops=True)  # load the compiled kernel first
    fit_times, boot_times = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        law = ScalingLaw().fit(table, COLUMNS, d_from_flops=True)
        fit_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        booted = ScalingLaw(bootstrap=args.bootstrap, seed=0).fit(table, COLUMNS, d_from_flops=True)
        boot_times.append(time.perf_counter() - t0 - fit_times[-1])
    fit_s, boot_s = min(fit_times), min(boot_times)

    ref_starts = starts[:: args.ref_every]
    t0 = time.perf_counter()
    ref_obj, ref_theta = reference_fit(log_n, log_d, log_y, ref_starts, 1e-3)
    ref_s = (time.perf_counter() - t0) * len(starts) / len(ref_starts)

    print(f"data: {args.data.name}, {len(table)} points, {len(starts)} starts")
    print(
        f"reference (scipy L-BFGS-B per start): {ref_s:8.2f} s"
        + (" (scaled from a subset)" if args.ref_every > 1 else "")
    )
    print(f"  objective {ref_obj:.10e}  params {form.to_public(ref_theta)}")
    print(f"scalinglab full fit:                  {fit_s:8.3f} s  (best of {args.repeats})")
    print(f"  objective {law.objective_:.10e}  params {law.params_}")
    print(f"  starts that reached it: {law.n_reached_} of {law.n_starts_}")
    print(
        f"speed-up: {ref_s / fit_s:.1f}x; objective difference (scalinglab - reference): "
        f"{law.objective_ - ref_obj:+.3e}"
    )
    print(f"bootstrap, {args.bootstrap} refits:           {boot_s:8.3f} s  SE {booted.se_}")


if __name__ == "__main__":
    main()
