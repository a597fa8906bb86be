"""``AeLLE``: the scikit-learn-style estimator around the spectrum autoencoder ensemble."""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from typing import IO, Any, Literal, overload

import numpy as np
import torch

from optuna_lyap._checks import check_choice, check_int, check_keywords
from optuna_lyap._random import caller_rng_kept
from optuna_lyap._threads import limited_threads
from optuna_lyap.aelle._embedding import embed_2d
from optuna_lyap.aelle._network import (
    AeLLENetwork,
    TrainingSettings,
    holdout_masks,
    train_ensemble,
)
from optuna_lyap.aelle._params import check_estimator_params
from optuna_lyap.aelle._persist import load_model, save_model
from optuna_lyap.aelle._preprocessing import (
    as_spectrum_list,
    feature_array,
    grid_points,
    preprocess_spectra,
    target_array,
)
from optuna_lyap.aelle._scaling import (
    DTYPE,
    robust_scale,
    spectrum_scale,
    squash,
    standardise,
    unsquash,
)


def _fresh_seed() -> int:
    entropy = np.random.SeedSequence().entropy
    assert isinstance(entropy, int)
    return entropy


def _threads(n_threads: int | None) -> contextlib.AbstractContextManager[None]:
    """The package's thread setting, or ``n_threads`` when given (see ``optuna_lyap._threads``)."""
    return limited_threads() if n_threads is None else limited_threads(n_threads)


class AeLLE:
    """Autoencoder-based Latent Lyapunov Embedding: predict a trial's final value from spectra.

    An ensemble of ``n_models`` small autoencoders reads Lyapunov spectra resampled on a common
    grid of normalised index ``i / D`` (so networks of different sizes ``D`` compare), with
    ``log D`` and the fractions of non-finite / clipped exponents as side inputs. A head reads
    each member's latent code beside optional extra ``features`` (the learning curve so far,
    hyperparameters) and predicts the standardised target. The loss is the L1 reconstruction
    error over *every* spectrum plus ``alpha`` times the squared prediction error over the
    labelled ones, ``alpha`` raised in steps; samples whose target is NaN train the
    reconstruction only. The ensemble mean is the prediction and its spread the ``std``.
    Inputs and targets are centred on their median, scaled by a robust spread and squashed
    smoothly into ``(-4, 4)``; non-finite features become the column median.

    Parameters are stored as given and validated in :meth:`fit`.

    Args:
        latent_dim: Size of the latent code.
        n_models: Ensemble members (their spread is the ``std`` of :meth:`predict`).
        seed: Seed of every random choice in :meth:`fit`; None draws one (kept in ``seed_``)
            from the operating system's entropy. Every draw comes from generators of the
            estimator's own: :meth:`fit`, :meth:`predict`, :meth:`transform`,
            :meth:`reconstruct` and :meth:`embed` leave torch's and numpy's global generators
            as they were.
        grid_size: Points of the normalised-index grid each spectrum is resampled on.
        hidden_dim: Width of the encoder's and decoder's hidden layer.
        head_hidden_dim: Width of the head's tanh hidden layer; 0 makes the head affine.
        dropout: Dropout rate on the encoder's and head's hidden layers during training.
        alpha_schedule: Weights of the prediction loss, used in equal phases of ``max_steps``
            (a 0 phase trains the autoencoder alone).
        lr: AdamW learning rate.
        weight_decay: AdamW (decoupled) weight decay.
        max_steps: Optimiser steps; each uses the whole data set, or ``batch_size`` samples of it.
        batch_size: Largest number of samples per step.
        validation_fraction: Share of the labelled samples each member holds out to choose its
            best step (early stopping); members hold out different samples.
        min_labels_for_validation: Below this many labelled samples nothing is held out and the
            last step is kept.
        clip: ``(low, high)`` bounds on exponents, nats per step. NaN and ``+inf`` (diverged)
            become ``high``, ``-inf`` (a direction killed exactly) becomes ``low``.
        n_threads: Torch intra-op threads while fitting and predicting (the caller's setting is
            restored afterwards). None follows the package's thread policy: one thread, unless
            :func:`optuna_lyap.use_threads` or the environment variable
            ``OPTUNA_LYAP_NUM_THREADS`` says otherwise (``OPTUNA_LYAP_NUM_THREADS=torch``
            leaves torch's setting alone). The network is so small that more threads only add
            synchronisation: with two busy cores, two threads made ``fit`` ten times slower.

    Attributes:
        seed_: The seed :meth:`fit` used.
        uses_spectra_: Whether the model reads spectra (False when fitted with ``spectra=None``).
        n_features_in_: Number of extra features ``F`` (0 without).
        n_labelled_: Number of finite targets seen by :meth:`fit`.
        grid_: The ``G`` normalised indices of the grid points.
        target_centre_: Median of the finite targets, in target units.
        target_scale_: Their robust spread (interquartile range / 1.349, or the standard
            deviation where more than half are equal): the network learns
            ``4 tanh((y - target_centre_) / target_scale_ / 4)``, so outliers cannot set the
            scale for everything else.
        best_steps_: The step each member's kept weights come from, a list of ``n_models`` ints.
        oof_prediction_: ``n`` predictions for the :meth:`fit` samples from the members that held
            them out (NaN for unlabelled samples and those no member held out): an honest check
            of the fit.
        fit_time_: Seconds :meth:`fit` took.

    Example:
        >>> import numpy as np
        >>> from optuna_lyap import AeLLE
        >>> rng = np.random.default_rng(0)
        >>> spectra = [np.sort(rng.normal(-1.0, 0.5, d))[::-1] for d in rng.integers(8, 64, 40)]
        >>> targets = np.array([s[0] for s in spectra])  # here: the largest exponent
        >>> model = AeLLE(n_models=2, max_steps=20, seed=0).fit(spectra, targets)
        >>> mean, std = model.predict(spectra[:5], return_std=True)
        >>> mean.shape, bool((std >= 0).all())
        ((5,), True)
    """

    def __init__(
        self,
        *,
        latent_dim: int = 4,
        n_models: int = 5,
        seed: int | None = None,
        grid_size: int = 32,
        hidden_dim: int = 64,
        head_hidden_dim: int = 32,
        dropout: float = 0.2,
        alpha_schedule: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0),
        lr: float = 3e-3,
        weight_decay: float = 1e-2,
        max_steps: int = 250,
        batch_size: int = 256,
        validation_fraction: float = 0.2,
        min_labels_for_validation: int = 50,
        clip: tuple[float, float] = (-10.0, 10.0),
        n_threads: int | None = None,
    ) -> None:
        self.latent_dim = latent_dim
        self.n_models = n_models
        self.seed = seed
        self.grid_size = grid_size
        self.hidden_dim = hidden_dim
        self.head_hidden_dim = head_hidden_dim
        self.dropout = dropout
        self.alpha_schedule = alpha_schedule
        self.lr = lr
        self.weight_decay = weight_decay
        self.max_steps = max_steps
        self.batch_size = batch_size
        self.validation_fraction = validation_fraction
        self.min_labels_for_validation = min_labels_for_validation
        self.clip = clip
        self.n_threads = n_threads

    # ----------------------------------------------------------------------------- parameters

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters as given (JSON-friendly after :meth:`check_params`)."""
        return {
            "latent_dim": self.latent_dim,
            "n_models": self.n_models,
            "seed": self.seed,
            "grid_size": self.grid_size,
            "hidden_dim": self.hidden_dim,
            "head_hidden_dim": self.head_hidden_dim,
            "dropout": self.dropout,
            "alpha_schedule": self.alpha_schedule,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "max_steps": self.max_steps,
            "batch_size": self.batch_size,
            "validation_fraction": self.validation_fraction,
            "min_labels_for_validation": self.min_labels_for_validation,
            "clip": self.clip,
            "n_threads": self.n_threads,
        }

    def check_params(self) -> AeLLE:
        """Check the constructor parameters as stored; :meth:`fit` calls it first.

        Returns:
            self.

        Raises:
            InvalidParameterError: A parameter of the wrong type or out of its range (a
                subclass of ``ValueError`` and ``TypeError``); the message names it, what is
                valid, and the value given.
        """
        check_estimator_params(self.get_params())
        return self

    # ------------------------------------------------------------------------------ inputs

    def resample(self, spectra: Any) -> np.ndarray:
        """Spectra as the model sees them: clipped, sorted and resampled on the grid.

        Args:
            spectra: A 2-D array (one spectrum per row) or a sequence of 1-D arrays of any
                lengths (tensors and ``LyapunovSpectrum`` objects work too), nats per step.

        Returns:
            An ``n x grid_size`` float64 array, nats per step, at the normalised indices
            ``grid_``.
        """
        grid, _ = preprocess_spectra(
            as_spectrum_list(spectra), self.grid_size, (float(self.clip[0]), float(self.clip[1]))
        )
        return grid

    def _raw_spectrum_inputs(self, spectra: Any) -> np.ndarray:
        grid, aux = preprocess_spectra(
            as_spectrum_list(spectra), self.grid_size, (float(self.clip[0]), float(self.clip[1]))
        )
        return np.concatenate([grid, aux], axis=1)

    def _inputs(
        self, spectra: Any, features: Any
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, int]:
        """Standardised network inputs for :meth:`predict` and friends, checked against fit."""
        self._check_fitted()
        x_spec = x_feat = None
        n: int | None = None
        if self.uses_spectra_:
            if spectra is None:
                raise ValueError("this model was fitted on spectra; pass spectra to predict.")
            raw = self._raw_spectrum_inputs(spectra)
            n = raw.shape[0]
            x_spec = standardise(raw, self._spec_centre, self._spec_scale)
        elif spectra is not None:
            raise ValueError(
                "this model was fitted with spectra=None (features only); pass spectra=None."
            )
        if self.n_features_in_ > 0:
            if features is None:
                raise ValueError(
                    f"this model was fitted with {self.n_features_in_} features; pass features."
                )
            raw_f = feature_array(features, n)
            if raw_f.shape[1] != self.n_features_in_:
                raise ValueError(
                    f"features must have {self.n_features_in_} columns as in fit, but got "
                    f"{raw_f.shape[1]}."
                )
            n = raw_f.shape[0]
            x_feat = standardise(raw_f, self._feat_centre, self._feat_scale)
        elif features is not None:
            raise ValueError("this model was fitted without features; pass features=None.")
        assert n is not None
        return x_spec, x_feat, n

    # --------------------------------------------------------------------------------- fit

    @caller_rng_kept()
    def fit(self, spectra: Any, targets: Any, features: Any = None) -> AeLLE:
        """Train the ensemble.

        Args:
            spectra: ``n`` spectra: a 2-D array (one per row) or a sequence of 1-D arrays of any
                lengths ``D`` (full spectra, descending or not), nats per step. Non-finite
                values are clipped and flagged. None trains a features-only model.
            targets: ``n`` floats, e.g. the final validation accuracy. NaN marks an unlabelled
                sample, which trains the reconstruction only. At least two must be finite.
            features: Optional ``n x f`` extra inputs of the head (e.g. the learning curve so
                far, hyperparameters). Non-finite entries are replaced by the column median.

        Returns:
            self.
        """
        start = time.perf_counter()
        self.check_params()
        y = target_array(targets)
        labelled = np.isfinite(y)
        n_labelled = int(labelled.sum())
        if n_labelled < 2:
            raise ValueError(f"fit needs at least 2 finite targets, but got {n_labelled=}.")
        if spectra is None and features is None:
            raise ValueError("fit needs spectra, features, or both, but got neither.")
        n = y.shape[0]

        seed = int(self.seed) if self.seed is not None else _fresh_seed()
        seed = seed % (2**63)
        rng = np.random.default_rng(seed)
        generator = torch.Generator().manual_seed(seed)

        x_spec = x_feat = None
        if spectra is not None:
            raw = self._raw_spectrum_inputs(spectra)
            if raw.shape[0] != n:
                raise ValueError(
                    f"spectra and targets must have the same length, but got {raw.shape[0]} "
                    f"spectra and {n} targets."
                )
            self._spec_centre, self._spec_scale = spectrum_scale(raw, self.grid_size)
            x_spec = standardise(raw, self._spec_centre, self._spec_scale)
        if features is not None:
            raw_f = feature_array(features, n)
            self._feat_centre, self._feat_scale = robust_scale(raw_f, 1e-6)
            x_feat = standardise(raw_f, self._feat_centre, self._feat_scale)
        else:
            self._feat_centre = self._feat_scale = np.zeros(0)

        centre, spread = robust_scale(y[labelled, None], 0.0)
        self.target_centre_ = float(centre[0])
        self.target_scale_ = float(spread[0]) or 1.0
        z = np.where(labelled, squash((y - self.target_centre_) / self.target_scale_), 0.0)

        train_mask, val_mask = holdout_masks(
            labelled, self.n_models, self.validation_fraction, self.min_labels_for_validation, rng
        )

        self.uses_spectra_ = x_spec is not None
        self.n_features_in_ = 0 if x_feat is None else int(x_feat.shape[1])
        self.n_labelled_ = n_labelled
        self.seed_ = seed
        self.grid_ = grid_points(self.grid_size)
        self.network_ = self._build_network(generator)
        with _threads(self.n_threads):
            best = train_ensemble(
                self.network_,
                x_spec,
                x_feat,
                torch.as_tensor(z, dtype=DTYPE),
                torch.as_tensor(train_mask),
                None if val_mask is None else torch.as_tensor(val_mask),
                TrainingSettings(
                    alpha_schedule=tuple(float(a) for a in self.alpha_schedule),
                    lr=float(self.lr),
                    weight_decay=float(self.weight_decay),
                    max_steps=int(self.max_steps),
                    batch_size=int(self.batch_size),
                ),
                generator,
            )
        self.network_.eval()
        self.best_steps_ = [int(s) for s in best]

        self.oof_prediction_ = np.full(n, np.nan)
        if val_mask is not None:
            member_pred = self._member_predictions(x_spec, x_feat)
            held = val_mask.sum(axis=0)
            summed = np.where(val_mask, member_pred, 0.0).sum(axis=0)
            has = held > 0
            self.oof_prediction_[has] = summed[has] / held[has]
        self.fit_time_ = time.perf_counter() - start
        return self

    def _build_network(self, generator: torch.Generator) -> AeLLENetwork:
        n_spec = self.grid_size + 4 if self.uses_spectra_ else 0
        return AeLLENetwork(
            n_models=self.n_models,
            n_spectrum_inputs=n_spec,
            n_features=self.n_features_in_,
            latent_dim=self.latent_dim,
            hidden_dim=self.hidden_dim,
            head_hidden_dim=self.head_hidden_dim,
            dropout=float(self.dropout),
            generator=generator,
        ).to(DTYPE)

    def _check_fitted(self) -> None:
        if not hasattr(self, "network_"):
            raise RuntimeError("this AeLLE is not fitted yet; call fit() or AeLLE.load() first.")

    # ------------------------------------------------------------------------------ outputs

    def _member_predictions(
        self, x_spec: torch.Tensor | None, x_feat: torch.Tensor | None
    ) -> np.ndarray:
        """Destandardised predictions of every member, an ``M x n`` float64 array."""
        with torch.no_grad(), _threads(self.n_threads):
            pred, _ = self.network_(x_spec, x_feat)
        return self.target_centre_ + self.target_scale_ * unsquash(pred.double().numpy())

    @overload
    def predict(
        self, spectra: Any, features: Any = ..., return_std: Literal[False] = ...
    ) -> np.ndarray: ...

    @overload
    def predict(
        self, spectra: Any, features: Any = ..., *, return_std: Literal[True]
    ) -> tuple[np.ndarray, np.ndarray]: ...

    @overload
    def predict(
        self, spectra: Any, features: Any, return_std: Literal[True]
    ) -> tuple[np.ndarray, np.ndarray]: ...

    @caller_rng_kept()
    def predict(
        self, spectra: Any, features: Any = None, return_std: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Predict the targets of new samples.

        Args:
            spectra: Spectra as in :meth:`fit`, or None for a model fitted with ``spectra=None``.
            features: ``n x f`` features when the model was fitted with features, else None.
            return_std: Also return the ensemble's standard deviation.

        Returns:
            An ``n`` float64 array of ensemble means in target units, or ``(mean, std)``. Both
            are always finite.
        """
        x_spec, x_feat, _ = self._inputs(spectra, features)
        member = self._member_predictions(x_spec, x_feat)
        member = np.where(np.isfinite(member), member, np.nan)
        finite_any = np.isfinite(member).any(axis=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns are handled below
            mean = np.where(finite_any, np.nanmean(member, axis=0), self.target_centre_)
            std = np.where(finite_any, np.nanstd(member, axis=0), 0.0)
        if return_std:
            return mean, std
        return mean

    @caller_rng_kept()
    def transform(self, spectra: Any, member: int = 0) -> np.ndarray:
        """Latent codes of spectra.

        Members learn their own latent spaces (not aligned with each other), so the codes come
        from one member.

        Args:
            spectra: Spectra as in :meth:`fit`.
            member: Which ensemble member's encoder to use, ``0 <= member < n_models``.

        Returns:
            An ``n x latent_dim`` float64 array.
        """
        x_spec = self._spectrum_only_inputs(spectra, "transform")
        check_int("member", member, 0, int(self.n_models) - 1)
        with torch.no_grad(), _threads(self.n_threads):
            latent = self.network_.encode(x_spec)[member]
        return latent.double().numpy()

    @caller_rng_kept()
    def reconstruct(self, spectra: Any) -> np.ndarray:
        """The autoencoder's reconstruction of spectra on the grid, averaged over the ensemble.

        Args:
            spectra: Spectra as in :meth:`fit`.

        Returns:
            An ``n x grid_size`` float64 array in nats per step at the normalised indices
            ``grid_``; compare with :meth:`resample`.
        """
        x_spec = self._spectrum_only_inputs(spectra, "reconstruct")
        with torch.no_grad(), _threads(self.n_threads):
            recon = self.network_.decode(self.network_.encode(x_spec)).mean(dim=0)
        g = self.grid_size
        z = unsquash(recon[:, :g].double().numpy())
        return self._spec_centre[:g] + self._spec_scale[:g] * z

    def _spectrum_only_inputs(self, spectra: Any, what: str) -> torch.Tensor:
        self._check_fitted()
        if not self.uses_spectra_:
            raise ValueError(f"{what} needs a model fitted on spectra, not with spectra=None.")
        return standardise(self._raw_spectrum_inputs(spectra), self._spec_centre, self._spec_scale)

    @caller_rng_kept()
    def embed(
        self, spectra: Any, method: str = "umap", *, n_neighbors: int = 15, member: int = 0
    ) -> np.ndarray:
        """Two-dimensional embedding of the latent codes, for plots.

        ``"umap"`` runs umap-learn on the codes (seeded with ``seed_``, so it is reproducible).
        UMAP needs a neighbourhood graph: with fewer than 16 spectra it falls back to PCA and
        warns. ``"pca"`` gives the first two principal components, as in the seed model.

        Args:
            spectra: Spectra as in :meth:`fit`.
            method: ``"umap"`` or ``"pca"``.
            n_neighbors: UMAP's neighbourhood size (reduced to ``n - 1`` when fewer points).
            member: Which ensemble member's latent space to embed.

        Returns:
            An ``n x 2`` float64 array.
        """
        check_choice("method", method, ("umap", "pca"))
        check_int("n_neighbors", n_neighbors, 2)
        latent = self.transform(spectra, member=member)
        return embed_2d(latent, method, n_neighbors, self.seed_)

    # ---------------------------------------------------------------------------- save/load

    def save(
        self, path: str | os.PathLike[str] | IO[bytes], *, with_fit_time: bool = True
    ) -> None:
        """Write the fitted model to one file: tensors plus a JSON config, no pickled objects.

        Args:
            path: A file path or a binary file object. :meth:`load` reads it back with
                ``torch.load(weights_only=True)``.
            with_fit_time: Write ``fit_time_``. With ``False`` it is written as NaN (and
                reads back as NaN), so two fits of the same data with the same seed write the
                same bytes: the one run-dependent field is the wall time.
        """
        self._check_fitted()
        save_model(self, path, with_fit_time=with_fit_time)

    @classmethod
    def load(cls, path: str | os.PathLike[str] | IO[bytes]) -> AeLLE:
        """Read a model written by :meth:`save`.

        Args:
            path: A file path or a binary file object.

        Returns:
            The fitted ``AeLLE``; its predictions equal those of the saved model.

        Raises:
            FileNotFoundError: No file at ``path`` (other ``OSError``: it cannot be opened).
            ValueError: The file is not one :meth:`save` wrote, is truncated or damaged, or was
                written by another format version; the message names the file and what is
                wrong.
        """
        return load_model(cls, path)

    def __repr__(self) -> str:
        defaults = AeLLE().get_params()
        changed = {k: v for k, v in self.get_params().items() if v != defaults[k]}
        args = ", ".join(f"{k}={v!r}" for k, v in changed.items())
        return f"AeLLE({args})"


def check_aelle_params(params: Any, name: str = "aelle_params") -> dict[str, Any]:
    """Check keyword arguments of the :class:`AeLLE` models a pruner or sampler fits.

    The names and every value are checked now, with the rules :meth:`AeLLE.fit` applies, so
    that ``n_models=0`` fails at construction rather than inside ``study.optimize``.

    Args:
        params: A mapping of :class:`AeLLE` keyword arguments. ``seed`` is dropped: the
            pruner's or sampler's own ``seed`` sets it.
        name: The argument's name, for the messages.

    Returns:
        The parameters as a new dict, without ``seed``.

    Raises:
        InvalidParameterError: An unknown name or an invalid value; the message names it.
    """
    out = check_keywords(name, params, AeLLE)
    out.pop("seed", None)
    AeLLE(**out).check_params()
    return out
