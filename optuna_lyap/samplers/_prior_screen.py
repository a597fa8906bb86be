"""The sampler's screening by the trial prior: keep the candidate whose predicted final quantile
within the study is highest.

Notation: ``m`` candidates per new trial; a quantile in ``(0, 1)``, 1 is best.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from optuna_lyap._prediction._prior import PriorPrediction, network_from_params
from optuna_lyap._prediction._study_prior import StudyPrior
from optuna_lyap._storage import USER_ATTR_SCREEN_QUANTILE, USER_ATTR_SCREEN_RANK_CORR
from optuna_lyap.samplers._candidates import (
    Screening,
    draw_candidates,
    record_screen,
    warn_unreadable,
)

#: ``measure(screening, candidates, first_index, warn_non_finite)``: the indices of the
#: candidates with a finite spectrum at initialisation, their spectra and state dimensions
#: (the sampler's ``_spectra``).
Measure = Callable[..., tuple[list[int], list[np.ndarray], list[int]]]


class PriorScreen:
    """The prior's screening, and the parameter-name sets it could not read (for them the base
    sampler decides; one ``RuntimeWarning`` per sampler names them).

    Thread-safe; pickling drops the sets read so far and keeps whether it warned.

    Args:
        n_candidates: Candidates ``m`` drawn per trial.
    """

    def __init__(self, n_candidates: int) -> None:
        self._n_candidates = n_candidates
        self._warned = False
        self._init_local()

    def _init_local(self) -> None:
        self._lock = threading.Lock()
        self._unreadable: set[frozenset[str]] = set()

    def __getstate__(self) -> dict[str, Any]:
        return {"_n_candidates": self._n_candidates, "_warned": self._warned}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_local()

    def reads(self, names: frozenset[str]) -> bool:
        """Whether the prior was not found unable to read the parameters ``names``."""
        with self._lock:
            return names not in self._unreadable

    def choose(
        self,
        screening: Screening,
        study_prior: StudyPrior,
        *,
        rank_corr: float,
        names: frozenset[str],
        measure: Measure | None,
    ) -> dict[str, Any]:
        """Keep the candidate with the highest predicted final quantile (ties: the earliest
        proposal), and write the screening's user attrs.

        The first proposal is predicted before the others are drawn: where the prior cannot
        predict it, it is the base sampler's choice, drawn exactly as without screening.

        Args:
            screening: The trial's screening.
            study_prior: The prior within the study.
            rank_corr: The prior's measured rank correlation (NaN where not yet measured).
            names: The parameter names screened.
            measure: With a model factory, measures the candidates' spectra; None: the prior
                predicts from the parameters alone.
        """
        study, view, trial = screening.study, screening.view, screening.trial
        candidates, held = draw_candidates(screening, 1)
        preds = self._predict(study_prior, screening, candidates, 0, measure)
        if preds[0] is None:
            full = {**screening.given, **dict(trial.params), **candidates[0]}
            if network_from_params(full) is None:
                self._unreadable_names(names, with_factory=measure is not None)
            view.replay(held[0])
            return candidates[0]
        if self._n_candidates > 1:
            more, more_held = draw_candidates(screening, self._n_candidates - 1)
            candidates += more
            held += more_held
            preds += self._predict(study_prior, screening, more, 1, measure)
        quantiles = np.array(
            [np.nan if p is None else float(p.quantile) for p in preds], dtype=np.float64
        )
        finite = np.isfinite(quantiles)
        if not finite.any():
            view.replay(held[0])
            return candidates[0]
        best = int(np.argmax(np.where(finite, quantiles, -np.inf)))
        view.replay(held[best])
        record_screen(
            study,
            trial,
            "prior",
            {
                USER_ATTR_SCREEN_QUANTILE: float(quantiles[best]),
                USER_ATTR_SCREEN_RANK_CORR: rank_corr,
            },
        )
        return candidates[best]

    @staticmethod
    def _predict(
        study_prior: StudyPrior,
        screening: Screening,
        candidates: list[dict[str, Any]],
        first_index: int,
        measure: Measure | None,
    ) -> list[PriorPrediction | None]:
        """The prior's predictions of ``candidates`` (numbered from ``first_index``): with
        ``measure``, a candidate whose spectrum at initialisation is finite is predicted from
        its hyperparameters and spectrum, any other from its hyperparameters."""
        given, trial = screening.given, screening.trial
        full = [{**given, **dict(trial.params), **c} for c in candidates]
        if measure is None:
            return study_prior.predict_candidates(full)
        scored, measured, found = measure(
            screening, candidates, first_index, warn_non_finite=False
        )
        spectra: list[np.ndarray | None] = [None] * len(candidates)
        dims: list[int | None] = [None] * len(candidates)
        for i, spectrum, dim in zip(scored, measured, found, strict=True):
            spectra[i], dims[i] = spectrum, dim
        return study_prior.predict_candidates(full, spectra, dims)

    def _unreadable_names(self, names: frozenset[str], *, with_factory: bool) -> None:
        """Remember that the prior cannot read ``names``; warn once per sampler."""
        with self._lock:
            self._unreadable.add(names)
            if self._warned:
                return
            self._warned = True
        warn_unreadable(names, with_factory=with_factory)
