"""The form selection's older entry points, kept for callers: `select_form` (use `FormSearch`) and the
scoring pieces, which live in `fit.scoring`."""

from __future__ import annotations

from typing import Any

from scalinglab.fit.law import ScalingLaw
from scalinglab.fit.scoring import (  # noqa: F401  (re-exported)
    DEFAULT_CANDIDATES,
    Selection,
    cross_validate,
    free_parameters,
    held_out_groups,
    one_se_choice,
)
from scalinglab.fit.search import select_candidates
from scalinglab.observations import FitData


def select_form(
    data: FitData,
    candidates: tuple[str, ...] | list[str] = DEFAULT_CANDIDATES,
    checkpoints: FitData | None = None,
    **law_options: Any,
) -> tuple[Selection, dict[str, ScalingLaw]]:
    """Every candidate fitted and scored by held-out error, and the one-SE choice (`search.select_candidates`)."""
    return select_candidates(ScalingLaw(**law_options), data, candidates, checkpoints)
