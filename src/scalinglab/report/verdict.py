"""The verdict at the top of every report: three to five plain sentences generated from the analysis, each
with its number, its interval and how far to trust it."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import numpy as np

from scalinglab.errors import UserError
from scalinglab.fit.diagnostics import held_out_error, loose_parameters
from scalinglab.format import percent
from scalinglab.optimal.answer import outside_note
from scalinglab.optimal.iso_metric import iso_metric_profile
from scalinglab.report.style import number

if TYPE_CHECKING:
    from scalinglab.analysis import Analysis
    from scalinglab.fit.forms.base import Form
    from scalinglab.fit.law import ScalingLaw

MAX_SAMPLES = 60  # bootstrap refits used for the cost multiplier's interval
QUANTITY_WORDS = {"N": "model size", "D": "data", "S": "steps"}


def _tails(law: ScalingLaw) -> tuple[float, float]:
    tail = 50 * (1 - law.ci_level)
    return tail, 100 - tail


def _interval_text(lo: float, hi: float, unit: str = "", digits: int = 2) -> str:
    return f"[{lo:.{digits}g}{unit}, {hi:.{digits}g}{unit}]"


def doubling(law: ScalingLaw, variable: str, metric: str) -> str | None:
    """ "doubling N improves minADE by 9% [6, 12] at the best run": from the law, its interval from the
    bootstrap refits."""
    if law.form_.inputs != ("n", "d"):
        return None
    point = np.array([[law.best_point_["n"]], [law.best_point_["d"]]])
    doubled = point.copy()
    doubled[0 if variable == "n" else 1] *= 2

    def gain(theta: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            base = law.to_metric(np.exp(law.form_.log_predict(theta, np.log(point))[:, 0]))
            new = law.to_metric(np.exp(law.form_.log_predict(theta, np.log(doubled))[:, 0]))
        change = (new - base) / np.abs(base) * 100.0
        return change if law.higher_is_better else -change

    value = float(gain(law.theta_[None, :])[0])
    name = "N" if variable == "n" else "D"
    where = f"at the best run (N = {number(point[0, 0])}, D = {number(point[1, 0])})"
    if law.bootstrap_theta_ is None:
        return (
            f"Doubling {name} improves {metric} by {value:.2g}% {where}; no interval (run with --bootstrap K), "
            "so treat it as a point estimate."
        )
    samples = gain(law.bootstrap_theta_)
    samples = samples[np.isfinite(samples)]
    lo, hi = np.percentile(samples, _tails(law))
    trust = "firm: the interval excludes zero" if lo > 0 or hi < 0 else "weak: the interval includes zero"
    return (
        f"Doubling {name} improves {metric} by {value:.2g}% {_interval_text(lo, hi, '%')} {where} "
        f"({percent(law.ci_level)} bootstrap interval; {trust})."
    )


def cost_sentence(analysis: Analysis) -> str | None:
    """ "1% better costs 1.6x the compute of the best run, at N = ..., D = ...", with the multiplier's
    interval over bootstrap refits and whether the answer lies inside the fitted range."""
    law, profile = analysis.law, analysis.profile
    if law is None or profile is None or profile.improvement is None:
        return None
    cheap, mult = profile.cheapest, profile.multipliers
    interval = "no interval (run with --bootstrap K)"
    if law.bootstrap_theta_ is not None:
        values = []
        for theta in law.bootstrap_theta_[:MAX_SAMPLES]:
            refit = copy.copy(law)
            refit.theta_ = theta
            try:
                again = iso_metric_profile(
                    refit, improvement=profile.improvement, flops_per_param_sample=profile.flops_per_param_sample
                )
                values.append(again.multipliers["flops"])
            except (UserError, ValueError, FloatingPointError):
                continue
        values = np.asarray(values, dtype=float)
        values = values[np.isfinite(values)]
        if values.size >= 10:
            lo, hi = np.percentile(values, _tails(law))
            total = len(law.bootstrap_theta_)
            used = f"{values.size} of the {total}" if total > values.size else f"{values.size}"
            interval = f"{_interval_text(lo, hi, 'x', digits=3)} over {used} bootstrap refits"
    outside = []
    for name, value in (("N", cheap["n"]), ("D", cheap["d"])):
        low, high = law.domain_[name.lower()]
        if value > high:
            outside.append(f"{name} {value / high:.2g}x above the largest fitted")
        elif value < low:
            outside.append(f"{name} {low / value:.2g}x below the smallest fitted")
    trust = (
        f"an extrapolation ({', '.join(outside)}), so a forecast, not a measurement"
        if outside
        else "inside the fitted range"
    )
    return (
        f"{percent(profile.improvement)} better than the law's value at the best run costs {mult['flops']:.3g}x "
        "its compute "
        f"{interval}, at N = {number(cheap['n'])} ({mult['n']:.2g}x) and D = {number(cheap['d'])} ({mult['d']:.2g}x); "
        f"{trust}."
    )


def methods_sentence(analysis: Analysis) -> str | None:
    """Whether the compute-optimal methods agree on N_opt(C): their exponents' intervals share a point."""
    optimal = analysis.optimal
    if optimal is None:
        return None
    rows = optimal.exponents_
    rows = rows[rows["quantity"] == "N"]
    if rows.empty:
        return None
    text = "; ".join(
        f"{r.method} C^{r.exponent:.2f} [{r.lower:.2f}, {r.upper:.2f}]"
        if np.isfinite(r.lower)
        else f"{r.method} C^{r.exponent:.2f} (no interval)"
        for r in rows.itertuples()
    )
    if len(rows) == 1:
        return f"Only the {rows['method'].iloc[0]} method could fit N_opt(C): {text}; nothing to check it against."
    fixed = rows[rows["lower"] == rows["upper"]]  # the same in every replica: the form's assumption
    if len(fixed):
        text += f" ({', '.join(fixed['method'])}: fixed by its law's form, not estimated)"
    bounded = rows[np.isfinite(rows["lower"]) & np.isfinite(rows["upper"]) & (rows["lower"] < rows["upper"])]
    if len(bounded) < 2:
        apart = _budgets_apart(optimal)
        if apart and len(fixed):
            return (
                f"The compute-optimal methods give N_opt(C) as {text}; their N_opt does not agree at {apart}; "
                "see the warnings for the likely causes."
            )
        return f"The compute-optimal methods give N_opt(C) as {text}; without intervals their agreement is unknown."
    agree = bounded["lower"].max() <= bounded["upper"].min()
    if agree:
        apart = _budgets_apart(optimal)
        if apart:
            return (
                f"The compute-optimal methods' N_opt(C) exponents overlap ({text}), but their N_opt does not at "
                f"{apart}; see the warnings for the likely causes."
            )
        return f"The compute-optimal methods agree on N_opt(C) (their intervals overlap): {text}."
    return (
        f"The compute-optimal methods disagree on N_opt(C) (their intervals do not overlap): {text}; "
        "see the warnings for the range each method used."
    )


def answer_sentence(analysis: Analysis) -> str | None:
    """ "At C FLOPs, train N on D samples (S steps)": the one answer (optimal.answer), which estimate it is and
    why, and whether it lies inside the sizes the runs sampled."""
    answer, optimal = getattr(analysis, "answer", None), analysis.optimal
    if answer is None or optimal is None:
        return None
    data = f" on D = {number(answer.d)} samples" if answer.d is not None else ""
    steps = f" ({number(answer.s)} steps)" if answer.s is not None else ""
    interval = f" [{number(answer.n_lower)}, {number(answer.n_upper)}]" if np.isfinite(answer.n_lower) else ""
    outside = outside_note(answer, optimal)
    trust = f"; an extrapolation ({outside}), so a forecast, not a measured run" if outside else ""
    return (
        f"At {answer.budget:.3g} FLOPs (the largest run's compute), train N = {number(answer.n)}{interval} "
        f"parameters{data}{steps}: {answer.reason}{trust}."
    )


def _budgets_apart(optimal: Any) -> str:
    """The budgets at which the methods' N_opt intervals do not overlap, with each method's value."""
    agreement = getattr(optimal, "agreement_", None)
    if agreement is None or agreement.table.empty:
        return ""
    table, est = agreement.table, agreement.estimates
    apart = table[(table["quantity"] == "N") & table["budget"].notna() & (table["verdict"] == "disagree")]
    parts = []
    for budget in apart["budget"]:
        rows = est[(est["quantity"] == "N") & np.isclose(est["budget"].astype(float), budget)]
        values = ", ".join(f"{r.method} {r.value:.3g}" for r in rows.itertuples())
        parts.append(f"{budget:.3g} FLOPs ({values})")
    return "; ".join(parts)


def _form_assumptions(form: Form) -> str:
    """What a form of chinchilla's additive family fixes instead of estimating ("" for the others), read off
    its parameters: no E is no floor, no beta is one exponent, a parameter pinned by the form is a given value."""
    names = {p.public for p in form.params}
    if not {"A", "B", "alpha"} <= names:
        return ""
    fixed = [] if "E" in names else ["no floor, E = 0"]
    if "beta" not in names:
        fixed.append("one exponent for N and D, beta = alpha")
    pinned = [p for i, p in enumerate(form.params) if i not in set(form.free)]
    fixed += [f"the floor {p.public} = {float(p.to_public(np.asarray(p.lower))):g}" for p in pinned]
    return "; ".join(fixed)


def identification_sentence(analysis: Analysis) -> str | None:
    """ "The law is / is not identified", the held-out error, and what to run next when it is not."""
    law = analysis.law
    if law is None:
        return None
    error = held_out_error(law)
    cv = "" if error is None else f", chosen by held-out runs (median held-out error {error:.1%})"
    loose = loose_parameters(law)
    if not loose:
        level = percent(law.ci_level)
        fixed = _form_assumptions(law.form_)
        return f"The {law.form_.name} law is identified{cv}: every parameter has a closed {level} interval" + (
            f" (given its form's assumptions: {fixed})." if fixed else "."
        )
    needs = []
    if {"A", "alpha", "Nc", "alphaN"} & set(loose):
        needs.append("larger models (N beyond the largest run)")
    if {"B", "beta", "Dc", "alphaD"} & set(loose):
        needs.append("more data (D beyond the largest run)")
    if "E" in loose and not needs:
        needs.append("runs closer to the floor (larger N and D together)")
    return (
        f"The {law.form_.name} law is not identified{cv}: {', '.join(loose)} "
        f"{'is' if len(loose) == 1 else 'are'} open or at a bound; run {' and '.join(needs) or 'more runs'} next."
    )


def verdict(analysis: Analysis) -> list[str]:
    """Three to five sentences a reader can act on, each generated from the analysis."""
    law = analysis.law
    sentences = []
    if law is None:
        sentences.append("No law could be fitted to these runs; the warnings below say why.")
    else:
        sentences += [doubling(law, "n", analysis.metric), doubling(law, "d", analysis.metric)]
        sentences.append(cost_sentence(analysis))
    sentences += [answer_sentence(analysis) or methods_sentence(analysis), identification_sentence(analysis)]
    return [s for s in sentences if s][:5]
