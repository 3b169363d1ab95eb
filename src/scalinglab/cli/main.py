"""The `scalinglab` application: registers the commands and turns user errors into one line and exit 2."""

from __future__ import annotations

import sys
import warnings

import typer

from scalinglab.cli import (
    backtest_cmd,
    curves_cmd,
    demo_cmd,
    fit_cmd,
    hparams_cmd,
    import_cmd,
    optimal_cmd,
    report_cmd,
    study_cmd,
    suggest_cmd,
)
from scalinglab.cli.columns import EPILOG
from scalinglab.errors import UserError

app = typer.Typer(
    help="Run and analyse scaling-law studies: fit L(N, D) and other laws, with bootstrap intervals.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("fit", epilog=EPILOG)(fit_cmd.fit)
app.command("predict")(fit_cmd.predict)
app.command("forms")(fit_cmd.forms)
app.command("optimal", epilog=EPILOG)(optimal_cmd.optimal)
app.command("profile")(optimal_cmd.profile)
app.command("cost")(optimal_cmd.cost)
app.command("suggest", epilog=EPILOG)(suggest_cmd.suggest)
app.command("backtest", epilog=EPILOG)(backtest_cmd.backtest)
app.command("hparams", epilog=EPILOG)(hparams_cmd.hparams)
app.command("demo")(demo_cmd.demo)
app.command("report", epilog=EPILOG)(report_cmd.report)
app.command("compare")(report_cmd.compare)
study_cmd.app.command("curves")(curves_cmd.curves)
app.add_typer(study_cmd.app, name="study")
app.command("import")(import_cmd.import_runs)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    sys.stderr.write(f"warning: {message}\n")


def main() -> None:
    warnings.showwarning = _show_warning
    try:
        app()
    except UserError as exc:
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(UserError.exit_code)


if __name__ == "__main__":
    main()
