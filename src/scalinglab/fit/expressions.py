"""Safe evaluation of derived quantities such as "beta / (alpha + beta)" over fitted parameters.

Only arithmetic, numbers, parameter names and a few math functions are allowed; nothing is exec'd.
"""

from __future__ import annotations

import ast
import operator

import numpy as np

from scalinglab.errors import UserError

_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}
_FUNCS = {"log": np.log, "log10": np.log10, "exp": np.exp, "sqrt": np.sqrt, "abs": np.abs}
# Bounds the work: every value is a float64 (no big integers), and a short expression keeps the
# tree shallow enough for the recursive walk.
MAX_LENGTH = 400


def evaluate(expression: str, names: dict[str, np.ndarray | float]) -> np.ndarray:
    """The value of `expression` with `names` bound (arrays evaluate element-wise).

    A value that is not finite (division by zero, overflow, log of a negative number) is a UserError;
    for arrays, only when no element is finite (bootstrap samples may hold a few bad draws).
    """
    if len(expression) > MAX_LENGTH:
        raise UserError(f"expression '{expression[:40]}...': longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(expression, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise UserError(f"expression '{expression}': not valid arithmetic") from None

    def walk(node: ast.AST) -> np.ndarray:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            try:
                return np.float64(node.value)
            except OverflowError:
                raise UserError(f"expression '{expression}': a number is too large for a float") from None
        if isinstance(node, ast.Name):
            if node.id not in names:
                raise UserError(f"expression '{expression}': unknown name '{node.id}'; known: {', '.join(names)}")
            return np.asarray(names[node.id], dtype=float)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            return _BINARY[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            return _UNARY[type(node.op)](walk(node.operand))
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in _FUNCS
            and len(node.args) == 1
            and not node.keywords
        ):
            return _FUNCS[node.func.id](walk(node.args[0]))
        raise UserError(f"expression '{expression}': '{ast.unparse(node)}' is not allowed")

    try:
        with np.errstate(all="ignore"):
            value = np.asarray(walk(tree), dtype=float)
    except (ZeroDivisionError, OverflowError, FloatingPointError, RecursionError):
        value = np.asarray(np.nan)
    if not np.isfinite(value).any():
        raise UserError(
            f"expression '{expression}': the value is not a finite number "
            "(a division by zero, an overflow or the log of a number <= 0)"
        )
    return value


def parse_named(text: str) -> tuple[str, str]:
    """Split "name=expression" (the name defaults to the expression itself)."""
    name, sep, expression = text.partition("=")
    if not sep:
        return text.strip(), text.strip()
    if not name.strip().isidentifier():
        raise UserError(f"derived quantity '{text}': '{name.strip()}' is not a valid name")
    return name.strip(), expression.strip()
