"""Benchmark: task accuracy of held-out Pythia models, predicted directly and in two steps through LAMBADA loss.

On /work/shared/data/pythia_evals (8 Pythia sizes x 27 checkpoints, zero-shot accuracies and LAMBADA
perplexity): the intermediate is the LAMBADA loss, log(perplexity); D is the tokens seen at a checkpoint
(mid-schedule: every model follows one cosine schedule over 143,000 steps, a caveat both methods share).
Checkpoints from `--min-step` on are used. The runs of the largest sizes (`--holdout`) are removed whole;
on the rest:

- direct: a law (`--form`) fitted to 1 - accuracy at every checkpoint, predicting the held-out ones;
- two-step: the same form fitted to the LAMBADA loss, then accuracy = link(loss) over every kept checkpoint
  (link chosen by leave-one-model-out error), chained.

Per task: mean absolute error (accuracy points) over every held-out checkpoint and at the final checkpoint,
and the coverage of the 90% prediction intervals (bootstrap over whole models through both steps). To say
where the two-step error comes from: step 1's mean absolute error in the held-out LAMBADA loss (nats), and
the link's error when given the observed held-out loss (what two steps would score with an exact step 1).

    .venv/bin/python benchmarks/bench_two_step.py [--holdout "n_params>5e9"] [--min-step 1000] [--bootstrap 100]
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from scalinglab.fit.backtest import ViaBacktest, backtest_via
from scalinglab.fit.two_step import TwoStepLaw, two_step_data

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "pythia_evals" / "pythia_zero_shot.csv"
TASKS = (
    "lambada_openai_acc",
    "piqa_acc",
    "arc_easy_acc",
    "arc_challenge_acc",
    "winogrande_acc",
    "sciq_acc",
    "logiqa_acc",
    "wsc_acc",
)


def pythia_table(path: Path, min_step: int) -> pd.DataFrame:
    table = pd.read_csv(path)
    table = table[table["step"] >= min_step].reset_index(drop=True)
    return table.assign(lambada_loss=np.log(table["lambada_openai_ppl"]), run_id=table["model"])


def pythia_backtest(table: pd.DataFrame, task: str, holdout: str, form: str, bootstrap: int) -> ViaBacktest:
    """`backtest_via` of `task` through the LAMBADA loss on Pythia's checkpoints, warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return backtest_via(
            table,
            ("n", "d"),
            "lambada_loss",
            holdout,
            [form],
            {"n": "n_params", "d": "tokens", "run": "run_id", "y": task},
            higher_is_better=True,
            bootstrap=bootstrap,
            seed=0,
            final_only=False,
        )


def decompose(table: pd.DataFrame, columns: dict, task: str, form: str, held: list[str]) -> dict[str, float]:
    """Where the two-step error comes from, on the held-out checkpoints: step 1's error in the loss, and the
    link's error when it is given the observed loss (the two-step error if step 1 were exact)."""
    data = two_step_data(table, ("n", "d"), "lambada_loss", {**columns, "y": task}, final_only=False)
    kept = np.setdiff1d(np.unique(data.groups), held)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        law = TwoStepLaw(form=form, higher_is_better=True, intervals=None).fit(data.subset(kept))
        out = data.subset(np.asarray(held))
        loss = law.predict_intermediate(**dict(zip(out.input_names, out.inputs, strict=True)))
    return {
        "step-1 loss MAE": float(np.mean(np.abs(loss - out.x))),
        "link-on-observed-loss MAE": 100 * float(np.mean(np.abs(law.link_(out.x) - out.y))),
    }


def markdown(frame: pd.DataFrame) -> str:
    """A table for docs/benchmarks.md (numbers to 2 decimals)."""
    cells = [[f"{v:.2f}" if isinstance(v, float) else str(v) for v in row] for row in frame.itertuples(index=False)]
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + " --- |" * len(frame.columns)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--holdout", default="n_params>5e9")
    parser.add_argument("--min-step", type=int, default=1000)
    parser.add_argument("--form", default="chinchilla")
    parser.add_argument("--bootstrap", type=int, default=100)
    parser.add_argument("--tasks", default=",".join(TASKS))
    args = parser.parse_args()
    table = pythia_table(args.data, args.min_step)
    final_step = table["step"].max()
    columns = {"n": "n_params", "d": "tokens", "run": "run_id"}
    rows = []
    started = time.perf_counter()
    for task in args.tasks.split(","):
        result = pythia_backtest(table, task, args.holdout, args.form, args.bootstrap)
        points = result.points.assign(step=table["step"].to_numpy()[result.points["row"].to_numpy() - 1])
        row = {"task": task}
        for method, short in ((f"direct:{args.form}", "direct"), (f"two_step:{args.form}", "two-step")):
            at = points[points["method"] == method]
            err = (at["predicted"] - at["observed"]).abs()
            final = at["step"] == final_step
            inside = (at["observed"] >= at["lower"]) & (at["observed"] <= at["upper"])
            row[f"{short} MAE"] = 100 * err.mean()
            row[f"{short} MAE final"] = 100 * err[final].mean()
            row[f"{short} coverage"] = inside.mean()
        row["link"] = result.links[f"two_step:{args.form}"].split(":")[0]
        row.update(decompose(table, columns, task, args.form, result.held_out_runs))
        rows.append(row)
        print(pd.DataFrame([row]).to_string(index=False, float_format=lambda v: f"{v:.2f}"), flush=True)
    frame = pd.DataFrame(rows)
    held = sorted(table.loc[result.points["row"].to_numpy() - 1, "model"].unique())
    print(
        f"\nheld out {', '.join(held)} ({args.holdout}); checkpoints from step {args.min_step}; "
        f"form {args.form}; {args.bootstrap} bootstrap resamples; {time.perf_counter() - started:.0f} s"
    )
    print("MAE in accuracy points (x100), over every held-out checkpoint and at the final one; 90% intervals")
    print(markdown(frame))
    means = frame.drop(columns=["task", "link"]).mean()
    print("\nmean over tasks:\n" + means.to_string(float_format=lambda v: f"{v:.2f}"))


if __name__ == "__main__":
    main()
