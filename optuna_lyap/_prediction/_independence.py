"""Whether a study's sampler draws configurations independently of earlier results.

Where it does, the completed trials a gate judges are a sample of the same distribution as
the later trials it decides on; where it does not (TPE, CMA-ES, ...), they are the survivors of
an adaptive search. The prior's gate is judged only where the user allows it for such samplers
(``LyapunovPruner(prior_decides=...)``).
"""

from __future__ import annotations

import numpy as np
import optuna

# Samplers that draw each configuration without reading earlier results: later trials then come
# from the same distribution as the completed trials the prior's gate was judged on.
_INDEPENDENT_SAMPLERS: tuple[type, ...] = (
    optuna.samplers.RandomSampler,
    optuna.samplers.QMCSampler,
    optuna.samplers.GridSampler,
    optuna.samplers.BruteForceSampler,
)


def draws_independently(sampler: optuna.samplers.BaseSampler) -> bool:
    """Whether ``sampler`` picks configurations without reading earlier trials' results.

    A sampler with a ``draws_independently()`` method answers for itself (the CLI's
    per-trial seeded sampler asks the sampler it wraps); an answer other than a bool counts
    as False. Otherwise True for Optuna's ``RandomSampler``, ``QMCSampler``, ``GridSampler``
    and ``BruteForceSampler`` (or a subclass), and for a ``PartialFixedSampler`` around one
    (its fixed values read no results). Any other sampler, TPE, CMA-ES, NSGA-II, GP and
    ``LyapunovSampler`` included, counts as adaptive.

    Args:
        sampler: The study's sampler (``study.sampler``).

    Returns:
        Whether the completed trials are a sample of the same distribution as later ones.
    """
    own = getattr(sampler, "draws_independently", None)
    if callable(own):
        answer = own()
        return isinstance(answer, (bool, np.bool_)) and bool(answer)
    if isinstance(sampler, optuna.samplers.PartialFixedSampler):
        return draws_independently(sampler._base_sampler)
    return isinstance(sampler, _INDEPENDENT_SAMPLERS)


def sampler_name(sampler: optuna.samplers.BaseSampler) -> str:
    """The class name of ``sampler`` for messages, with what a wrapper wraps:
    ``"PartialFixedSampler(TPESampler)"``; a sampler may name itself with a
    ``sampler_name()`` method (the CLI's per-trial seeded sampler names its base)."""
    own = getattr(sampler, "sampler_name", None)
    if callable(own):
        return str(own())
    if isinstance(sampler, optuna.samplers.PartialFixedSampler):
        return f"PartialFixedSampler({sampler_name(sampler._base_sampler)})"
    return type(sampler).__name__
