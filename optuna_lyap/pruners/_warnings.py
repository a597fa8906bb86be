"""The pruner's once-only warnings about the prior's blend, and their category."""

from __future__ import annotations

import warnings

from optuna.trial import FrozenTrial

from optuna_lyap._prediction._prior import PARAM_ALIASES


class PriorBlendWarning(UserWarning):
    """``LyapunovPruner(prior_weight > 0)`` blends the prior into the rungs of a study whose
    sampler reads earlier results, where the replays found the blend pruning top
    configurations (``benchmarks/results/rung_decisions.md``). Filter it by this category.

    Example:
        >>> import warnings
        >>> from optuna_lyap import PriorBlendWarning
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore", PriorBlendWarning)
        ...     warnings.warn("the blend ranks a TPE study's rungs", PriorBlendWarning)
        >>> issubclass(PriorBlendWarning, UserWarning)
        True
    """


def warn_unblended(prior_weight: float, trial: FrozenTrial) -> None:
    """``prior_weight`` was asked for, but the prior reads nothing of ``trial``, so its rungs
    are ranked by the raw value alone (a ``RuntimeWarning``)."""
    looked_for = ", ".join(alias for aliases in PARAM_ALIASES.values() for alias in aliases)
    warnings.warn(
        f"LyapunovPruner(prior_weight={prior_weight}) cannot blend at trial "
        f"{trial.number}'s rung: its prior reads the hyperparameters from the parameter "
        f"names {looked_for} (or a reported spectrum), and found none among "
        f"{sorted(trial.params)}. Rename the parameters so or report spectra; until then "
        "such trials are ranked by their raw value alone, as by successive halving.",
        RuntimeWarning,
        stacklevel=3,
    )


def warn_adaptive_blend(prior_weight: float, sampler: str) -> None:
    """The blend ranks rungs of a study whose sampler (named ``sampler``) reads earlier
    results (a :class:`PriorBlendWarning`)."""
    warnings.warn(
        f"LyapunovPruner(prior_weight={prior_weight}) blends the prior into the rungs "
        f"of a study whose sampler, {sampler}, reads earlier results. "
        "In replays with TPE, where a blended rung and the raw value disagreed on a top-2% "
        "configuration, the blend pruned one the raw value kept in 206 (seed, "
        "configuration) pairs and kept one it pruned in 44 at weight 0.3 (269 and 127 at "
        "0.5); with RandomSampler, 11 and 62 (benchmarks/results/rung_decisions.md in "
        "the source). Use prior_weight=0 with an adaptive sampler, or a sampler that "
        "draws independently (RandomSampler, QMCSampler).",
        PriorBlendWarning,
        stacklevel=3,
    )
