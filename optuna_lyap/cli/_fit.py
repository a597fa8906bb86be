"""``fit``: build a prior bundle (or, ``--format aelle``, one AeLLE) from earlier studies.

The fitting is library code (:func:`optuna_lyap._prediction.fit_prior`); this command reads
its options, opens the studies, and saves what it returns.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import optuna

from optuna_lyap.cli._base import CLIError, Command, add_storage, non_negative
from optuna_lyap.cli._storage_url import load_study, open_storage
from optuna_lyap.cli._study import check_spectrum_step


class FitCommand(Command):
    name = "fit"
    help = "build a prior from earlier studies and save it"
    description = (
        "Fit a prior bundle on the completed trials of one or more studies (any tasks; target: "
        "each trial's final quantile within its study), one model per step and input set the "
        "studies support, saved as one file for run/worker --prior. With --format aelle: an "
        "AeLLE on one study's spectra at one step, for the lyapunov pruner."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_storage(parser)
        parser.add_argument(
            "--study",
            "--study-name",
            dest="studies",
            action="append",
            required=True,
            metavar="NAME",
            help="a study to learn from; repeat for several",
        )
        parser.add_argument(
            "--step",
            type=non_negative,
            action="append",
            default=None,
            help="a model step (repeatable; default: 0 and every step with stored spectra; "
            "--format aelle: one step with spectra, default 1)",
        )
        parser.add_argument(
            "--format",
            choices=("prior", "aelle"),
            default="prior",
            help="prior: a prior bundle for the pruner and sampler (default); aelle: an AeLLE "
            "for the lyapunov pruner",
        )
        parser.add_argument(
            "--on-shipped",
            action="store_true",
            help="start from the shipped prior: keep its models for what the studies cannot "
            "train, and shrink the others' targets toward its predictions",
        )
        parser.add_argument(
            "--output",
            required=True,
            help="the file to save to (one file; give it to run/worker --prior)",
        )
        parser.add_argument("--seed", type=non_negative, default=0)

    def take_action(self, args: argparse.Namespace) -> int:
        output = Path(args.output)
        if output.is_dir():
            name = "aelle.pt" if args.format == "aelle" else "prior.pt"
            raise CLIError(
                f"--output {args.output!r} is a directory; give a file path, e.g. "
                f"{str(output / name)!r}"
            )
        storage = open_storage(args.storage, must_exist=True)
        studies = [load_study(storage, args.storage, name) for name in args.studies]
        if args.format == "aelle":
            return _fit_aelle(args, studies, output)
        from optuna_lyap._prediction import fit_prior
        from optuna_lyap.aelle._bundle import load_shipped_prior

        info = {
            "studies": [s.study_name for s in studies],
            # The storage URL is left out: it may hold a password.
            "command": "optuna-lyap fit "
            + " ".join(f"--study {name}" for name in args.studies)
            + "".join(f" --step {step}" for step in args.step or [])
            + (" --on-shipped" if args.on_shipped else "")
            + f" --seed {args.seed}",
            "on_shipped": bool(args.on_shipped),
            "seed": args.seed,
        }
        try:
            bundle = fit_prior(
                studies,
                steps=args.step,
                shipped=load_shipped_prior() if args.on_shipped else None,
                seed=args.seed,
                info=info,
                progress=lambda line: print(line, file=sys.stderr),
            )
        except ValueError as err:
            raise CLIError(str(err)) from err
        output.parent.mkdir(parents=True, exist_ok=True)
        bundle.save(output)
        fitted = len(bundle.info.get("rows", {}))
        kept = len(bundle.models) - fitted
        print(
            f"saved a prior bundle of {len(bundle.models)} models ({fitted} fitted on "
            f"{', '.join(repr(s.study_name) for s in studies)}"
            + (f", {kept} kept from the shipped prior" if kept else "")
            + f") to {output}"
        )
        return 0


def _fit_aelle(args: argparse.Namespace, studies: list[optuna.Study], output: Path) -> int:
    """``fit --format aelle``: one AeLLE on one study's spectra at one step."""
    from optuna_lyap._prediction import fit_aelle

    if len(studies) != 1:
        raise CLIError(f"--format aelle fits on one study, but {len(studies)} were given")
    steps = args.step or [1]
    if len(steps) != 1:
        raise CLIError(f"--format aelle fits at one --step, but got {steps}")
    study, step = studies[0], steps[0]
    check_spectrum_step(study, step)
    try:
        ae = fit_aelle(study, step, seed=args.seed)
    except ValueError as err:
        raise CLIError(str(err)) from err
    output.parent.mkdir(parents=True, exist_ok=True)
    ae.save(output)
    print(f"saved an AeLLE fitted on {study.study_name!r} at step {step} to {output}")
    return 0
