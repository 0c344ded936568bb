"""Real, human-annotated person names (../shared/data/ner_real_names: wikigold, SEC filings, the Broad
Twitter Corpus) as sentences with PERSON spans, the frozen split of them, and token-level scoring.

CoNLL files differ: wikigold is "token tag", SEC filings "token pos chunk tag" with -DOCSTART- lines, BTC
"token<TAB>tag"; tags are IOB1 or IOB2 with PER. A sentence is in the test half when the SHA-256 of its
text is odd, fixed before any name detector was tuned on this data: tune on `dev`, report `test`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from meshpilot.evals.shared_data import shared_folder

CORPORA = {"wikigold": ["wikigold/CONLL-format/data/wikigold.conll.txt"],
           "sec_filings": ["SEC-filings/CONLL-format/data/test/FIN3.txt", "SEC-filings/CONLL-format/data/train/FIN5.txt"],
           "btc": [f"BTC/CONLL-format/data/{part}.conll" for part in "abefgh"]}


# The SEC filings annotate the parties of a contract as PER by their role ("the Lender shall..."): no
# one's name, and no personal data, so neither finding nor missing them is scored.
ROLE_WORDS = frozenset("lender lenders borrower borrowers guarantor guarantors purchaser purchasers seller sellers "
                       "buyer buyers employee employer executive tenant landlord licensee licensor trustee agent "
                       "party parties holder holders assignor assignee".split())


@dataclass
class Sentence:
    corpus: str
    text: str
    persons: list[tuple[int, int]]  # character spans of the person names
    tokens: list[tuple[int, int]]  # character spans of every token
    ignored: list[tuple[int, int]]  # annotated PER but no one's name (a contract's "Lender"): not scored
    key: str  # the tokens joined by spaces, as the file has them: what the split is decided on

    @property
    def split(self) -> str:
        return "test" if int(hashlib.sha256(self.key.encode()).hexdigest(), 16) % 2 else "dev"


def ner_dir() -> Path | None:
    return shared_folder("ner_real_names", *(path for paths in CORPORA.values() for path in paths))


def sentences(folder: Path, corpus: str) -> Iterator[Sentence]:
    for relative in CORPORA[corpus]:
        rows: list[tuple[str, str]] = []
        for line in (folder / relative).read_text(encoding="utf-8", errors="replace").splitlines() + [""]:
            parts = line.split()
            if parts and parts[0] == "-DOCSTART-":
                continue
            if len(parts) >= 2:
                rows.append((parts[0], parts[-1]))
                continue
            if rows:
                yield _sentence(corpus, rows)
                rows = []


def _sentence(corpus: str, rows: list[tuple[str, str]]) -> Sentence:
    text, tokens, persons = "", [], []
    previous = "O"
    glue = False
    for token, tag in rows:
        # The tweets are tokenized "@ user" and "# tag": written, the mark and the name are one word.
        start = len(text) + (1 if text and not glue else 0)
        text = (text if glue else f"{text} ") + token if text else token
        glue = token in ("@", "#")
        tokens.append((start, start + len(token)))
        is_person = tag.endswith("PER")
        if is_person and persons and previous.endswith("PER") and not tag.startswith("B-"):
            persons[-1] = (persons[-1][0], start + len(token))
        elif is_person:
            persons.append((start, start + len(token)))
        previous = tag
    ignored = [span for span in persons if text[span[0]:span[1]].lower() in ROLE_WORDS]
    return Sentence(corpus, text, [span for span in persons if span not in ignored], tokens, ignored,
                    " ".join(token for token, _ in rows))


def score_persons(samples: list[Sentence], detect) -> dict[str, float]:
    """Token-level precision and recall of PERSON (as presidio-evaluator scores): a token is a person's when
    a span covers it, gold or detected. `detect(text)` gives the detected (start, end) spans."""
    tp = fp = fn = 0
    for sentence in samples:
        found = detect(sentence.text)
        for start, end in sentence.tokens:
            if any(a < end and start < b for a, b in sentence.ignored):
                continue
            gold = any(a < end and start < b for a, b in sentence.persons)
            predicted = any(a < end and start < b for a, b in found)
            tp += gold and predicted
            fp += predicted and not gold
            fn += gold and not predicted
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4),
            "f1": round(2 * precision * recall / (precision + recall), 4) if precision + recall else 0.0,
            "person_tokens": tp + fn}


def spread(items: list[Sentence], n: int) -> list[Sentence]:
    """`n` of the items, evenly spaced: the whole corpus's range of documents, not its first few."""
    if len(items) <= n:
        return items
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]
