"""Character-level language modelling on English text that ships with Python."""

from __future__ import annotations

import codecs
import contextlib
import importlib
import io
import re
from typing import Any

import numpy as np
import torch

from optuna_lyap._checks import InvalidParameterError, check_int, check_real
from optuna_lyap.tasks._base import SequenceData, SequenceTask
from optuna_lyap.tasks._registry import register_task

# Lower-case letters, digits, the space and common punctuation; every other character reads as
# "#". A fixed alphabet keeps token ids the same whatever text the running Python ships.
VOCAB = " abcdefghijklmnopqrstuvwxyz0123456789.,;:!?'\"()-_*#"
_UNKNOWN = VOCAB.index("#")
_TRANSLATE = {"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'}

# Used only where the interpreter lacks pydoc_data (stripped-down installs).
_FALLBACK_MODULES = ("heapq", "argparse", "doctest", "difflib", "random", "pickle", "string")


def _zen_of_python() -> str:
    # Importing ``this`` prints the Zen; keep it quiet and decode the stored ROT13 text.
    with contextlib.redirect_stdout(io.StringIO()):
        this = importlib.import_module("this")
    return codecs.decode(this.s, "rot13")


def _prose(text: str) -> str:
    """Drop indented blocks (code, grammar rules) and heading underlines; keep the sentences."""
    lines = [
        line
        for line in text.splitlines()
        if not line.startswith("   ") and not re.fullmatch(r"[*=\-~+|^ ]*", line)
    ]
    return " ".join(lines)


def python_text() -> str:
    """English prose that ships with the running Python, whitespace collapsed.

    The Zen of Python followed by the prose of the language reference's help topics
    (``pydoc_data.topics``, sorted by topic), or, where that module is missing, of a few
    standard modules' docstrings. The exact text depends on the Python version.
    """
    parts = [_zen_of_python()]
    try:
        from pydoc_data.topics import topics

        parts += [_prose(topics[key]) for key in sorted(topics)]
    except ImportError:  # pragma: no cover - full CPython installs have pydoc_data
        for name in _FALLBACK_MODULES:
            module = importlib.import_module(name)
            parts.append(_prose(getattr(module, "__about__", "") + (module.__doc__ or "")))
    return re.sub(r"\s+", " ", " ".join(parts)).strip()


def encode(text: str) -> np.ndarray:
    """Token ids (int64) of ``text``: lower-cased, characters outside ``VOCAB`` read as "#"."""
    lookup = {char: index for index, char in enumerate(VOCAB)}
    lowered = text.lower()
    return np.array(
        [lookup.get(_TRANSLATE.get(char, char), _UNKNOWN) for char in lowered], dtype=np.int64
    )


@register_task
class CharLM(SequenceTask):
    """Predict the next character of English prose that ships with Python (no download).

    The text (``python_text``: the Zen of Python and the language reference's help topics) is
    cut to ``max_chars``, split into non-overlapping chunks of ``seq_len + 1`` characters, and the
    chunks are shuffled (from ``seed``) into training and validation sets. A model embeds the
    characters (``embedding_dim`` features) before its recurrent layer and predicts the next
    character at every step; ``probe_inputs`` returns the embedded characters.
    Metric: next-character accuracy on the validation chunks over all steps (predicting the
    space every time scores about 0.16).

    Args:
        seq_len: Characters per sequence ``T``.
        max_chars: Characters of text used.
        embedding_dim: Width of the character embedding (the recurrent layer's input size).
        val_fraction: Share of the chunks held out for validation.
        **kwargs: Common options, see ``SequenceTask``.

    Example:
        >>> from optuna_lyap.tasks import CharLM
        >>> task = CharLM(seq_len=32, max_chars=4000, seed=0)
        >>> task.val_data.inputs.dtype, task.val_data.inputs.shape[1]
        (torch.int64, 32)
        >>> task.metric, task.direction
        ('val_accuracy', 'maximize')
    """

    name = "charlm"
    description = "next-character prediction on English prose shipped with Python; accuracy"
    metric = "val_accuracy"
    direction = "maximize"
    problem = "classification"
    default_n_epochs = 10
    vocab_size = len(VOCAB)
    output_size = len(VOCAB)

    def __init__(
        self,
        *,
        seq_len: int = 64,
        max_chars: int = 48_000,
        embedding_dim: int = 16,
        val_fraction: float = 0.2,
        **kwargs: Any,
    ) -> None:
        seq_len = check_int("seq_len", seq_len, 1)
        embedding_dim = check_int("embedding_dim", embedding_dim, 1)
        if check_int("max_chars", max_chars, 1) < 4 * (seq_len + 1):
            raise InvalidParameterError(
                f"max_chars must hold at least 4 sequences ({4 * (seq_len + 1)} characters), "
                f"but got {max_chars=}."
            )
        val_fraction = check_real("val_fraction", val_fraction, 0.0, 1.0, closed=False)
        self._chunk_len = seq_len
        self.max_chars = max_chars
        self.embedding_dim = embedding_dim
        self.input_size = embedding_dim
        self.val_fraction = val_fraction
        super().__init__(**kwargs)

    def _generate(self, rng: np.random.Generator) -> tuple[SequenceData, SequenceData]:
        tokens = encode(python_text()[: self.max_chars])
        width = self._chunk_len + 1
        chunks = torch.from_numpy(tokens[: len(tokens) // width * width].reshape(-1, width))
        order = torch.from_numpy(rng.permutation(len(chunks)))
        n_val = max(1, round(self.val_fraction * len(chunks)))
        splits = []
        for index in (order[n_val:], order[:n_val]):
            chunk = chunks[index]
            splits.append(SequenceData(chunk[:, :-1].contiguous(), chunk[:, 1:].contiguous()))
        return splits[0], splits[1]
