"""Audit log: every tool call, appended as one JSON line to `.meshpilot/audit/<YYYY-MM-DD>.jsonl`.

Each record: time, caller (role, team), tool, arguments with PII redacted, the policy verdict (allowed,
refused with the reason, awaiting approval), guard actions, duration, outcome (ok or the error), and the
prompt ids@versions involved. Lines are written with O_APPEND and fsync'd, so concurrent writers never
interleave inside a line and a crash loses at most the line being written. `meshpilot audit tail` reads
them back.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from meshpilot.errors import InvalidArgumentError


def audit_dir(workspace_root: str | os.PathLike) -> Path:
    return Path(workspace_root) / ".meshpilot" / "audit"


_AUDIT_ENTITIES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS", "US_PASSPORT",
                   "US_DRIVER_LICENSE", "US_BANK_NUMBER", "UK_NHS", "CRYPTO", "DATE_OF_BIRTH", "PERSON")


def _redact(value: Any) -> Any:
    import sys

    from meshpilot.guardrails import pii

    if "presidio_analyzer" not in sys.modules:
        # A one-shot command: its arguments are what its user typed, and loading Presidio would cost more
        # than the command. Pattern entities are redacted; names need the NER model.
        return pii.map_strings(value, pii.quick_redact)
    # No LOCATION: table names such as customer.customer_profile read like places to a NER model.
    # Names are looked for only in text with a capitalised word: every call is audited, and the NER
    # model costs milliseconds that SQL and identifiers do not need.
    return pii.map_strings(value, lambda text: pii.anonymize(
        text, "redact", entities=_AUDIT_ENTITIES, names_if_capitalised=True)[0] if text.strip() else text)


@dataclass
class AuditRecord:
    tool: str
    caller: dict[str, Any]
    arguments: dict[str, Any]
    verdict: str = "allowed"
    reason: str | None = None
    outcome: str = "ok"
    error: str | None = None
    guard: list[str] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    duration_ms: float = 0.0
    channel: str = "cli"
    conversation: str | None = None
    pii: list[str] = field(default_factory=list)  # PII columns the call read (in the clear or masked)


# Arguments are evidence, not archives: a 10 MB query must not become a 10 MB audit line.
MAX_ARGUMENT_CHARS = 4_000


def _capped(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_ARGUMENT_CHARS:
        return value[:MAX_ARGUMENT_CHARS] + f"... [{len(value) - MAX_ARGUMENT_CHARS:,} more characters]"
    if isinstance(value, dict):
        return {k: _capped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_capped(v) for v in value]
    return value


def append(workspace_root: str | os.PathLike, record: AuditRecord) -> None:
    now = datetime.now(UTC)
    line = json.dumps({"time": now.isoformat(timespec="milliseconds"), **record.__dict__,
                       "arguments": _redact(_capped(record.arguments))}, default=str, ensure_ascii=False) + "\n"
    folder = audit_dir(workspace_root)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / f"{now:%Y-%m-%d}.jsonl", os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = "\n" + line  # the previous writer died mid-line: start ours on a line of its own
        os.write(fd, line.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def audited(workspace_root: str | os.PathLike, tool: str, caller: dict[str, Any], arguments: dict[str, Any],
            *, channel: str = "cli", prompts: list[str] | None = None, conversation: str | None = None
            ) -> Iterator[AuditRecord]:
    """Record one tool call: the body may set verdict, reason, guard and prompts on the record; an
    exception is recorded as the outcome and re-raised."""
    from meshpilot.errors import MeshpilotError

    record = AuditRecord(tool, caller, arguments, channel=channel, prompts=list(prompts or []),
                         conversation=conversation)
    t0 = time.perf_counter()
    try:
        yield record
    except MeshpilotError as exc:
        record.outcome = "refused" if record.verdict == "refused" else "error"
        record.error = exc.message
        raise
    except Exception as exc:
        record.outcome = "error"
        record.error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        record.duration_ms = round((time.perf_counter() - t0) * 1000, 2)
        append(workspace_root, record)


def tail(workspace_root: str | os.PathLike, n: int = 20, tool: str | None = None, role: str | None = None
         ) -> list[dict[str, Any]]:
    """The last `n` records (oldest first), optionally only one tool's or one role's."""
    if n < 1:
        raise InvalidArgumentError(f"--lines must be at least 1, not {n}.")
    records: list[dict[str, Any]] = []
    for path in sorted(audit_dir(workspace_root).glob("*.jsonl"), reverse=True):
        lines = path.read_text(encoding="utf-8").splitlines()
        for raw in reversed(lines):
            try:
                record = json.loads(raw)
            except json.JSONDecodeError:
                continue  # a line cut by a crash: skip it, keep the rest readable
            if tool and record.get("tool") != tool:
                continue
            if role and (record.get("caller") or {}).get("role") != role:
                continue
            records.append(record)
            if len(records) == n:
                return records[::-1]
    return records[::-1]
