"""``charger-sim`` entry point: subcommands, logging set-up and the error -> exit code mapping."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from .. import __version__
from ..codec import set_dbc_dir
from ..errors import ChargerSimError, ExitCode
from . import bench as bench_cmd
from . import decode as decode_cmd
from . import diagnose as diagnose_cmd
from . import faults as faults_cmd
from . import fuzz as fuzz_cmd
from . import matrix as matrix_cmd
from . import profiles as profiles_cmd
from . import replay as replay_cmd
from . import roles as roles_cmd
from . import run as run_cmd

log = logging.getLogger("charger_sim")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="charger-sim",
        description="Play the charger side of the EV DC-charging handshake (CHAdeMO, GB/T 27930, CCS bridge) "
        "over CAN, "
        "against a simulated vehicle/BMS or a real one.",
    )
    parser.add_argument("--version", action="version", version=f"charger-sim {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="log to stderr (-v info, -vv debug)"
    )
    parser.add_argument(
        "--dbc-dir", type=Path, metavar="DIR", help="load the protocols' DBC files from DIR instead of dbc/"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    run_cmd.add_parser(sub)
    decode_cmd.add_parser(sub)
    diagnose_cmd.add_parser(sub)
    replay_cmd.add_parser(sub)
    roles_cmd.add_parser(sub)
    faults_cmd.add_parser(sub)
    fuzz_cmd.add_parser(sub)
    matrix_cmd.add_parser(sub)
    profiles_cmd.add_parser(sub)
    bench_cmd.add_parser(sub)
    return parser


def _setup_logging(verbose: int, debug: bool) -> None:
    level = logging.WARNING
    if verbose == 1:
        level = logging.INFO
    elif verbose >= 2 or debug:
        level = logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("charger_sim")
    root.handlers[:] = [handler]
    root.setLevel(level)
    # python-can's own notices (e.g. a driver's import-time warning) only with -v: errors stay one line
    logging.getLogger("can").setLevel(level if verbose or debug else logging.ERROR)


def main(argv: Sequence[str] | None = None, console: Console | None = None) -> int:
    """Run the CLI; returns the exit code (``console`` is injectable for tests)."""
    out = console or Console()
    err_console = console or Console(stderr=True)
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose, args.debug)
    try:
        set_dbc_dir(args.dbc_dir)
        code: int = args.handler(args, out)
        return code
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/yellow]")
        return int(ExitCode.INTERRUPTED)
    except ChargerSimError as err:
        if args.debug:
            err_console.print_exception()
        err_console.print(
            f"[bold red]error[/bold red] ({err.origin.value}): {err}", highlight=False, soft_wrap=True
        )
        return int(err.exit_code)
    except Exception as err:  # a bug: say so, one line unless --debug
        if args.debug:
            err_console.print_exception()
        else:
            err_console.print(
                f"[bold red]internal error[/bold red]: {type(err).__name__}: {err} "
                "(rerun with --debug for a traceback)",
                highlight=False,
                soft_wrap=True,
            )
        return int(ExitCode.INTERNAL)


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    entry()
