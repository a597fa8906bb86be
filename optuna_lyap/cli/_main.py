"""The ``optuna-lyap`` command: the registry of subcommands, the parser built from it, and
``main``.

A new subcommand is one :class:`~optuna_lyap.cli._base.Command` subclass and one line in
:data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from contextlib import nullcontext

import optuna

from optuna_lyap import use_threads
from optuna_lyap.cli._base import CLIError, Command
from optuna_lyap.cli._fit import FitCommand
from optuna_lyap.cli._inspect import DashboardCommand, EmbedCommand, ExplainCommand
from optuna_lyap.cli._run import RunCommand, WorkerCommand

COMMANDS: tuple[type[Command], ...] = (
    RunCommand,
    WorkerCommand,
    FitCommand,
    EmbedCommand,
    ExplainCommand,
    DashboardCommand,
)
"""The subcommands, in the order ``optuna-lyap --help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command in :data:`COMMANDS`; ``args.command`` names the one given
    and ``args.action`` is its ``take_action``."""
    parser = argparse.ArgumentParser(
        prog="optuna-lyap",
        description="Hyperparameter search for recurrent networks that reads their dynamics.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command_class in COMMANDS:
        command = command_class()
        command_parser = sub.add_parser(
            command.name, help=command.help, description=command.description
        )
        command.add_arguments(command_parser)
        command_parser.set_defaults(action=command.take_action)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``optuna-lyap`` with ``argv`` (None: ``sys.argv[1:]``); return the exit status.

    A :class:`~optuna_lyap.cli._base.CLIError` is printed as one line and returns 2; Ctrl-C
    outside a trial returns 130.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
    try:
        # The library's own calls (spectra, AeLLE fits) follow --threads too.
        with use_threads(args.threads) if getattr(args, "threads", None) else nullcontext():
            return int(args.action(args))
    except CLIError as err:
        print(f"optuna-lyap {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
