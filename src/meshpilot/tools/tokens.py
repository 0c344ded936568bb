"""Words of schema names and prose, as search and matching compare them: snake_case and camelCase split,
digits apart, lower-cased, stop words dropped, stemmed (Snowball). Kept apart from the search index so
that what only needs words does not load numpy and scipy."""

from __future__ import annotations

import re

_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_STOPWORDS = frozenset(
    "a an and are as at be by do does for from has have how i in is it its of on or that the their there these "
    "this those to was were what when where which who whom whose why will with we our you your me my all any each "
    "show give find tell please many much".split()
)


class Tokenizer:
    """Words of names and prose: snake_case and camelCase split, lower-cased, stop words dropped, stemmed."""

    def __init__(self) -> None:
        import Stemmer

        self._stem = Stemmer.Stemmer("english").stemWord
        self._stems: dict[str, str] = {}
        # While a batch is indexed, the same strings (column names, descriptions) recur in the column,
        # its dataset and its product: each is tokenized once per batch.
        self._texts: dict[str, list[str]] | None = None

    def words(self, text: str) -> list[str]:
        return list(map(str.lower, _WORD.findall(text or "")))

    def _stem_of(self, word: str) -> str:
        stem = self._stems[word] = self._stem(word)
        return stem

    def __call__(self, text: str) -> list[str]:
        if self._texts is not None:
            cached = self._texts.get(text)
            if cached is not None:
                return cached
        stems = self._stems
        out = [stems.get(w) or self._stem_of(w) for w in self.words(text) if w not in _STOPWORDS]
        if self._texts is not None:
            self._texts[text] = out
        return out

    def batch(self) -> _TextCache:
        return _TextCache(self)


class _TextCache:
    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer

    def __enter__(self) -> None:
        self.tokenizer._texts = {}

    def __exit__(self, *exc: object) -> None:
        self.tokenizer._texts = None
