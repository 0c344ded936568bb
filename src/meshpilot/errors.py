"""Errors a user can hit.

Each one renders as one clear line (plus one line per problem) in the CLI; later front ends turn them
into structured MCP errors and HTTP 4xx responses. Anything else escaping is a bug.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one input, located as precisely as we can."""

    source: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.message}"


class MeshpilotError(Exception):
    """Base of every error meant for the user: the message says what, where and how to fix it."""

    def __init__(self, message: str, *, hint: str | None = None, problems: list[Problem] | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.problems = list(problems or [])

    def __str__(self) -> str:
        lines = [self.message, *(f"  {p}" for p in self.problems)]
        if self.hint:
            lines.append(self.hint)
        return "\n".join(lines)


class WorkspaceNotFoundError(MeshpilotError):
    """No workspace at the path the user pointed to."""


class InvalidWorkspaceError(MeshpilotError):
    """The workspace's files do not validate; `problems` lists each one with file and line."""


class ImportRejectedError(MeshpilotError):
    """An import source is malformed; nothing of it was written."""


class ConnectorError(MeshpilotError):
    """An external system (OpenMetadata server...) could not be reached or answered badly."""


class NotFoundError(MeshpilotError):
    """A product, dataset or other entity the user named does not exist."""


class InvalidArgumentError(MeshpilotError):
    """A tool was called with an argument it cannot use (an empty query, an unknown filter value...)."""


class InvalidReferenceError(MeshpilotError):
    """A `mesh://` identifier is malformed."""
