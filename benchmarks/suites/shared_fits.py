"""How often the workers of one study fit the pruner's model, and what that costs them.

Starts ``--workers`` processes on one PostgreSQL study, each running ``--trials`` trials with
:class:`~optuna_lyap.LyapunovPruner`. A trial reports, at steps 0, 1 and 2, a synthetic
spectrum whose level encodes its final value and a chance-level intermediate value, and sleeps
``--epoch-s`` seconds per step in place of training. Every worker counts the calls of the
pruner's ``fit_predictor`` (one call: cross-validation and fit of every candidate input set)
and the seconds spent in them, and names each call's training set by its content (trial
numbers, targets, spectra, unlabelled trials), so fits of the same training set in different
workers are counted as repeats.

``--code DIR`` runs the workers on another checkout of the package (e.g. an export of an
earlier commit) to compare; the script itself is not imported from there.

Usage::

    python -m benchmarks.suites.shared_fits --label after
    git archive main | tar -x -C /tmp/base && \
        python -m benchmarks.suites.shared_fits --code /tmp/base --label before

Prints a table and adds a row to ``benchmarks/results/shared_fits.json`` (and ``.md``).

``--sizes`` instead measures what one stored predictor writes to the study's system attrs
(characters of JSON, number of attrs) with the pruner's and the sampler's default AeLLE
parameters, fitted on 20 synthetic rows, and the header an artifact store leaves there;
it writes ``benchmarks/results/shared_fits_sizes.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _results() -> Path:
    """The stem of this suite's result files, by commit. Imported here, not at the module's
    top: the workers import nothing of the benchmarks, so they can run another checkout's
    package (``--code``)."""
    from benchmarks.lyapbench import runs as runfiles

    return runfiles.results_dir("shared_fits") / "shared_fits"


DEFAULT_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
AELLE = {"n_models": 1, "max_steps": 100, "hidden_dim": 16, "head_hidden_dim": 8}


def _training_set_id(rows: Any, unlabelled: Any) -> str:
    """A digest of what a fit reads: the same in every worker for the same training set."""
    h = hashlib.sha256()
    h.update(repr(list(rows.numbers)).encode())
    h.update(rows.targets.tobytes())
    for spectrum in rows.spectra or []:
        h.update(spectrum.tobytes())
    h.update(repr([] if unlabelled is None else list(unlabelled.numbers)).encode())
    return h.hexdigest()[:16]


def worker(url: str, study_name: str, n_trials: int, seed: int, epoch_s: float) -> None:
    import numpy as np
    import optuna
    import torch

    from optuna_lyap import InStudyModel, LyapunovPruner, report_spectrum
    from optuna_lyap._prediction import fit_predictor

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    fits: list[str] = []
    fit_s = 0.0

    def counting(rows: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal fit_s
        fits.append(_training_set_id(rows, kwargs.get("unlabelled")))
        start = time.perf_counter()
        try:
            return fit_predictor(rows, *args, **kwargs)
        finally:
            fit_s += time.perf_counter() - start

    def objective(trial: optuna.Trial) -> float:
        quality = trial.suggest_float("quality", 0.0, 1.0)
        rng = np.random.default_rng(trial.number)
        for step in range(3):
            time.sleep(epoch_s)
            if step < 2:
                level = 2.0 * quality - 1.0
                spectrum = np.sort(-np.linspace(0.0, 2.0, 16) + level + rng.normal(0, 0.02, 16))
                report_spectrum(trial, spectrum[::-1], step)
            trial.report(float(0.5 + rng.normal(0.0, 0.01)), step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"Trial was pruned at step {step}.")
        return quality

    # The counting fit sees every fit the pruner makes (the model's fit seam).
    pruner = LyapunovPruner(
        model=InStudyModel(aelle_params=AELLE, cv_folds=3, fit=counting, n_startup_trials=5)
    )
    study = optuna.load_study(
        study_name=study_name,
        storage=url,
        sampler=optuna.samplers.RandomSampler(seed=seed),
        pruner=pruner,
    )
    start = time.perf_counter()
    study.optimize(objective, n_trials=n_trials)
    wall_s = time.perf_counter() - start
    print(json.dumps({"seed": seed, "wall_s": wall_s, "fit_s": fit_s, "fits": fits}))


def run(args: argparse.Namespace) -> dict[str, Any]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    code = Path(args.code).resolve() if args.code else ROOT
    name = f"optuna_lyap_bench_shared_fits_{uuid.uuid4().hex}"
    storage = optuna.storages.RDBStorage(args.url)
    optuna.create_study(study_name=name, storage=storage, direction="maximize")
    # The package from ``code`` first, the benchmarks from this checkout; run from a neutral
    # folder, so the working directory puts neither first.
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(code), str(ROOT)]),
        "OMP_NUM_THREADS": "1",
    }
    command = [sys.executable, "-m", "benchmarks.suites.shared_fits", "--worker", args.url, name]
    try:
        processes = [
            subprocess.Popen(
                [*command, str(args.trials), str(seed), str(args.epoch_s)],
                env=env,
                cwd=tempfile.gettempdir(),
                stdout=subprocess.PIPE,
                text=True,
            )
            for seed in range(args.workers)
        ]
        outputs = [p.communicate()[0] for p in processes]
        if any(p.returncode for p in processes):
            raise SystemExit(f"a worker failed: {[p.returncode for p in processes]}")
        trials = optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
        states = [t.state.name for t in trials]
    finally:
        optuna.delete_study(study_name=name, storage=storage)
        storage.engine.dispose()
    reports = [json.loads(o.strip().splitlines()[-1]) for o in outputs]
    fits = [f for r in reports for f in r["fits"]]
    walls = [r["wall_s"] for r in reports]
    shares = [r["fit_s"] / r["wall_s"] for r in reports]
    return {
        "label": args.label,
        "workers": args.workers,
        "trials_per_worker": args.trials,
        "epoch_s": args.epoch_s,
        "completed": states.count("COMPLETE"),
        "pruned": states.count("PRUNED"),
        "fits": len(fits),
        "training_sets": len(set(fits)),
        "fit_s": round(sum(r["fit_s"] for r in reports), 2),
        "worker_wall_s_mean": round(sum(walls) / len(walls), 2),
        "worker_wall_s_max": round(max(walls), 2),
        "fit_share_of_wall": [round(s, 3) for s in shares],
        "python": sys.version.split()[0],
    }


def sizes() -> list[dict[str, Any]]:
    import numpy as np
    import optuna
    import torch
    from optuna.artifacts import FileSystemArtifactStore

    from benchmarks.lyapbench.methods import BENCHMARK_AELLE_PARAMS as _DEFAULT_AELLE_PARAMS
    from benchmarks.lyapbench.methods import SAMPLER_AELLE_PARAMS as DEFAULT_AELLE_PARAMS
    from benchmarks.lyapbench.methods import FitSettings, PredictorCache, Rows, fit_predictor

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rng = np.random.default_rng(0)
    n = 20
    quality = rng.uniform(size=n)
    spectra = [np.sort(-np.linspace(0, 2, 64) + 2 * q - 1)[::-1] for q in quality]
    curve = np.column_stack([quality + rng.normal(0, 0.1, n)] * 2)
    rows = Rows(list(range(n)), {"spectrum": spectra, "curve": curve}, curve[:, 0], quality)
    out = []
    candidates = {
        # The benchmarks' ensembles (lyapbench.methods.BENCHMARK_AELLE_PARAMS).
        "pruner": ((("spectrum",), ("curve",), ("spectrum", "curve")), _DEFAULT_AELLE_PARAMS),
        "sampler": ((("spectrum",),), DEFAULT_AELLE_PARAMS),
    }
    for consumer, (sets, params) in candidates.items():
        settings = FitSettings(sets, params, seed=0, cv_folds=3)
        fitted = fit_predictor(rows, settings=settings)
        for store in (None, "artifacts"):
            study = optuna.create_study()
            folder = _results().parent / "_artifacts_tmp"
            artifacts = FileSystemArtifactStore(str(folder)) if store else None
            if artifacts is not None:
                folder.mkdir(exist_ok=True)
            cache = PredictorCache(settings, consumer, artifact_store=artifacts)
            cache.get_or_fit(study, ((0,),), lambda fitted=fitted: fitted)
            attrs = study._storage.get_study_system_attrs(study._study_id)
            # Everything the store wrote, the artifact's metadata included (a fresh study).
            chars = [len(json.dumps(v)) for v in attrs.values()]
            out.append(
                {
                    "command": "python -m benchmarks.suites.shared_fits --sizes",
                    "consumer": consumer,
                    "aelle_params": dict(params),
                    "store": store or "study system attrs",
                    "attrs": len(attrs),
                    "attr_chars_total": sum(chars),
                    "attr_chars_max": max(chars),
                }
            )
            if artifacts is not None:
                for path in folder.iterdir():
                    out[-1]["artifact_bytes"] = path.stat().st_size
                    path.unlink()
                folder.rmdir()
    return out


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--sizes":
        rows = sizes()
        _results().parent.mkdir(parents=True, exist_ok=True)
        path = _results().parent / "shared_fits_sizes.json"
        path.write_text(json.dumps(rows, indent=1) + "\n")
        for row in rows:
            print(row)
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        url, name, n, seed, epoch_s = sys.argv[2:]
        worker(url, name, int(n), int(seed), float(epoch_s))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--trials", type=int, default=10, help="per worker")
    parser.add_argument("--epoch-s", type=float, default=0.5, help="sleep per step")
    parser.add_argument(
        "--url", default=os.environ.get("OPTUNA_LYAP_TEST_POSTGRES_URL", DEFAULT_URL)
    )
    parser.add_argument("--code", default=None, help="checkout whose optuna_lyap the workers run")
    parser.add_argument("--label", default="after")
    args = parser.parse_args()
    row = run(args)
    from benchmarks.lyapbench import runs as runfiles

    row["command"] = runfiles.command_line("benchmarks.suites.shared_fits")
    row["meta"] = runfiles.metadata(row["command"])
    path = _results().with_suffix(".json")
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = json.loads(path.read_text()) if path.exists() else []
    rows = [r for r in rows if r["label"] != row["label"]] + [row]
    path.write_text(json.dumps(rows, indent=1) + "\n")
    print(write_table(rows))


def write_table(rows: list[dict[str, Any]]) -> str:
    """Write ``shared_fits.md`` from the recorded rows; return the table."""
    header = (
        "| label | workers x trials | fits | training sets | fits / set | fit s (all workers) "
        "| worker wall s (mean, max) | fit share of worker wall |"
    )
    lines = [header, "|" + "---|" * 8]
    for r in rows:
        share = ", ".join(f"{s:.0%}" for s in r["fit_share_of_wall"])
        lines.append(
            f"| {r['label']} | {r['workers']} x {r['trials_per_worker']} | {r['fits']} | "
            f"{r['training_sets']} | {r['fits'] / max(r['training_sets'], 1):.2f} | "
            f"{r['fit_s']} | {r['worker_wall_s_mean']}, {r['worker_wall_s_max']} | {share} |"
        )
    table = "\n".join(lines)
    commands = "\n".join(f"- {r['label']}: `{r['command']}`" for r in rows)
    _results().with_suffix(".md").write_text(
        "# Pruner fits across workers (PostgreSQL)\n\n"
        f"{table}\n\nCommands (on 2 cores shared with other work: wall times vary between "
        "runs; so does the count before sharing, which depends on which workers meet which "
        f"training sets):\n\n{commands}\n"
    )
    return table


if __name__ == "__main__":
    main()
