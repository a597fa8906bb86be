"""``embed``, ``explain`` and ``dashboard``: look at a study's trials.

``embed`` and ``explain`` read one study: ``--study-name`` may be left out where the storage
holds exactly one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from optuna.trial import TrialState

from optuna_lyap.cli._base import (
    CLIError,
    Command,
    add_storage,
    add_study_name,
    non_negative,
    port,
    warn,
)
from optuna_lyap.cli._storage_url import artifact_store, choose_study, open_storage
from optuna_lyap.cli._study import check_spectrum_step, stored_pruner
from optuna_lyap.visualization._embedding import AUTO_UMAP_POINTS

_HTML_SUFFIXES = (".html", ".htm")


def embedding_paths(output: str, png: bool) -> tuple[Path, Path | None]:
    """The page ``--output`` names and, with ``--png``, the image beside it (same name,
    ``.png``). A path that does not end in ``.html`` is read as a stem, as before: its suffix,
    if any, becomes ``.html``."""
    page = Path(output)
    if page.suffix.lower() not in _HTML_SUFFIXES:
        page = page.with_suffix(".html")
    return page, page.with_suffix(".png") if png else None


class EmbedCommand(Command):
    name = "embed"
    help = "write the latent embedding as one HTML page (and a PNG with --png)"
    description = (
        "Fit an AeLLE on every trial's spectrum at --step and write the 2-D map of its "
        "latent codes as one self-contained HTML page (plotly.js inside it, so it opens "
        f"offline). --method auto uses PCA below {AUTO_UMAP_POINTS} points and UMAP from "
        f"{AUTO_UMAP_POINTS}: UMAP costs about half a minute and most of a gigabyte on its "
        "first run in a process (numba compiles it) whatever the size, and on a few dozen "
        "points its neighbour graph shows little that PCA of the 4-number latent code does not."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_storage(parser)
        add_study_name(parser)
        parser.add_argument(
            "--step", type=non_negative, default=1, help="spectrum step (default 1)"
        )
        parser.add_argument(
            "--method",
            choices=("auto", "umap", "pca"),
            default="auto",
            help=f"auto (default): PCA below {AUTO_UMAP_POINTS} embedded trials, UMAP from "
            f"{AUTO_UMAP_POINTS}; umap or pca to choose",
        )
        parser.add_argument(
            "--output",
            default="embedding.html",
            help="the HTML page to write (default: embedding.html; a path not ending in .html "
            "gets .html as its suffix)",
        )
        parser.add_argument(
            "--png",
            action="store_true",
            help="also write the map as a PNG beside the page (same name, .png)",
        )
        parser.add_argument("--seed", type=non_negative, default=0)

    def take_action(self, args: argparse.Namespace) -> int:
        from optuna_lyap.visualization import embedding_data, plot_embedding, write_png

        page, png = embedding_paths(args.output, args.png)
        storage = open_storage(args.storage, must_exist=True)
        study = choose_study(storage, args.storage, args.study_name)
        check_spectrum_step(study, args.step)
        try:
            data = embedding_data(
                study,
                step=args.step,
                method=args.method,
                seed=args.seed,
                progress=lambda line: print(line, file=sys.stderr),
            )
        except ValueError as err:
            raise CLIError(str(err)) from err
        page.parent.mkdir(parents=True, exist_ok=True)
        # plotly.js inside the page: one file that opens offline, and nothing left beside it.
        plot_embedding(data, step=args.step).write_html(page, include_plotlyjs=True)
        wrote = str(page)
        if png is not None:
            write_png(data, png, step=args.step)
            wrote += f" and {png}"
        print(f"embedded {len(data.numbers)} trials ({data.method}); wrote {wrote}")
        return 0


class ExplainCommand(Command):
    name = "explain"
    help = "print why trials were pruned or kept (the dashboard's notes), as Markdown"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_storage(parser)
        add_study_name(parser)
        parser.add_argument(
            "trials",
            nargs="*",
            type=non_negative,
            metavar="TRIAL",
            help="trial numbers (default: every pruned trial)",
        )

    def take_action(self, args: argparse.Namespace) -> int:
        """Print :func:`optuna_lyap.explain_study`'s Markdown: the notes that hold for the whole
        study once, then each trial asked for (default: every pruned trial)."""
        from optuna_lyap.visualization import explain_study

        storage = open_storage(args.storage, must_exist=True)
        study = choose_study(storage, args.storage, args.study_name)
        by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
        if args.trials:
            missing = [n for n in args.trials if n not in by_number]
            if missing:
                last = max(by_number, default=None)
                held = "none" if last is None else f"0 to {last}"
                raise CLIError(
                    f"study {study.study_name!r} has no trial {', '.join(map(str, missing))} "
                    f"(its trial numbers: {held})"
                )
            chosen = [by_number[n] for n in args.trials]
        else:
            chosen = [t for t in by_number.values() if t.state == TrialState.PRUNED]
            if not chosen:
                warn(
                    "explain",
                    f"study {study.study_name!r} has no pruned trial; give trial numbers",
                )
        # The pruner that ran a study made by 'run' is in its settings; of another study, unknown.
        print(explain_study(study, chosen, stored_pruner(study)).rstrip())
        return 0


class DashboardCommand(Command):
    name = "dashboard"
    help = "serve optuna-dashboard on the storage"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_storage(parser)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=port, default=8080)
        parser.add_argument("--artifact-dir", default=None, help="serve the artifacts stored here")

    def take_action(self, args: argparse.Namespace) -> int:
        from wsgiref.simple_server import WSGIRequestHandler, make_server

        import optuna_dashboard

        storage = open_storage(args.storage, must_exist=True)

        class QuietHandler(WSGIRequestHandler):
            # One line per request is noise.
            def log_message(self, format: str, *args: Any) -> None:
                pass

        try:
            server = make_server(
                args.host,
                args.port,
                optuna_dashboard.wsgi(storage, artifact_store=artifact_store(args.artifact_dir)),
                handler_class=QuietHandler,
            )
        except OSError as err:
            raise CLIError(
                f"cannot listen on {args.host}:{args.port}: {err.strerror or err}; pick another "
                "--port"
            ) from err
        print(
            f"optuna-dashboard on http://{args.host}:{args.port} (Ctrl-C stops it)",
            file=sys.stderr,
        )
        with server:
            try:
                server.serve_forever()
            except KeyboardInterrupt:
                pass
        return 0
