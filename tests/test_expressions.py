"""The derived-quantity evaluator: arithmetic against Python's own, bounded work, one-line errors."""

import math
import time

import numpy as np
import pytest

from scalinglab.errors import UserError
from scalinglab.fit.expressions import MAX_LENGTH, evaluate, parse_named

PARAMS = {"alpha": 0.34, "beta": 0.28, "A": 406.4, "B": 410.7}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("beta / (alpha + beta)", 0.28 / (0.34 + 0.28)),
        ("(alpha * A / (beta * B)) ** (1 / (alpha + beta))", (0.34 * 406.4 / (0.28 * 410.7)) ** (1 / 0.62)),
        (
            "-log(A) + exp(alpha) - sqrt(B) + abs(-2) + log10(100)",
            -math.log(406.4) + math.exp(0.34) - math.sqrt(410.7) + 4,
        ),
        ("2 ** 10 - 1e3", 24.0),
    ],
)
def test_values_match_python_arithmetic(expression, expected):
    assert float(evaluate(expression, PARAMS)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("expression", ["1/0", "10.0**400", "9**9**9", "log(-1)", "exp(1000)", "alpha / (beta - beta)"])
def test_non_finite_values_are_one_line_errors(expression):
    with pytest.raises(UserError, match="not a finite number") as info:
        evaluate(expression, PARAMS)
    assert "\n" not in str(info.value)


def test_huge_powers_cost_no_time():
    # Every value is a float64: a tower of powers is one overflow, not a big-integer computation.
    start = time.perf_counter()
    for expression in ("9**9**9**9", "99999**99999**99999", "(9**9)**(9**9)"):
        with pytest.raises(UserError):
            evaluate(expression, PARAMS)
    assert time.perf_counter() - start < 1.0


def test_long_deep_and_odd_expressions_are_refused():
    with pytest.raises(UserError, match=f"longer than {MAX_LENGTH}"):
        evaluate("+".join(["alpha"] * 200), PARAMS)
    # within the length limit, the deepest trees still evaluate (no recursion error)
    assert float(evaluate("(" * 199 + "1" + ")" * 199, PARAMS)) == 1.0
    assert float(evaluate("-" * (MAX_LENGTH - 1) + "1", PARAMS)) == -1.0
    with pytest.raises(UserError, match="not valid arithmetic"):
        evaluate("alpha +* beta", PARAMS)
    with pytest.raises(UserError, match="too large"):
        evaluate("1" + "0" * 320, PARAMS)
    for bad in ("True + 1", "alpha.real", "log(x=1)", "[1][0]", "'a'"):
        with pytest.raises(UserError, match="not allowed"):
            evaluate(bad, PARAMS)


def test_arrays_keep_their_finite_elements():
    # Bootstrap samples: a bad draw gives one non-finite element, not an error; all bad is an error.
    out = evaluate("A / B", {"A": np.array([1.0, 2.0]), "B": np.array([0.0, 4.0])})
    assert np.isinf(out[0]) and out[1] == 0.5
    with pytest.raises(UserError, match="not a finite number"):
        evaluate("A / B", {"A": np.array([1.0, 2.0]), "B": np.array([0.0, 0.0])})


def test_parse_named():
    assert parse_named("a = beta/(alpha+beta)") == ("a", "beta/(alpha+beta)")
    assert parse_named("alpha+beta") == ("alpha+beta", "alpha+beta")
    with pytest.raises(UserError, match="not a valid name"):
        parse_named("1a=alpha")
