"""`scalinglab demo`: the main job. A behaviour-prediction scaling study on synthetic traffic, on CPU:
5 model scales x 4 data scales x 2 seeds, one pass over each cell's scenes under warmup-stable-decay, the data
scales realised as cooldown branches of one run per model and seed; the laws fitted, the report written.

The design (docs/benchmarks.md, "The demo on cooldown branches"): one pass, so a data scale is the distinct
scenes a cell trains on (8,000 to 32,000) and, with branches, each model's four cells cost one run of 32,000
scenes and three cooldowns; every cell's end is a cooled-down run, so the envelope and IsoFLOP read the ends at
every data scale, not mid-run checkpoints. One mode (K = 1: minADE is the ADE), random rotations of the
training scenes, 16 scenes per intersection layout and the 8 agents and 16 map pieces nearest the target, as
the earlier demo was tuned (seed-to-seed spread below the effects of N and D); batches of 32, so the smallest
cell takes 250 steps, past the first steps in which the small models are still learning to extrapolate. The
2X width is left out: at one pass it trails 1X at the largest data scale in both seeds.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from scalinglab.cli.render import console, fmt, group_warnings
from scalinglab.files import write_text_atomic

EVAL_EVERY = 100  # steps between evals (and at the last step)
SCENES = 8000  # training scenes at data scale 1X
DEMO_STUDY = {  # the budget is set from --epochs, base_samples from --scenes
    "name": "demo-behavior",
    "task": "behavior",
    "task_options": {
        "source": "synthetic",
        "history": 10,
        "horizon": 20,
        "eval_samples": 1000,
        "base_width": 16,
        "base_depth": 2,
        "num_modes": 1,
        "scenes_per_layout": 16,
        "augment_rotation": True,
        "max_agents": 8,
        "max_polylines": 16,
    },
    "model_scales": ["1X", "4X", "8X", "16X", "32X"],
    "scale_by": "width",
    "data_scales": ["1X", "2X", "3X", "4X"],
    "batch_size": 32,
    "optimizer": {"name": "adamw", "lr": 0.002, "weight_decay": 0.01},
    "schedule": {"kind": "wsd", "warmup_steps": 20, "decay_fraction": 0.2, "decay_shape": "sqrt"},
    "branches": True,
    "seeds": [0, 1],
    "device": "cpu",
}


def demo(
    output: Annotated[Path, typer.Option("-o", "--output", help="folder for the study and the report")] = Path(
        "scalinglab-demo"
    ),
    workers: Annotated[int, typer.Option(help="local worker processes")] = 2,
    bootstrap: Annotated[int, typer.Option(help="bootstrap refits for the intervals")] = 200,
    epochs: Annotated[float, typer.Option(help="passes over each cell's training scenes")] = 1.0,
    scenes: Annotated[int, typer.Option(help="training scenes at data scale 1X")] = SCENES,
    as_json: Annotated[bool, typer.Option("--json", help="print the results as JSON instead of text")] = False,
) -> None:
    """Run a behaviour study on synthetic traffic (minADE vs model and data scale), fit the laws, write the report."""
    from scalinglab.analysis import analyse, headline, load_observations
    from scalinglab.report.html import write_report
    from scalinglab.study.runner import execute

    say = (lambda *args, **kwargs: None) if as_json else console.print  # stdout holds only the JSON
    store = _create_study(output, epochs, scenes, workers, say)
    counts = execute(store, "local", workers)
    if counts.get("failed"):
        say(f"[red]{counts['failed']} run(s) failed; see `scalinglab study status {output / 'study'}`")
    with console.status("fitting L(N, D), the compute-optimal laws and bootstrap intervals"):
        obs, source = load_observations(output / "study")  # with the branches' savings and the runs' schedules
        analysis = analyse(
            obs,
            source,
            metric="minADE",
            split="eval",
            bootstrap=bootstrap,
            title="Demo: behaviour prediction on synthetic traffic (minADE, K=1)",
        )
        page = write_report(analysis, output / "report")
    numbers = headline(analysis)
    if as_json:
        from scalinglab.cli.render import print_json

        runs = {"study": str(output / "study"), "report": str(page), "runs": counts}
        return print_json(runs | {"headline": numbers, "warnings": list(analysis.warnings)})
    _say_results(numbers, analysis, say)
    say(f"report: {page}")


def _create_study(output: Path, epochs: float, scenes: int, workers: int, say: Callable[..., None]) -> Any:
    """The demo's study store under `output` (its config written beside it), announced in one line."""
    from scalinglab.study.config import parse_config
    from scalinglab.study.store import Store

    output.mkdir(parents=True, exist_ok=True)
    config_path = output / "study.yaml"
    options = {**DEMO_STUDY["task_options"], "base_samples": scenes}
    study = {**DEMO_STUDY, "task_options": options, "budget": {"epochs": epochs}, "eval_every": EVAL_EVERY}
    config = parse_config(study, str(config_path))
    store = Store.create(output / "study", config)  # refuses a folder that holds another config's study
    write_text_atomic(config_path, yaml.safe_dump(study, sort_keys=False))  # only once it is the study's config
    runs = len(config.model_scales) * len(config.data_scales) * len(config.seeds)
    say(
        f"behaviour study on synthetic traffic: {len(config.model_scales)} model scales x "
        f"{len(config.data_scales)} data scales x {len(config.seeds)} seeds = {runs} runs (one trunk per model and "
        f"seed, the shorter cells as its cooldown branches), {workers} worker(s) -> {output / 'study'}"
    )
    return store


def _say_results(numbers: dict[str, Any], analysis: Any, say: Callable[..., None]) -> None:
    """The law, the compute-optimal sizes at the largest budget, the verdict and the warnings, one line each."""
    if {"E", "alpha", "beta"} <= set(numbers):
        say(f"minADE(N, D) = {fmt(numbers['E'])} + A/N^{fmt(numbers['alpha'])} + B/D^{fmt(numbers['beta'])}")
    opt = {k: v for k, v in numbers.items() if k.startswith(("N_opt", "D_opt", "S_opt"))}
    if opt:
        say(f"compute-optimal at the largest budget ({numbers['budget']:.3g} FLOPs):")
        for name, value in opt.items():
            say(f"  {name}: {value:.4g}")
    for sentence in analysis.verdict:
        say(f"- {sentence}", highlight=False)
    for warning in group_warnings(analysis.warnings):  # one line per kind; every warning is in the report
        say(f"[yellow]warning:[/] {warning}")
