"""What every command shares: the command base class, the error a user acts on, the options
several commands take, and the ``argparse`` value checks.

The registry of commands and the parser built from it are in :mod:`._main`; this module sits
below every command module, so that each can subclass :class:`Command` without an import cycle.
"""

from __future__ import annotations

import argparse
import sys
from typing import ClassVar

from optuna_lyap._checks import InvalidParameterError, check_int, check_real

DEFAULT_STORAGE = "sqlite:///optuna_lyap.db"

STOP_NOTE = (
    "SIGINT (Ctrl-C) or SIGTERM fails the running trial, queues its parameters again and "
    "exits with status 128 + the signal number; a RUNNING trial whose worker died is "
    "failed and queued again by the next worker."
)


class CLIError(Exception):
    """An error the user can act on: printed as one line, exit status 2."""


class Command:
    """One ``optuna-lyap`` subcommand: its options beside what it does.

    A subclass sets ``name`` and ``help`` (and ``description`` where the help line is not
    enough), adds its options in :meth:`add_arguments` and acts in :meth:`take_action`; one
    line in :data:`optuna_lyap.cli._main.COMMANDS` makes it a subcommand.
    """

    name: ClassVar[str]
    help: ClassVar[str]
    description: ClassVar[str | None] = None

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add this command's options to its subparser."""

    def take_action(self, args: argparse.Namespace) -> int:
        """Run the command on the parsed ``args``; return the exit status.

        Raises:
            CLIError: For a mistake the user can fix (printed as one line, exit status 2).
        """
        raise NotImplementedError


def warn(command: str, message: str) -> None:
    """One warning line on stderr, naming the command."""
    print(f"optuna-lyap {command}: warning: {message}", file=sys.stderr)


# --- Options several commands take ----------------------------------------------------------


def add_storage(parser: argparse.ArgumentParser, required: bool = False) -> None:
    parser.add_argument(
        "--storage",
        default=None if required else DEFAULT_STORAGE,
        required=required,
        help="storage URL (sqlite:///file.db, postgresql+psycopg2://..., redis://...) or a "
        "journal file path ending in .log"
        + ("" if required else f" (default: {DEFAULT_STORAGE})"),
    )


def add_threads(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads",
        type=positive,
        default=1,
        help="torch CPU threads per process (default 1: the built-in models are small, and "
        "extra threads slow them down; run more workers instead)",
    )


def add_progress(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def add_dashboard(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-dashboard",
        action="store_true",
        help="write no trial notes or study figures for optuna-dashboard",
    )
    parser.add_argument(
        "--artifact-dir",
        default=None,
        help="also store each trial's spectrum plot here, shown in its note (serve it with "
        "'optuna-lyap dashboard --artifact-dir' or 'optuna-dashboard --artifact-dir')",
    )


def add_prior(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--prior",
        default=None,
        metavar="PATH",
        help="a prior bundle saved by 'optuna-lyap fit' (on earlier studies): the lyapunov "
        "pruner and sampler predict with it from the first trial instead of the shipped "
        "prior (an AeLLE from 'fit --format aelle' goes to the lyapunov pruner only)",
    )


def add_study_name(parser: argparse.ArgumentParser) -> None:
    """``--study-name`` for a command that reads one study: optional where the storage holds
    exactly one (see :func:`optuna_lyap.cli._storage_url.choose_study`)."""
    parser.add_argument(
        "--study-name",
        default=None,
        help="the study to read (default: the storage's only study; with several, name one)",
    )


# --- argparse value checks --------------------------------------------------------------------
# A text that is no integer raises int()'s ValueError, which argparse reports as "invalid
# <function name> value"; a number out of range is checked by the package's checks and told
# in the command's own words. The function names are part of those messages.


def _int_in(text: str, low: int, high: int | None, valid: str) -> int:
    value = int(text)
    try:
        return check_int("value", value, low, high)
    except InvalidParameterError:
        raise argparse.ArgumentTypeError(f"must be {valid}, got {text}") from None


def positive(text: str) -> int:
    return _int_in(text, 1, None, "a positive integer")


def non_negative(text: str) -> int:
    return _int_in(text, 0, None, "a non-negative integer")


def port(text: str) -> int:
    return _int_in(text, 1, 65535, "a port number in 1..65535")


def unit_interval(text: str) -> float:
    try:
        return check_real("value", float(text), 0.0, 1.0)  # NaN fails too
    except (ValueError, InvalidParameterError):
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {text}") from None


# argparse names a type function in "invalid <name> value: 'x'": keep the names it always had.
positive.__name__ = "_positive"
non_negative.__name__ = "_non_negative"
port.__name__ = "_port"
unit_interval.__name__ = "_unit_interval"
