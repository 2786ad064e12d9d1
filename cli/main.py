"""`populace`: the command groups, and how errors and stop signals become exit codes.

Only typer and rich load at start; each command imports what it needs, so `populace --help` stays fast.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Protocol, cast

import typer

from cli import build_commands, corpus_commands, setup_commands, taxonomy_commands
from cli.output import print_error

# Prefect's ephemeral API needs ~30 s to start on a fresh, small machine; its default is 20 s.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Build synthetic persona corpora.")
for group in (setup_commands, taxonomy_commands, build_commands, corpus_commands):
    group.register(app)


class _UsageError(Protocol):
    """What the handler uses of click's usage errors (click's own and typer's copy)."""

    exit_code: int

    def show(self) -> None: ...


def main() -> None:
    from foundation.process_guard import (
        StopRequested,
        command_is_guarded,
        exit_stopped,
        exit_with_error,
        stop_requested,
    )
    from schemas.errors import PopulaceError, UserInputError

    try:
        # Outside standalone mode typer returns an exit code instead of exiting: typer.Exit(n)
        # from a command, and 130 for a KeyboardInterrupt (the signal that caused it is ours).
        code = app(standalone_mode=False)
        stopped_by = stop_requested()
        if stopped_by is not None:
            exit_stopped(stopped_by)
        if isinstance(code, int) and code:
            sys.exit(code)
    except UserInputError as exc:
        print_error(str(exc))
        sys.exit(2)
    except PopulaceError as exc:
        if command_is_guarded():  # stop Ray and Prefect first, so their shutdown logs do not bury the reason
            exit_with_error(str(exc))
        print_error(str(exc))
        sys.exit(1)
    except (typer.Abort, KeyboardInterrupt) as exc:  # click turns Ctrl-C into Abort, keeping the cause
        cause = exc.__cause__ if isinstance(exc.__cause__, StopRequested) else exc
        exit_stopped(cause.signum if isinstance(cause, StopRequested) else signal.SIGINT)
    except usage_errors() as exc:  # a missing or malformed option: usage and exit code 2, no traceback
        usage = cast(_UsageError, exc)  # only ClickExceptions (click's or typer's copy) are raised
        usage.show()
        sys.exit(usage.exit_code)


def usage_errors() -> tuple[type[Exception], ...]:
    """Click's usage errors, from the click package and from the copy of click newer typer releases carry."""
    import click

    vendored = getattr(typer, "TyperException", None)
    return (click.ClickException, *([vendored] if vendored else []))


if __name__ == "__main__":
    main()
