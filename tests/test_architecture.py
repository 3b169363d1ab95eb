"""The layout's rules, read from the source: data flow one way (no import cycle, lazy imports included) and
report/ and analysis/ import nothing from cli/."""

from __future__ import annotations

import ast
from pathlib import Path

from scalinglab.cli.options import Direction, Rows, grouped

SRC = Path(__file__).resolve().parents[1] / "src"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports anywhere in its body (top level or inside a function)."""
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            targets |= {t for t in found if t in modules and t != name}
        graph[name] = targets
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (a list of modules, the first repeated at the end), or None (depth-first search)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node], _ = 1, stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return stack[stack.index(target) :] + [target]
            if target not in state and (found := visit(target)):
                return found
        state[node], _ = 2, stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle():
    graph = import_graph()
    # a package's __init__ that only re-exports its own modules is a door, not a layer
    graph = {m: {t for t in ts if not m.startswith(t + ".")} for m, ts in graph.items()}
    assert _cycle(graph) is None


def test_report_and_analysis_import_nothing_from_cli():
    graph = import_graph()
    upward = {
        (module, target)
        for module, targets in graph.items()
        if module.startswith(("scalinglab.report", "scalinglab.analysis"))
        for target in targets
        if target.startswith("scalinglab.cli")
    }
    assert upward == set()


def test_observations_import_nothing_above_them():
    graph = import_graph()
    allowed = ("scalinglab.observations", "scalinglab.errors")
    above = {
        (module, target)
        for module, targets in graph.items()
        if module.startswith("scalinglab.observations")
        for target in targets
        if not target.startswith(allowed)
    }
    assert above == set()


# Scene simulation and rendering (data generation) are exempt: their long bodies are one physical process.
GENERATORS = {"scalinglab.behavior.synthetic", "scalinglab.perception.synthetic"}


def long_functions() -> list[tuple[str, str, int]]:
    """(module, function, lines) for every function over its limit: 40 lines in cli/, 60 elsewhere."""
    found = []
    for path in SRC.rglob("*.py"):
        module = _module_name(path)
        if module in GENERATORS:
            continue
        limit = 40 if module.startswith("scalinglab.cli") else 60
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > limit:
                    found.append((module, node.name, lines))
    return found


def test_no_function_is_longer_than_its_limit():
    assert long_functions() == []


def test_option_groups_expand_into_options_and_come_back_as_one_object():
    import typer
    from typer.testing import CliRunner

    seen = {}

    @grouped
    def command(path: str, rows: Rows, direction: Direction, top: int = 3) -> None:
        seen.update(rows=rows, direction=direction, top=top, path=path)

    app = typer.Typer()
    app.command()(command)
    result = CliRunner().invoke(app, ["x.csv", "--metric", "loss", "--higher-is-better", "--top", "5"])
    assert result.exit_code == 0, result.output
    assert seen == {
        "rows": Rows(metric="loss"),
        "direction": Direction(higher_is_better=True),
        "top": 5,
        "path": "x.csv",
    }
