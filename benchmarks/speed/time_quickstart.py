"""Time an example script and the package's calls inside it (spectra, AeLLE fits/predictions).

Usage::

    python -m benchmarks.speed.time_quickstart examples/quickstart.py

To compare with an older version, export it (``git archive <commit> | tar -x -C /tmp/old``) and
run its own copy of this script from its root, with its own example, back to back.
"""

from __future__ import annotations

import argparse
import collections
import runpy
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

from benchmarks.lyapbench.methods import aelle_estimator as estimator
from benchmarks.lyapbench.methods import monitor_module as monitor

spent: collections.Counter[str] = collections.Counter()


def _timed(owner: Any, name: str, label: str) -> None:
    original: Callable[..., Any] = getattr(owner, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[label] += time.perf_counter() - start

    setattr(owner, name, timed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("script", help="the example to run, e.g. examples/quickstart.py")
    args = parser.parse_args()
    _timed(monitor, "lyapunov_spectrum", "spectrum")
    _timed(estimator.AeLLE, "fit", "aelle_fit")
    _timed(estimator.AeLLE, "predict", "aelle_predict")
    print("torch threads at start", torch.get_num_threads(), flush=True)
    start = time.perf_counter()
    sys.argv = [args.script]  # the example sees its own command line
    runpy.run_path(args.script, run_name="__main__")
    total = time.perf_counter() - start
    parts = ", ".join(f"{k} {v:.1f} s" for k, v in spent.items())
    print(f"total {total:.1f} s; {parts}", flush=True)


if __name__ == "__main__":
    main()
