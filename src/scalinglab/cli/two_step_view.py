"""`scalinglab fit --via` and `backtest --via`: fit and show two-step laws (law for the intermediate, link to the
metric), and direct-vs-two-step backtests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table

from scalinglab.cli.render import console, fit_summary, fmt, print_fit, print_json, print_selection, records


def show_two_step(law: Any, via: str, source: str, as_json: bool, output: Path | None) -> None:
    """Save a fitted TwoStepLaw when asked, then print it: both steps' fits and the link (tables or JSON)."""
    if output is not None:
        law.save(output)
    if as_json:
        out = law.to_dict()
        out["step1"] = fit_summary(law.step1_)
        out.pop("residuals")
        out.pop("bootstrap_link")
        print_json(out)
        return
    if law.step1_.selection_ is not None:
        print_selection(law.step1_.selection_)
    console.print(f"step 1: the intermediate '{via}' by the law", highlight=False)
    print_fit(law.step1_, source=source)
    if law.link_selection_ is not None:
        print_link_selection(law.link_selection_)
    print_link(law)
    if output is not None:
        console.print(f"fit written to {output}")


def print_link_selection(selection: Any) -> None:
    """Every candidate link's held-out errors (beyond the compute cuts, and leaving one run out), the choice and
    its reason."""
    extrap = selection.scoring == "extrapolation"
    how = "by the runs beyond compute cuts, then" if extrap else "by"
    table = Table(
        title=f"step 2: link selection ({how} leave one {selection.unit} out)",
        title_justify="left",
        caption="* the chosen link; errors are mean |residual| in the metric's units",
        caption_justify="left",
    )
    names = ("link", "params", *(("cuts", "beyond cuts") if extrap else ()), "folds", "|error| ± SE")
    for name in names:
        table.add_column(name, justify="left" if name == "link" else "right")
    for row in selection.table.to_dict(orient="records"):
        error = f"{fmt(row['cv_error'], 3)} ± {fmt(row['cv_se'], 2)}" if "cv_error" in row else "-"
        beyond = (str(row["extrap_folds"]), fmt(row["extrap_error"], 3)) if extrap else ()
        table.add_row(
            row["link"] + (" *" if row["chosen"] else ""),
            str(row["free_params"]),
            *beyond,
            str(row.get("folds", "-")),
            error,
        )
    console.print(table)
    console.print(f"chosen: {selection.choice}: {selection.reason}", highlight=False)


def print_link(law: Any) -> None:
    link = law.link_
    console.print(f"step 2: {link.name} link, {link.formula}, x = {law.via_}", highlight=False)
    table = Table(title=f"step 2: {link.name} link", title_justify="left")
    table.add_column("parameter")
    table.add_column("estimate", justify="right")
    for name, value in link.named_params.items():
        table.add_row(name, fmt(value))
    console.print(table)
    boot = f"; intervals from {law.bootstrap} resamples of whole runs through both steps" if law.bootstrap else ""
    console.print(
        f"{law.n_pairs_} checkpoints of {law.n_runs_} runs; residual SD {fmt(link.residual_sd, 3)}{boot}",
        highlight=False,
    )


def print_via_backtest(result: Any, holdout: str, as_json: bool) -> None:
    """The direct-vs-two-step comparison: scores per method, per-point predictions in JSON."""
    if as_json:
        print_json(
            {
                "holdout": holdout,
                "held_out_runs": result.held_out_runs,
                "scores": records(result.scores),
                "predictions": records(result.points),
                "links": result.links,
                "recommendation": result.recommendation,
                "warnings": result.warnings,
            }
        )
        return
    from scalinglab.cli.render import frame_table

    console.print(f"held out {len(result.held_out_runs)} run(s) ({holdout}); every method trained on the rest")
    console.print(frame_table(result.scores, "direct vs two-step, ranked by mean absolute error (metric units)"))
    for method, text in result.links.items():
        console.print(f"{method} link: {text}", markup=False, highlight=False)
    console.print(f"recommended: {result.recommendation}", markup=False, highlight=False)
    for message in result.warnings:
        console.print(f"warning: {message}", markup=False, highlight=False)
