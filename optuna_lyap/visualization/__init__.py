"""Figures of a study's dynamics: the AeLLE latent embedding, and publishing to the dashboard."""

from __future__ import annotations

from optuna_lyap.visualization._embedding import (
    EmbeddingData,
    embedding_data,
    plot_embedding,
    publish_embedding,
    write_png,
)

__all__ = ["EmbeddingData", "embedding_data", "plot_embedding", "publish_embedding", "write_png"]
