"""The report's machine-readable summary: `summary.json` beside index.html, and `report --json`."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from scalinglab.fit.diagnostics import held_out_error

if TYPE_CHECKING:
    from scalinglab.analysis import Analysis


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def summary(analysis: Analysis) -> dict[str, Any]:
    """law (form, params, ci, not_identified, at_bounds, cv_error, selection), optimal rows, warnings, verdict."""
    law = analysis.law
    out: dict[str, Any] = {
        "title": analysis.title,
        "source": analysis.source,
        "metric": analysis.metric,
        "split": analysis.split,
        "higher_is_better": analysis.higher_is_better,
        "runs": int(analysis.final["run_id"].nunique()) if "run_id" in analysis.final else len(analysis.final),
        "verdict": list(analysis.verdict),
        "law": None,
        "optimal": [],
        "warnings": list(analysis.warnings),
    }
    if law is not None:
        out["law"] = {
            "form": getattr(law, "reduced_from_", law.form_.name),
            "formula": law.form_.formula,
            "params": law.params_,
            "ci_level": law.ci_level,
            "ci": {k: list(v) for k, v in (law.ci_ or {}).items()},
            "not_identified": list(law.not_identified_),
            "at_bounds": list(getattr(law, "at_bounds_", [])),
            "cv_error": held_out_error(law),
            "selection": None if law.selection_ is None else law.selection_.to_dict(),
            "fitted_on": "every checkpoint" if analysis.all_points else "each run's final point",
        }
    if analysis.optimal is not None:
        rows = analysis.optimal.exponents_[["method", "quantity", "exponent", "lower", "upper"]]
        out["optimal"] = rows.to_dict(orient="records")
        out["optimal_data_scale"] = analysis.envelope_scale
        out["optimal_reads"] = analysis.envelope_reads
        if analysis.answer is not None:  # the one compute-optimal answer (optimal/answer.py)
            out["optimal_answer"] = analysis.answer.to_dict()
        agreement = getattr(analysis.optimal, "agreement_", None)  # do the methods agree (optimal/agreement.py)
        if agreement is not None:
            out["optimal_agreement"] = agreement.to_dict()
    if analysis.costs is not None:
        out["costs"] = analysis.costs.to_dict(orient="records")
    if analysis.hparams:  # each searched hyperparameter's optimum and its laws (scalinglab hparams)
        out["hparams"] = {t.column: t.to_dict() for t in analysis.hparams}
    if analysis.curves:
        out["curves"] = analysis.curves
    if analysis.suggestions is not None:  # what to run next (optimal/suggest.py)
        out["suggestions"] = analysis.suggestions.to_dict(top=10)
    return _clean(out)
