"""The judge: which signal, if any, ranks this study's trials by their final values.

Every place that acts on a score asks this one function: the pruner's rungs (the raw value at
the rung's step, the prior's prediction, the in-study model's, a blend) and the sampler's
screening (the prior's prediction). Pure NumPy, no Optuna, so it is table-tested in
milliseconds.

Notation:
    ``n``: trials with a final value; ``m``: distinct configurations among them; ``B``:
    bootstrap resamples; a *signal* is ``n`` scores, higher meaning better; ``x`` the signal
    that selected which trials completed (usually the raw value at the judged step), ``z`` the
    final value; ``rho`` a correlation of normal scores.

The evidence, and what is done about its three traps:

1. *Repeated configurations.* A sampler that proposes one configuration ten times gives one
   piece of evidence, not ten: every signal and the final value are averaged within each
   configuration (``groups``) on the rank scale before anything is computed, so ``m``, not
   ``n``, is the sample size.
2. *Survivors.* Trials that completed passed every earlier rung, where they were kept for a
   high ``x``: the spread of ``x`` among them is narrower than among all trials that reached
   the rung, which lowers ``x``'s own correlation with the final value (damning it) and, less,
   that of every signal correlated with ``x`` (flattering whichever is not). Given ``x``'s
   scores over every trial that reached the rung (``selection``), each resample's
   correlations are corrected for that direct selection on ``x`` with the Pearson-Lawley
   formulas, on normal scores (Lawley 1943, Biometrika 33:30; Thorndike's case II/III as
   reviewed by Sackett & Yang 2000, J. Appl. Psychol. 85:112). Selection at later rungs, on
   later values of the same curve, is treated as incidental to ``x``.
3. *Noise.* A point correlation on five configurations is noise. The judge resamples the
   configurations (a paired bootstrap: every signal sees the same draws, Efron & Tibshirani
   1993, ch. 6) and counts in how many resamples a signal ranks: the baseline when its
   correlation is above 0, a challenger when above both 0 and the baseline's. A signal is
   chosen only where that share reaches ``level``.

Ranks become normal scores with Blom's formula, ``Phi^-1((r - 3/8) / (m + 1/4))`` (Blom 1958,
"Statistical Estimates and Transformed Beta-Variables"), so that the normal-theory correction
applies; without selection, their Pearson correlation is close to Spearman's.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.special import ndtri

from optuna_lyap._prediction._gate import _ordinal, _rows_of_ranks, group_means
from optuna_lyap._prediction._gate import row_spearman as _row_pearson  # Pearson of any rows

# The judge's reasons, as stored in decision records and read by the explanations.
TOO_FEW = "too_few"
BASELINE = "baseline"
CHALLENGER = "challenger"
NONE_RANKS = "none_ranks"
REASONS = (TOO_FEW, BASELINE, CHALLENGER, NONE_RANKS)

# The correction's ratio of spreads is capped: evidence whose selecting signal barely varies
# carries no information on how it would rank the rest, and an uncapped ratio would invent it.
_MAX_SPREAD_RATIO = 8.0
# A challenger must exceed the baseline's correlation by this much in a resample, so that a
# copy of the baseline never wins.
_WIN_MARGIN = 1e-9


@dataclass(frozen=True)
class Evidence:
    """What the judge measured for one signal.

    Attributes:
        signal: The signal's name.
        rho: Its correlation with the final values over the distinct configurations (normal
            scores, corrected for selection where given); NaN where undefined.
        share: Share of resamples in which it ranked (see the module docstring).
        n_configurations: Distinct configurations it had a score for.
    """

    signal: str
    rho: float
    share: float
    n_configurations: int


@dataclass(frozen=True)
class Verdict:
    """The judge's answer.

    Attributes:
        choice: The signal to act on, or None where no signal was shown to rank (``reason``
            ``"none_ranks"``) or the evidence was too thin and no ``default`` was given.
        reason: One of ``REASONS``: ``"too_few"`` (fewer than ``min_configurations``
            distinct configurations; ``choice`` is the caller's ``default``), ``"baseline"``
            (the baseline ranks and no challenger beats it), ``"challenger"`` (a challenger
            out-ranks the baseline), ``"none_ranks"``.
        evidence: One entry per signal, in the order given.
        n_trials: Trials with a final value.
        n_configurations: Distinct configurations among them.
        level: The share a signal needed.
        corrected_for: The selecting signal the correlations were corrected for, or None.
    """

    choice: str | None
    reason: str
    evidence: tuple[Evidence, ...]
    n_trials: int
    n_configurations: int
    level: float
    corrected_for: str | None = None
    min_configurations: int = field(default=5, repr=False)

    def of(self, signal: str) -> Evidence:
        """The evidence of one signal.

        Raises:
            KeyError: No signal of that name was judged.
        """
        for item in self.evidence:
            if item.signal == signal:
                return item
        raise KeyError(
            f"no signal {signal!r} was judged; judged: {[e.signal for e in self.evidence]}."
        )

    def describe(self, names: Mapping[str, str] | None = None) -> str:
        """One plain sentence: what was chosen and on what evidence.

        Args:
            names: Display names of the signals (e.g. ``{"raw": "the raw value"}``).
        """
        names = dict(names or {})

        def name(signal: str) -> str:
            return names.get(signal, signal)

        numbers = ", ".join(
            f"{name(e.signal)} {e.rho:+.2f}" if math.isfinite(e.rho) else f"{name(e.signal)} n/a"
            for e in self.evidence
        )
        basis = f"{self.n_configurations} distinct configurations"
        if self.corrected_for is not None:
            basis += f", corrected for selection by {name(self.corrected_for)}"
        if self.reason == TOO_FEW:
            head = (
                f"too few distinct configurations to judge ({self.n_configurations} of "
                f"{self.min_configurations})"
            )
            if self.choice is not None:
                head += f"; {name(self.choice)} is used until then"
            return head + "."
        if self.reason == NONE_RANKS:
            return f"no signal was shown to rank this study's trials ({numbers}; {basis})."
        chosen = self.of(str(self.choice))
        return (
            f"{name(chosen.signal)} ranks this study's trials, in {chosen.share:.0%} of the "
            f"resamples ({numbers}; {basis})."
        )


def normal_scores(ranks: np.ndarray, n: int) -> np.ndarray:
    """Blom's normal scores of 1-based ranks among ``n``: ``Phi^-1((r - 3/8) / (n + 1/4))``."""
    return ndtri((np.asarray(ranks, dtype=np.float64) - 0.375) / (n + 0.25))


def corrected_correlation(
    r_yz: np.ndarray, r_xy: np.ndarray, r_xz: np.ndarray, ratio: np.ndarray
) -> np.ndarray:
    """Pearson-Lawley correction of ``corr(y, z)`` for direct selection on ``x``.

    ``ratio`` is ``u = S / s``, the spread of ``x`` before selection over its spread after;
    ``r_*`` are the correlations after selection. With ``y = x`` (``r_xy = 1``) this is
    Thorndike's case II, ``r u / sqrt(1 + r^2 (u^2 - 1))``; ``u = 1`` returns ``r_yz``.

    Args:
        r_yz, r_xy, r_xz: Correlations in the selected sample (arrays of one shape).
        ratio: ``u >= 1``, same shape.

    Returns:
        The corrected correlations, in ``[-1, 1]``.
    """
    k = ratio * ratio - 1.0
    num = r_yz + r_xy * r_xz * k
    den = np.sqrt((1.0 + r_xy * r_xy * k) * (1.0 + r_xz * r_xz * k))
    return np.clip(num / den, -1.0, 1.0)


def judge(
    final: Sequence[float] | np.ndarray,
    signals: Mapping[str, Sequence[float] | np.ndarray],
    *,
    groups: Sequence[Hashable] | None = None,
    baseline: str | None = None,
    selection: tuple[str, Sequence[float] | np.ndarray] | None = None,
    level: float = 0.9,
    min_configurations: int = 5,
    default: str | None = None,
    n_resamples: int = 500,
    seed: int = 0,
) -> Verdict:
    """Decide which of ``signals`` ranks the trials' final values, with a margin.

    Args:
        final: ``n`` final values as scores (higher is better; an infinite value ranks at its
            end, a NaN lowest).
        signals: Name -> ``n`` scores (higher is better) of the same trials. A NaN is "no
            score": a configuration without one is left out of that signal's evidence (and of
            its comparison with the baseline).
        groups: ``n`` configuration keys (equal for trials of one configuration); None: each
            trial is its own configuration.
        baseline: The signal the others must beat (the raw value at a rung), or None: every
            signal only has to rank above 0.
        selection: ``(name, scores)``: the signal that decided which trials completed (one of
            ``signals``) and its scores over every trial it selected from (completed or not).
            None: no correction.
        level: Share of resamples a signal needs, in ``(0.5, 1]``.
        min_configurations: Fewer distinct configurations than this: no judgement
            (``reason="too_few"``, ``choice=default``). At least 3.
        default: The choice while the evidence is too thin (e.g. the baseline for a pruner,
            the prior for a sampler that trusts it from the first trial).
        n_resamples: ``B``, at least 1.
        seed: Seed of the resampling, so every worker reaches the same verdict.

    Returns:
        The verdict.

    Raises:
        ValueError: Arrays of different lengths, an unknown ``baseline``, ``selection`` or
            ``default`` name, ``level`` outside ``(0.5, 1]``, ``min_configurations < 3`` or
            ``n_resamples < 1``.

    Example:
        >>> import numpy as np
        >>> final = np.arange(8.0)
        >>> verdict = judge(final, {"raw": np.zeros(8), "prior": final + 0.5}, baseline="raw")
        >>> verdict.choice, verdict.reason
        ('prior', 'challenger')
    """
    z = np.asarray(final, dtype=np.float64)
    named = {key: np.asarray(value, dtype=np.float64) for key, value in signals.items()}
    _check(z, named, groups, baseline, selection, default, level, min_configurations, n_resamples)
    keys: list[Hashable] = list(groups) if groups is not None else list(range(z.size))
    z_grouped, *grouped = group_means(
        keys, _ordinal(z), *(_ordinal_keep_nan(v) for v in named.values())
    )
    by_signal = dict(zip(named, grouped, strict=True))
    m = int(z_grouped.size)
    if m < min_configurations:
        evidence = tuple(Evidence(s, math.nan, 0.0, _count(by_signal[s])) for s in named)
        return Verdict(default, TOO_FEW, evidence, int(z.size), m, level, None, min_configurations)

    index = np.random.default_rng(seed).integers(0, m, size=(n_resamples, m))
    whole = np.arange(m)[None, :]
    x_name = None if selection is None else selection[0]

    def correlations(rows: np.ndarray) -> dict[str, np.ndarray]:
        rhos = {s: _resampled_rho(by_signal[s], z_grouped, rows) for s in named}
        if selection is None:
            return rhos
        x_scores, ratio = _selection_scores(named[selection[0]], keys, selection[1], rows)
        return _corrected(rhos, by_signal, z_grouped, selection[0], x_scores, rows, ratio)

    rhos = correlations(index)
    point = {s: float(v[0]) for s, v in correlations(whole).items()}
    shares = _shares(rhos, baseline)
    evidence = tuple(
        Evidence(s, float(point[s]), float(shares[s]), _count(by_signal[s])) for s in named
    )
    challengers = [s for s in named if s != baseline and shares[s] >= level]
    if challengers:
        best = max(challengers, key=lambda s: shares[s])
        reason = CHALLENGER if baseline is not None else BASELINE
        return Verdict(best, reason, evidence, int(z.size), m, level, x_name, min_configurations)
    if baseline is not None and shares[baseline] >= level:
        return Verdict(
            baseline, BASELINE, evidence, int(z.size), m, level, x_name, min_configurations
        )
    return Verdict(None, NONE_RANKS, evidence, int(z.size), m, level, x_name, min_configurations)


def _check(
    z: np.ndarray,
    named: dict[str, np.ndarray],
    groups: Sequence[Hashable] | None,
    baseline: str | None,
    selection: tuple[str, Sequence[float] | np.ndarray] | None,
    default: str | None,
    level: float,
    min_configurations: int,
    n_resamples: int,
) -> None:
    if z.ndim != 1:
        raise ValueError(f"`final` must be 1-D, but got shape {z.shape}.")
    for name, value in named.items():
        if value.shape != z.shape:
            raise ValueError(
                f"signal {name!r} must have one score per trial ({z.size}), but got shape "
                f"{value.shape}."
            )
    if groups is not None and len(groups) != z.size:
        raise ValueError(
            f"`groups` must have one key per trial ({z.size}), but got {len(groups)}."
        )
    chosen = {"baseline": baseline, "default": default}
    chosen["selection"] = None if selection is None else selection[0]
    for label, choice in chosen.items():
        if choice is not None and choice not in named:
            raise ValueError(f"`{label}` must name one of {list(named)}, but got {choice!r}.")
    if not 0.5 < level <= 1.0:
        raise ValueError(f"`level` must be in (0.5, 1], but got {level=}.")
    if min_configurations < 3:
        raise ValueError(
            f"`min_configurations` must be at least 3, but got {min_configurations=}."
        )
    if n_resamples < 1:
        raise ValueError(f"`n_resamples` must be at least 1, but got {n_resamples=}.")


def _ordinal_keep_nan(a: np.ndarray) -> np.ndarray:
    """Infinities just past the finite extremes (as ``_ordinal``), NaN kept as "no score"."""
    out = _ordinal(a)
    return np.where(np.isnan(a), np.nan, out)


def _count(values: np.ndarray) -> int:
    return int(np.isfinite(values).sum())


def _resampled_rho(signal: np.ndarray, final: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``B`` correlations of normal scores between ``signal`` and ``final`` in the resamples.

    A configuration without a score (NaN) is dropped from a resample; a resample left with
    fewer than 3, or with a constant side, gives NaN.
    """
    ok = np.isfinite(signal)
    if ok.all():
        return _rho_rows(signal, final, index)
    kept = np.flatnonzero(ok)
    if kept.size < 3:
        return np.full(index.shape[0], np.nan)
    # Map the resample's draws onto the scored configurations; unscored draws are dropped by
    # drawing them again among the scored ones with the same generator stream position.
    remap = np.full(signal.size, -1)
    remap[kept] = np.arange(kept.size)
    rows = [remap[row][remap[row] >= 0] for row in index]
    out = np.full(index.shape[0], np.nan)
    for b, row in enumerate(rows):
        if row.size >= 3:
            out[b] = _rho_rows(signal[kept], final[kept], row[None, :])[0]
    return out


def _rho_rows(signal: np.ndarray, final: np.ndarray, index: np.ndarray) -> np.ndarray:
    n = index.shape[1]
    a = normal_scores(_rows_of_ranks(signal, index), n)
    b = normal_scores(_rows_of_ranks(final, index), n)
    return _row_pearson(a, b)


def _selection_scores(
    x: np.ndarray,
    keys: list[Hashable],
    population: Sequence[float] | np.ndarray,
    index: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The selecting signal's normal scores on the population's scale, per configuration, and
    each resample's ratio of its population spread to its spread in the resample."""
    pool = np.asarray(population, dtype=np.float64)
    pool = pool[np.isfinite(pool)]
    if pool.size < 2:
        raise ValueError("`selection` needs the scores of at least 2 trials it selected from.")
    # Each evidence trial's rank among the population (its own score included there).
    ranks = np.searchsorted(np.sort(pool), np.where(np.isfinite(x), x, -np.inf), side="right")
    scores = normal_scores(np.clip(ranks, 1, pool.size), pool.size)
    per_config = group_means(keys, scores)[0]
    spread_pool = float(np.std(normal_scores(np.arange(1, pool.size + 1), pool.size)))
    spread = per_config[index].std(axis=1)
    ratio = np.where(spread > 1e-12, spread_pool / np.maximum(spread, 1e-12), _MAX_SPREAD_RATIO)
    return per_config, np.clip(ratio, 1.0, _MAX_SPREAD_RATIO)


def _corrected(
    rhos: dict[str, np.ndarray],
    by_signal: dict[str, np.ndarray],
    final: np.ndarray,
    x_name: str,
    x_scores: np.ndarray,
    index: np.ndarray,
    ratio: np.ndarray,
) -> dict[str, np.ndarray]:
    """Every signal's resampled correlation corrected for direct selection on ``x_name``."""
    n = index.shape[1]
    x_rows = x_scores[index]
    z_rows = normal_scores(_rows_of_ranks(final, index), n)
    r_xz = _row_pearson(x_rows, z_rows)
    out = {}
    for name, rho in rhos.items():
        if name == x_name:
            r_xy = np.ones_like(rho)
        else:
            signal = by_signal[name]
            if np.isfinite(signal).all():
                y_rows = normal_scores(_rows_of_ranks(signal, index), n)
                r_xy = _row_pearson(x_rows, y_rows)
            else:  # without a score everywhere, correct as if uncorrelated with x
                r_xy = np.zeros_like(rho)
        out[name] = np.where(
            np.isfinite(rho) & np.isfinite(r_xz),
            corrected_correlation(rho, np.nan_to_num(r_xy), np.nan_to_num(r_xz), ratio),
            rho,
        )
    return out


def _shares(rhos: dict[str, np.ndarray], baseline: str | None) -> dict[str, float]:
    """Each signal's share of resamples in which it ranked (see the module docstring)."""
    base = np.zeros(next(iter(rhos.values())).shape)
    if baseline is not None:
        base = np.nan_to_num(rhos[baseline], nan=0.0)
    out = {}
    for name, rho in rhos.items():
        if name == baseline:
            wins = np.isfinite(rho) & (rho > _WIN_MARGIN)
        else:
            wins = np.isfinite(rho) & (rho > np.maximum(base, 0.0) + _WIN_MARGIN)
        out[name] = float(wins.mean())
    return out
