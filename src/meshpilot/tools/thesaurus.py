"""Synonyms for search and schema linking: the words people use for what a catalog names otherwise.

A question's words match the catalog's only when they are the same words (after stemming); users ask for
"clients born before 1980" where the column is customer.date_of_birth. A query term is widened with the
other members of its synonym groups, at a lower weight than the words the user wrote, so that a synonym
can find what nothing else finds but never outranks an exact match. The groups come from
`data/thesaurus.txt` (general data-model vocabulary) and, per workspace, from `synonyms` in meshpilot.yaml.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files

from meshpilot.tools.tokens import Tokenizer

SYNONYM_WEIGHT = 0.5  # of a word the user wrote


class Thesaurus:
    def __init__(self, tokenizer: Tokenizer, groups: Iterable[Sequence[str]]) -> None:
        self.tokenizer = tokenizer
        # single stem -> the stems it widens to; a phrase ("send back") widens only when all its words occur
        self.words: dict[str, set[str]] = {}
        self.phrases: list[tuple[frozenset[str], set[str]]] = []
        self._add(groups)

    def extended(self, groups: Iterable[Sequence[str]]) -> Thesaurus:
        """A copy with more groups; this one is left as it is (it is shared by every catalog)."""
        copy = Thesaurus(self.tokenizer, ())
        copy.words = {stem: set(others) for stem, others in self.words.items()}
        copy.phrases = list(self.phrases)
        copy._add(groups)
        return copy

    def _add(self, groups: Iterable[Sequence[str]]) -> None:
        tokenizer = self.tokenizer
        for group in groups:
            entries = [tuple(dict.fromkeys(tokenizer(entry))) for entry in group]
            entries = [e for e in entries if e]
            for entry in entries:
                others = {stem for other in entries if other != entry for stem in other} - set(entry)
                if len(entry) == 1:
                    self.words.setdefault(entry[0], set()).update(others)
                else:
                    self.phrases.append((frozenset(entry), others))

    def expand(self, terms: Sequence[str]) -> Query:
        """The terms, then their synonyms not already among them, each with the term it stands for."""
        present = set(terms)
        extra: dict[str, str] = {}
        for term in dict.fromkeys(terms):
            for synonym in sorted(self.words.get(term, ())):
                extra.setdefault(synonym, term)
        for words, others in self.phrases:
            if words <= present:
                for synonym in sorted(others):
                    extra.setdefault(synonym, min(words))
        widened = [t for t in extra if t not in present]
        return Query(list(terms) + widened, [1.0] * len(terms) + [SYNONYM_WEIGHT] * len(widened),
                     [None] * len(terms) + [extra[t] for t in widened])


@dataclass
class Query:
    """Weighted query terms. A synonym counts at most as much as the word it stands for (`stands_for`):
    a rare synonym must not outrank the common word the user wrote, where the catalog has that word."""

    terms: list[str]
    weights: list[float]
    stands_for: list[str | None]


def parse_groups(text: str) -> list[list[str]]:
    """Groups from thesaurus text: one per line, comma separated, '#' starts a comment."""
    groups = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            groups.append([entry.strip() for entry in line.split(",") if entry.strip()])
    return groups


@lru_cache(maxsize=1)
def default_groups() -> tuple[tuple[str, ...], ...]:
    text = (files("meshpilot.tools") / "data" / "thesaurus.txt").read_text(encoding="utf-8")
    return tuple(tuple(group) for group in parse_groups(text))


@lru_cache(maxsize=1)
def default_thesaurus() -> Thesaurus:
    """Built once per process: every catalog opened shares it (stemming the groups costs milliseconds)."""
    return Thesaurus(Tokenizer(), default_groups())
