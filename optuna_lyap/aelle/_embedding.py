"""Two-dimensional embeddings of AeLLE's latent codes, for plots."""

from __future__ import annotations

import warnings

import numpy as np

#: Fewer points than this, and UMAP (which needs a neighbourhood graph) gives way to PCA.
UMAP_MIN_POINTS = 16


def pca_2d(x: np.ndarray) -> np.ndarray:
    """First two principal-component scores of an ``n x L`` array, signs fixed, ``n x 2``."""
    centred = x - x.mean(axis=0)
    out = np.zeros((x.shape[0], 2))
    if x.shape[0] < 2:
        return out
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    comps = vt[:2]
    # An SVD's signs are arbitrary; make the largest loading of each component positive.
    signs = np.sign(comps[np.arange(comps.shape[0]), np.abs(comps).argmax(axis=1)])
    scores = centred @ (comps * signs[:, None]).T
    out[:, : scores.shape[1]] = scores
    return out


def embed_2d(latent: np.ndarray, method: str, n_neighbors: int, seed: int) -> np.ndarray:
    """Two-dimensional embedding of ``n x L`` latent codes, ``n x 2`` float64.

    ``"umap"`` runs umap-learn seeded with ``seed`` (with fewer than :data:`UMAP_MIN_POINTS`
    points it warns and falls back to PCA); ``"pca"`` gives :func:`pca_2d`. The caller has
    checked ``method`` and ``n_neighbors``.
    """
    n = latent.shape[0]
    if method == "umap" and n < UMAP_MIN_POINTS:
        warnings.warn(
            f"UMAP needs at least {UMAP_MIN_POINTS} points, but got {n}; using PCA instead.",
            UserWarning,
            stacklevel=3,
        )
        method = "pca"
    if method == "pca":
        return pca_2d(latent)
    try:
        import umap
    except ImportError as err:  # pragma: no cover - umap-learn is a dependency
        raise ImportError("embed(method='umap') needs umap-learn: pip install umap-learn") from err
    with warnings.catch_warnings():
        # umap-learn warns that a fixed random_state disables parallelism: that is intended.
        warnings.filterwarnings("ignore", message=".*n_jobs.*", category=UserWarning)
        reducer = umap.UMAP(n_components=2, n_neighbors=min(n_neighbors, n - 1), random_state=seed)
        return np.asarray(reducer.fit_transform(latent), dtype=np.float64)
