"""A steps-aware form read as a law in N and D: every unique sample seen a fixed number of times.

A form in (N, D, S), S the samples seen, becomes L(N, D) = L(N, D, epochs x D): the same parameters, the
same Jacobian (S moves with D, so d/d theta is unchanged), and no refit. The surface, the iso-metric profile
and the cost table read it at the epochs a user trains for.
"""

from __future__ import annotations

import math

import numpy as np

from scalinglab.errors import UserError
from scalinglab.fit.forms.base import Array, Form

STEPS_INPUTS = ("n", "d", "seen")


def _with_seen(lx: Array, log_epochs: float) -> Array:
    return np.concatenate([lx, lx[1:2] + log_epochs], axis=0)


def at_epochs(form: Form, epochs: float) -> Form:
    """`form` (inputs n, d, seen) as a form in (n, d) with seen = `epochs` x d."""
    if form.inputs != STEPS_INPUTS:
        raise UserError(f"form '{form.name}' is not a law in {', '.join(STEPS_INPUTS)}: it has no epochs to fix")
    if not (math.isfinite(epochs) and epochs > 0):
        raise UserError(f"epochs must be a positive number, got {epochs:g}")
    log_epochs = math.log(epochs)

    def log_predict(theta: Array, lx: Array) -> Array:
        return form.log_predict(theta, _with_seen(lx, log_epochs))

    def jacobian(theta: Array, lx: Array) -> tuple[Array, Array]:
        return form.value_and_jacobian(theta, _with_seen(lx, log_epochs))

    return Form(
        name=f"{form.name}@{epochs:g}ep",
        formula=f"{form.formula}, at S = {epochs:g} D",
        inputs=("n", "d"),
        params=form.params,
        log_predict=log_predict,
        start_grid=form.start_grid,
        jacobian=jacobian,
        description=f"{form.name} with every unique sample seen {epochs:g} time(s)",
    )
