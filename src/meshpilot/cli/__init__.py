"""The `meshpilot` command line.

Every command takes `--workspace DIR` (default: $MESHPILOT_WORKSPACE, else ./meshpilot-workspace),
prints Rich tables for people and `--json` for machines, and turns a `MeshpilotError` into one clear
message on stderr with exit code 1 (usage errors: 2).
"""

from __future__ import annotations

import os
import sys

# No Pydantic plugin serves the command line, and looking for them reads the entry points of every
# installed distribution (30-40 ms a command). Set the variable (to "" for all) to have plugins loaded.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

import typer  # noqa: E402
from typer.exceptions import TyperException  # noqa: E402

from meshpilot.cli.common import app, err, finish_call  # noqa: E402
from meshpilot.errors import MeshpilotError  # noqa: E402

# Importing the command modules registers their commands on the app, in this order in --help.
from meshpilot.cli import workspace, catalog, sql, lineage, contracts, serve, imports, guardrails, incidents, chat, evals, prompts  # noqa: F401, E402

# --- entry point -------------------------------------------------------------------------------------


def main() -> None:
    error: BaseException | None = None
    try:
        code = app(standalone_mode=False)
    except BaseException as exc:
        error = exc
        code = None
    finally:
        finish_call(error if not isinstance(error, SystemExit) else None)
    if error is None or isinstance(error, SystemExit):
        sys.exit(error.code if isinstance(error, SystemExit) else code if isinstance(code, int) else 0)
    try:
        raise error
    except MeshpilotError as exc:
        err.print(f"[bold red]error:[/bold red] {exc.message}", highlight=False)
        for problem in exc.problems:
            err.print(f"  {problem}", highlight=False, markup=False)
        if exc.hint:
            err.print(exc.hint, highlight=False, markup=False)
        sys.exit(1)
    except TyperException as exc:  # usage errors: typer prints them the way click does
        exc.show()
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("Aborted.")
        sys.exit(130)
    except KeyboardInterrupt:
        err.print("Interrupted.")
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("MESHPILOT_DEBUG"):
            raise
        err.print(f"[bold red]internal error:[/bold red] {type(exc).__name__}: {exc}", highlight=False)
        err.print("This is a bug in Meshpilot. Run again with MESHPILOT_DEBUG=1 for the traceback, and report it.")
        sys.exit(3)
