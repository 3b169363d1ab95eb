"""The registry of functional forms, looked up by name.

Adding a form is one `Form(...)` definition and one entry in `FORMS`.
"""

from __future__ import annotations

from scalinglab.errors import UserError
from scalinglab.fit.forms.base import Form, Param
from scalinglab.fit.forms.one_var import BNSL1, BNSL2, M3, POWER, POWER_OFFSET
from scalinglab.fit.forms.saturating import SATURATING
from scalinglab.fit.forms.two_var import CHINCHILLA, KAPLAN

FORMS: dict[str, Form] = {f.name: f for f in (CHINCHILLA, KAPLAN, POWER, POWER_OFFSET, M3, SATURATING, BNSL1, BNSL2)}


def get_form(name: str | Form) -> Form:
    """The form called `name` (or `name` itself when it is already a Form)."""
    if isinstance(name, Form):
        return name
    try:
        return FORMS[name]
    except KeyError:
        raise UserError(f"unknown form '{name}'; choose one of: {', '.join(FORMS)}") from None


__all__ = ["FORMS", "Form", "Param", "get_form"]
