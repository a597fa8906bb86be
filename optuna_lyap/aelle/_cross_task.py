"""The prior trained across tasks: fit, predict a trial's final quantile, calibrate P(top).

``CrossTaskPrior`` reads the task-free rows of ``optuna_lyap.aelle._features`` (``PriorInputs``)
and predicts the target ``final_quantile`` (1 = best within its study). One such model is a
member of a ``PriorBundle`` (``optuna_lyap.aelle._bundle``), which saves several as one file.

Notation: ``n`` rows, ``F`` columns of ``PriorInputs.matrix(inputs)``.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from optuna_lyap.aelle._features import (
    CURVE_NAMES,
    HYPERPARAMETER_NAMES,
    INPUT_GROUPS,
    PriorInputs,
    check_input_groups,
    head_feature_mask,
)

_SAVE_FORMAT = "optuna_lyap.CrossTaskPrior"
_SAVE_VERSION = 2

# Shared by the boosted-tree regressor and the P(top) classifier: small, regularised trees, since
# a corpus holds a few hundred configurations per task.
_TREE_PARAMS: dict[str, Any] = {
    "learning_rate": 0.05,
    "max_leaf_nodes": 15,
    "min_samples_leaf": 20,
    "l2_regularization": 1.0,
}


class CrossTaskPrior:
    """Predict a trial's final quantile within its study from inputs that transfer across tasks.

    Two models share one interface: ``model="hgb"`` fits scikit-learn's
    ``HistGradientBoostingRegressor`` on ``PriorInputs.matrix(inputs)`` (missing values handled
    natively); ``model="aelle"`` fits the package's ``AeLLE`` with the spectra as its spectra
    (when ``"spectrum"`` is in ``inputs``; without it, a features-only ``AeLLE``) and the
    hyperparameter and curve groups as its head's features. Both also fit a
    ``HistGradientBoostingClassifier`` for the probability that a trial ends in its study's
    top ``top_fraction`` (``predict_top_probability``).

    Args:
        inputs: Input groups, a subset of ``INPUT_GROUPS``.
        model: ``"hgb"`` or ``"aelle"``.
        top_fraction: Share of a study counted as its top, in ``(0, 1)``.
        seed: Seeds both models.
        aelle_params: Extra ``AeLLE`` parameters (``model="aelle"``).

    Attributes:
        columns_: Which columns of ``PriorInputs.matrix(inputs)`` the models read (those with at
            least two distinct finite values in training); the others are set to NaN (the
            training median) before the AeLLE head reads them, so a column the corpus never
            knew (the recurrent norm of recorded tables) or never varied (the number of layers
            of one-layer networks) cannot move a prediction.
        regressor_: The fitted regressor (``HistGradientBoostingRegressor`` or ``AeLLE``).
        classifier_: The fitted ``HistGradientBoostingClassifier`` (not kept by ``save``).
        calibration_: None, or ``(x, y)``: increasing breakpoints of an isotonic map from the
            predicted quantile ``x`` to the probability ``y`` of ending in the study's top
            ``top_fraction`` (``set_calibration``); kept by ``save``.
        info_: Provenance kept by ``save`` and ``load`` (the tables and command of a shipped
            prior); empty unless set.

    Example:
        >>> import numpy as np
        >>> from optuna_lyap.aelle import CrossTaskPrior, NetworkDescription
        >>> from optuna_lyap.aelle._features import (
        ...     PriorInputs, curve_rank_features, final_quantile, hyperparameter_features)
        >>> rng = np.random.default_rng(0)
        >>> lr = 10 ** rng.uniform(-4, -1, 80)
        >>> final = -np.abs(np.log10(lr) + 2.5)  # the best runs used lr = 3e-3
        >>> values = np.column_stack([rng.uniform(size=80), final])  # the curve at steps 0 and 1
        >>> nets = [NetworkDescription("gru", 16, 1, 1.0, float(v)) for v in lr]
        >>> rows = PriorInputs(hyperparameter_features(nets), [np.zeros(4)] * 80, np.full(80, 16),
        ...                    curve_rank_features(values, "maximize", 0))
        >>> prior = CrossTaskPrior(inputs=("hyperparameters",), seed=0)
        >>> prior = prior.fit(rows, final_quantile(final, "maximize"))
        >>> predicted = prior.predict(rows)
        >>> predicted.shape, bool(np.corrcoef(predicted, final)[0, 1] > 0.8)
        ((80,), True)
    """

    def __init__(
        self,
        *,
        inputs: Sequence[str] = INPUT_GROUPS,
        model: Literal["hgb", "aelle"] = "hgb",
        top_fraction: float = 0.1,
        seed: int = 0,
        aelle_params: Mapping[str, Any] | None = None,
    ) -> None:
        self.inputs = tuple(inputs)
        self.model = model
        self.top_fraction = top_fraction
        self.seed = seed
        self.aelle_params = dict(aelle_params or {})
        self.calibration_: tuple[np.ndarray, np.ndarray] | None = None
        # Free-form provenance written by ``save`` (what the prior was trained on).
        self.info_: dict[str, Any] = {}

    def _check(self) -> None:
        check_input_groups(self.inputs)
        if self.model not in ("hgb", "aelle"):
            raise ValueError(f"model must be 'hgb' or 'aelle' but got {self.model=}.")
        if not 0 < self.top_fraction < 1:
            raise ValueError(f"top_fraction must be in (0, 1) but got {self.top_fraction=}.")

    def _head_features(self, rows: PriorInputs) -> np.ndarray | None:
        """The AeLLE head's features; columns unknown in training (``columns_``) set to NaN."""
        groups = [g for g in ("hyperparameters", "curve") if g in self.inputs]
        if not groups:
            return None
        matrix = rows.matrix(groups)
        matrix[:, ~self.columns_[head_feature_mask(self.inputs, self.columns_.size)]] = np.nan
        return matrix

    def _spectra(self, rows: PriorInputs) -> list[np.ndarray] | None:
        return rows.spectra if "spectrum" in self.inputs else None

    def fit(self, rows: PriorInputs, target: np.ndarray) -> CrossTaskPrior:
        """Fit on ``n`` rows and their targets (``final_quantile``, in ``[0, 1]``)."""
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        self._check()
        target = np.asarray(target, dtype=np.float64)
        if target.shape != (len(rows),) or not np.isfinite(target).all():
            raise ValueError(f"target must be {len(rows)} finite values but got {target.shape=}.")
        matrix = rows.matrix(self.inputs)
        # Columns no training row knows (the recurrent norm of recorded tables) carry nothing
        # and break the binning of the boosted trees; a column with one value in training (the
        # number of layers of a corpus of one-layer networks) teaches no weight what other
        # values mean, and AeLLE would read any other value as an extreme. Leave both out.
        self.columns_ = np.array(
            [np.unique(column[np.isfinite(column)]).size >= 2 for column in matrix.T],
            dtype=bool,
        )
        if self.model == "hgb":
            self.regressor_: Any = HistGradientBoostingRegressor(
                max_iter=200, random_state=self.seed, **_TREE_PARAMS
            ).fit(matrix[:, self.columns_], target)
        else:
            from optuna_lyap.aelle._estimator import AeLLE

            params = {"seed": self.seed, "min_labels_for_validation": 50, **self.aelle_params}
            self.regressor_ = AeLLE(**params).fit(
                self._spectra(rows), target, self._head_features(rows)
            )
        top = target >= 1 - self.top_fraction
        self.classifier_ = HistGradientBoostingClassifier(
            max_iter=150, random_state=self.seed, **_TREE_PARAMS
        ).fit(matrix[:, self.columns_], top)
        return self

    def predict(self, rows: PriorInputs) -> np.ndarray:
        """The predicted final quantile of each row, ``n`` floats (higher = better)."""
        if self.model == "hgb":
            matrix = rows.matrix(self.inputs)[:, self.columns_]
            return np.asarray(self.regressor_.predict(matrix), dtype=float)
        return np.asarray(
            self.regressor_.predict(self._spectra(rows), self._head_features(rows)), dtype=float
        )

    def set_calibration(self, predicted: np.ndarray, top: np.ndarray) -> None:
        """Fit the isotonic map from predicted quantile to P(top ``top_fraction``).

        Uses scikit-learn's ``IsotonicRegression`` (increasing, outputs clipped to [0, 1])
        and keeps its breakpoints; ``calibrated_top_probability`` interpolates between them
        with ``np.interp`` (constant beyond the ends). Fit it on out-of-sample predictions
        (e.g. leave one task out) so the probability is honest for an unseen study.

        Args:
            predicted: ``m`` predicted quantiles.
            top: ``m`` booleans, whether each trial ended in its study's top.

        Raises:
            ValueError: Lengths differ, fewer than 2 finite predictions, or non-finite values.
        """
        from sklearn.isotonic import IsotonicRegression

        x = np.asarray(predicted, dtype=np.float64)
        y = np.asarray(top, dtype=np.float64)
        if x.shape != y.shape or x.ndim != 1 or x.size < 2 or not np.isfinite(x).all():
            raise ValueError(
                f"predicted and top must be equal-length 1-D finite arrays of at least 2 "
                f"values but got {x.shape=}, {y.shape=}."
            )
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
        iso.fit(x, y)
        self.calibration_ = (
            np.asarray(iso.X_thresholds_, dtype=np.float64),
            np.asarray(iso.y_thresholds_, dtype=np.float64),
        )

    def calibrated_top_probability(self, predicted: np.ndarray) -> np.ndarray:
        """P(top ``top_fraction``) of predicted quantiles through ``calibration_``; NaN if none."""
        predicted = np.asarray(predicted, dtype=np.float64)
        if self.calibration_ is None:
            return np.full(predicted.shape, np.nan)
        x, y = self.calibration_
        return np.interp(predicted, x, y)

    def predict_top_probability(self, rows: PriorInputs) -> np.ndarray:
        """``n`` probabilities that each trial ends in its study's top ``top_fraction``.

        The fitted classifier where there is one, else the calibration of the predicted
        quantile (``calibration_``).

        Raises:
            ValueError: Neither a classifier nor a calibration.
        """
        if not hasattr(self, "classifier_"):
            if self.calibration_ is not None:
                return self.calibrated_top_probability(self.predict(rows))
            raise ValueError(
                "this prior has no classifier and no calibration (a loaded prior keeps only "
                "predict and its calibration)."
            )
        proba = self.classifier_.predict_proba(rows.matrix(self.inputs)[:, self.columns_])
        classes = list(self.classifier_.classes_)
        return proba[:, classes.index(True)] if True in classes else np.zeros(len(rows))

    def _config(self) -> dict[str, Any]:
        return {
            "inputs": list(self.inputs),
            "top_fraction": self.top_fraction,
            "seed": self.seed,
            "columns": [bool(c) for c in self.columns_],
            "calibration": None
            if self.calibration_ is None
            else {"x": self.calibration_[0].tolist(), "y": self.calibration_[1].tolist()},
            "info": self.info_,
        }

    def _aelle_bytes(self) -> Any:
        import torch

        if self.model != "aelle" or not hasattr(self, "regressor_"):
            raise ValueError(f"only a fitted model='aelle' prior can be saved but got {self!r}.")
        buffer = io.BytesIO()
        # Without the fit's wall time: a bundle's bytes, and so its digest, depend only on the
        # data, the settings and the seed.
        self.regressor_.save(buffer, with_fit_time=False)
        return torch.frombuffer(bytearray(buffer.getvalue()), dtype=torch.uint8)

    @classmethod
    def _from_config(cls, config: Mapping[str, Any], aelle: Any) -> CrossTaskPrior:
        from optuna_lyap.aelle._estimator import AeLLE

        prior = cls(
            inputs=config["inputs"],
            model="aelle",
            top_fraction=config["top_fraction"],
            seed=config["seed"],
        )
        prior._check()
        prior.columns_ = np.asarray(config["columns"], dtype=bool)
        calibration = config.get("calibration")
        if calibration is not None:
            x = np.asarray(calibration["x"], dtype=np.float64)
            y = np.asarray(calibration["y"], dtype=np.float64)
            if x.shape != y.shape or x.ndim != 1 or x.size < 1 or np.any(np.diff(x) < 0):
                raise ValueError(f"its calibration is not increasing breakpoints: {calibration}")
            prior.calibration_ = (x, y)
        prior.regressor_ = AeLLE.load(io.BytesIO(aelle.numpy().tobytes()))
        width = prior.columns_.size
        head = int(head_feature_mask(prior.inputs, width).sum())
        if prior.regressor_.n_features_in_ != head or prior.regressor_.uses_spectra_ != (
            "spectrum" in prior.inputs
        ):
            raise ValueError(f"its AeLLE does not read the inputs {prior.inputs}")
        prior.info_ = dict(config.get("info") or {})
        return prior

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write a fitted ``model="aelle"`` prior to one file, loadable without unpickling.

        The file holds a JSON config (inputs, top fraction, the feature names the columns stand
        for, the calibration and ``info``) and the AeLLE's own file (tensors plus JSON) as
        bytes, all read back by ``torch.load(weights_only=True)``. The classifier of
        ``predict_top_probability`` is not saved (boosted trees have no format but pickle).

        Args:
            path: The file to write.

        Raises:
            ValueError: If the prior is not a fitted ``model="aelle"`` prior.
        """
        import torch

        blob = self._aelle_bytes()
        config = {
            "format": _SAVE_FORMAT,
            "version": _SAVE_VERSION,
            "hyperparameter_names": list(HYPERPARAMETER_NAMES),
            "curve_names": list(CURVE_NAMES),
            **self._config(),
        }
        torch.save({"config": json.dumps(config), "aelle": blob}, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CrossTaskPrior:
        """Read a prior written by ``save`` (``predict`` works; ``predict_top_probability``
        only through a saved calibration).

        Raises:
            ValueError: If the file is not a saved prior of this format version, or its feature
                names differ from this version's.
        """
        import torch

        blob = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(blob, dict) or "config" not in blob or "aelle" not in blob:
            raise ValueError(f"{path!r} is not a file written by CrossTaskPrior.save.")
        config = json.loads(blob["config"])
        if config.get("format") != _SAVE_FORMAT or config.get("version") != _SAVE_VERSION:
            raise ValueError(
                f"{path!r} holds format {config.get('format')!r} version "
                f"{config.get('version')!r}; this version reads {_SAVE_FORMAT!r} {_SAVE_VERSION}."
            )
        names = (tuple(config["hyperparameter_names"]), tuple(config["curve_names"]))
        if names != (HYPERPARAMETER_NAMES, CURVE_NAMES):
            raise ValueError(f"{path!r} was trained on other feature columns: {names}.")
        return cls._from_config(config, blob["aelle"])

    def __repr__(self) -> str:
        return f"CrossTaskPrior(inputs={self.inputs}, model={self.model!r}, seed={self.seed})"
