"""The embedder's plain core, without Dagster: ``Check`` (a line of `legal-rag doctor`) and
``NoEmbeddings``, the BM25-only behaviour.

``resources.embeddings.Embedder`` (the Dagster resource, base of the Hugging Face and local
embedders) is ``NoEmbeddings`` mixed into a ``ConfigurableResource``; `legal-rag search`,
`status` and `doctor` use ``NoEmbeddings()`` itself when no dense backend is configured, so they
never import Dagster for it (``services.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import ConfigurationError, PipelineError

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class Check:
    """One line of ``legal-rag doctor``: what was checked, whether it passed, and what to do if not."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


class NoEmbeddings:
    """No dense embeddings: the pipeline stores and searches BM25 sparse vectors only.

    Subclasses compute dense vectors; every ``embed()`` returns float32 ``(len(texts), dimension())``,
    L2-normalised, in input order.
    """

    def enabled(self) -> bool:
        return False

    def model_id(self) -> str:
        """Stored in each point's payload as ``embedding_model`` ("" when disabled)."""
        return ""

    def describe(self) -> str:
        return "no dense embeddings (BM25-only search)"

    def dimension(self) -> int:
        return 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        from .resources import embeddings_errors as errors

        raise ConfigurationError(
            "Dense embeddings are disabled (BM25-only mode)",
            f"set {errors.TOKEN_SETTING} or {errors.ENDPOINT_SETTING} to compute dense vectors",
        )

    def embed_groups(self, groups: Iterable[Sequence[str]]) -> Iterator[np.ndarray | PipelineError]:
        """Each group of texts embedded, in order: its vectors, or the ``PipelineError`` that stopped it
        (a later group is still tried). An embedder that sends requests keeps them flowing across the
        groups (``HuggingFaceMethods``); this one embeds each group when the one before it is done."""
        for texts in groups:
            try:
                vectors = self.embed(texts)
            except PipelineError as error:
                yield error
            else:
                yield vectors

    def preflight(self, probe: bool = True) -> list[Check]:
        """Prerequisites in order (``legal-rag doctor``, the run's preflight). ``probe=False`` skips the
        one tiny embedding call, for a run whose first batch is the probe."""
        from .resources import embeddings_errors as errors

        return [
            Check(
                "dense embeddings",
                True,
                "not configured: search is BM25-only",
                f"set {errors.TOKEN_SETTING} or {errors.ENDPOINT_SETTING} to add dense vectors",
            )
        ]
