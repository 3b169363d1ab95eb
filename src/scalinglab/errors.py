"""Errors a user can cause, and the one-line message they end in.

Anything raised as `UserError` is printed by the CLI as a single line and exits with code 2.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input from the user: a file, column, row, key or option that cannot be used as given."""

    exit_code = 2
