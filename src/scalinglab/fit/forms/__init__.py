"""The registry of functional forms, looked up by name.

Adding a form is one `Form(...)` definition and one entry in `FORMS`.
"""

from __future__ import annotations

from scalinglab.errors import UserError
from scalinglab.fit.forms.base import Form, Param
from scalinglab.fit.forms.data_constrained import DATA_CONSTRAINED, DATA_CONSTRAINED_FULL
from scalinglab.fit.forms.modern import CHINCHILLA_NBETA, FARSEER
from scalinglab.fit.forms.one_var import BNSL1, BNSL2, M3, POWER, POWER_OFFSET
from scalinglab.fit.forms.saturating import SATURATING
from scalinglab.fit.forms.two_var import (
    CHINCHILLA,
    CHINCHILLA_NO_FLOOR,
    CHINCHILLA_NO_FLOOR_SHARED,
    CHINCHILLA_SHARED,
    FIXED_FLOOR_PREFIX,
    KAPLAN,
    fixed_floor,
)

_ALL = (
    CHINCHILLA,
    CHINCHILLA_NO_FLOOR,
    CHINCHILLA_SHARED,
    CHINCHILLA_NO_FLOOR_SHARED,
    KAPLAN,
    CHINCHILLA_NBETA,
    FARSEER,
    DATA_CONSTRAINED,
    DATA_CONSTRAINED_FULL,
    POWER,
    POWER_OFFSET,
    M3,
    SATURATING,
    BNSL1,
    BNSL2,
)
FORMS: dict[str, Form] = {f.name: f for f in _ALL}


def get_form(name: str | Form) -> Form:
    """The form called `name` (or `name` itself when it is already a Form).

    `chinchilla_floor=E` is chinchilla with its floor fixed at E.
    """
    if isinstance(name, Form):
        return name
    if name.startswith(FIXED_FLOOR_PREFIX):
        value = name[len(FIXED_FLOOR_PREFIX) :]
        try:
            return fixed_floor(float(value))
        except ValueError:
            raise UserError(
                f"form '{name}': the floor '{value}' must be a number > 0, e.g. chinchilla_floor=1.69"
            ) from None
    try:
        return FORMS[name]
    except KeyError:
        raise UserError(f"unknown form '{name}'; choose one of: {', '.join(FORMS)}") from None


__all__ = ["FORMS", "Form", "Param", "get_form"]
