"""Governed prompts: every system prompt, tool description and template is a YAML file with an owner,
a semver version, a status and an approval, and approved texts are locked by content hash.

    id: sql_generate
    version: 1.1.0
    owner: data-platform
    status: approved            # draft | approved | deprecated
    approved_by: governance-lead
    approved_on: "2026-11-27"
    description: ...
    changelog: [{version: 1.1.0, change: ...}]
    model: {temperature: 0, max_tokens: 512}
    variables: [dialect, schema, question, repair]
    gated_by: [sql]             # the eval suites that must pass before a new version is approved
    template: |
      ...

`prompts.lock` holds, for each approved id@version, the SHA-256 of its content (template, variables,
model parameters). Lint fails when an approved prompt's content no longer matches its lock entry (it
was edited without a version bump) or has no entry. At run time a tampered approved prompt is refused,
and so is a draft unless drafts are explicitly allowed (MESHPILOT_ALLOW_DRAFT_PROMPTS=1, for
development). `approve` archives the approved text under `archive/<id>@<version>.yaml`, which `diff`
compares against.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import string
from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError

from meshpilot.errors import InvalidArgumentError, MeshpilotError, NotFoundError

LOCK_FILE = "prompts.lock"
ALLOW_DRAFTS_ENV = "MESHPILOT_ALLOW_DRAFT_PROMPTS"
PROMPTS_DIR_ENV = "MESHPILOT_PROMPTS_DIR"


class PromptError(MeshpilotError):
    """A prompt is missing, malformed, tampered with, or used wrongly."""


class Change(BaseModel):
    version: str
    change: str


class Prompt(BaseModel):
    id: str = Field(pattern=r"^[a-z][a-z0-9_.-]*$")
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    owner: str
    status: str = Field(pattern="^(draft|approved|deprecated)$")
    approved_by: str | None = None
    approved_on: str | None = None
    description: str
    changelog: list[Change] = []
    model: dict[str, Any] = {}
    variables: list[str] = []
    gated_by: list[str] = []
    user_facing: bool = False
    template: str

    model_config = {"extra": "forbid"}

    @property
    def ref(self) -> str:
        """How answers cite the prompt they used: id@version."""
        return f"{self.id}@{self.version}"

    @property
    def content_hash(self) -> str:
        content = {"template": self.template, "variables": sorted(self.variables), "model": self.model}
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()

    def render(self, **values: Any) -> str:
        """The template filled strictly: every declared variable must be given, and nothing else."""
        missing = sorted(set(self.variables) - set(values))
        unknown = sorted(set(values) - set(self.variables))
        if missing or unknown:
            raise PromptError(f"Prompt {self.ref} rendered with the wrong variables: "
                              + "; ".join(filter(None, [missing and f"missing {', '.join(missing)}",
                                                        unknown and f"unknown {', '.join(unknown)}"])) + ".",
                              hint=f"It declares: {', '.join(self.variables) or 'none'}.")
        return self.template.format(**values)

    def template_fields(self) -> set[str]:
        return {name for _, name, _, _ in string.Formatter().parse(self.template) if name}


# libyaml's parser where PyYAML has it (its wheels do): an MCP server or agent reads every prompt as it
# starts, 0.15 s with the pure-Python one.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class LintProblem:
    prompt: str
    message: str

    def __str__(self) -> str:
        return f"{self.prompt}: {self.message}"


class Registry:
    def __init__(self, directory: Path):
        self.directory = Path(directory)

    @classmethod
    def default(cls) -> Registry:
        override = os.environ.get(PROMPTS_DIR_ENV)
        return cls(Path(override) if override else Path(str(files("meshpilot.prompts"))))

    # --- reading ----------------------------------------------------------------------------------------

    def paths(self) -> list[Path]:
        return sorted(p for p in self.directory.glob("*.yaml")) + sorted(self.directory.glob("tools/*.yaml"))

    def read(self, path: Path) -> Prompt:
        try:
            data = yaml.load(path.read_text(encoding="utf-8"), Loader=_SAFE_LOADER)
            return Prompt.model_validate(data)
        except yaml.YAMLError as exc:
            raise PromptError(f"The prompt file {path} is not valid YAML: {exc}") from exc
        except ValidationError as exc:
            problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
            raise PromptError(f"The prompt file {path} is invalid.", problems=problems) from exc

    def all(self) -> list[Prompt]:
        return [self.read(path) for path in self.paths()]

    def path_of(self, prompt_id: str) -> Path:
        for candidate in (self.directory / f"{prompt_id}.yaml", self.directory / "tools" / f"{prompt_id}.yaml"):
            if candidate.exists():
                return candidate
        known = [p.stem for p in self.paths()]
        close = difflib.get_close_matches(prompt_id, known, n=1)
        raise NotFoundError(f"No prompt '{prompt_id}'.",
                            hint=f"Did you mean '{close[0]}'?" if close else f"Prompts: {', '.join(known)}.")

    def lock(self) -> dict[str, dict[str, str]]:
        path = self.directory / LOCK_FILE
        if not path.exists():
            return {}
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise PromptError(f"{path} is not valid JSON: {exc}",
                              hint="Restore it from version control; it is written by `meshpilot prompts approve`.") from exc

    # --- governance -------------------------------------------------------------------------------------

    def lint(self) -> list[LintProblem]:
        problems: list[LintProblem] = []
        lock = self.lock()
        seen: set[str] = set()
        for path in self.paths():
            try:
                prompt = self.read(path)
            except PromptError as exc:
                problems.append(LintProblem(path.name, exc.message + (" " + "; ".join(map(str, exc.problems)) if exc.problems else "")))
                continue
            if prompt.id in seen:
                problems.append(LintProblem(prompt.id, f"defined twice (again in {path.name})"))
            seen.add(prompt.id)
            if path.stem != prompt.id:
                problems.append(LintProblem(prompt.id, f"file name {path.name} does not match its id"))
            fields = prompt.template_fields()
            if fields != set(prompt.variables):
                problems.append(LintProblem(prompt.ref, "declared variables " + str(sorted(prompt.variables))
                                            + " differ from the template's " + str(sorted(fields))))
            if prompt.changelog and prompt.changelog[0].version != prompt.version:
                problems.append(LintProblem(prompt.ref, f"the changelog's latest entry is {prompt.changelog[0].version}, "
                                                        f"not {prompt.version}"))
            problems.extend(self._check_lock(prompt, lock))
        return problems

    def _check_lock(self, prompt: Prompt, lock: dict[str, dict[str, str]]) -> list[LintProblem]:
        if prompt.status != "approved":
            return []
        if not prompt.approved_by or not prompt.approved_on:
            return [LintProblem(prompt.ref, "approved without approved_by and approved_on")]
        entry = lock.get(prompt.ref)
        if entry is None:
            return [LintProblem(prompt.ref, "approved but not in prompts.lock (run `meshpilot prompts approve`)")]
        if entry.get("sha256") != prompt.content_hash:
            return [LintProblem(prompt.ref, "its text changed since it was approved: bump the version and approve "
                                            "the new one (approved prompts are immutable)")]
        return []

    def load(self, prompt_id: str, allow_draft: bool | None = None) -> Prompt:
        """A prompt for use at run time: tampered approved prompts and (unless allowed) drafts are refused."""
        prompt = self.read(self.path_of(prompt_id))
        if allow_draft is None:
            allow_draft = os.environ.get(ALLOW_DRAFTS_ENV) == "1"
        if prompt.status == "draft" and not allow_draft:
            raise PromptError(f"Prompt {prompt.ref} is a draft and drafts are not used at run time.",
                              hint=f"Approve it (`meshpilot prompts approve {prompt.id} --by NAME`), or set "
                                   f"{ALLOW_DRAFTS_ENV}=1 while developing.")
        if prompt.status == "deprecated":
            raise PromptError(f"Prompt {prompt.ref} is deprecated.", hint="Use its successor named in the changelog.")
        problems = self._check_lock(prompt, self.lock())
        if problems:
            raise PromptError(f"Prompt {prompt.ref} was refused: {problems[0].message}.",
                              hint="Restore the approved text or approve a new version.")
        return prompt

    def approve(self, prompt_id: str, by: str, on: str | None = None) -> Prompt:
        """Mark the prompt approved by `by`, lock its content hash and archive its text."""
        if not by.strip():
            raise InvalidArgumentError("Say who approves the prompt (--by).")
        path = self.path_of(prompt_id)
        prompt = self.read(path)
        lock = self.lock()
        existing = lock.get(prompt.ref)
        if existing and existing["sha256"] != prompt.content_hash:
            raise PromptError(f"{prompt.ref} was already approved with different content.",
                              hint="Bump the version (and add a changelog entry) before approving the new text.")
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_SAFE_LOADER)
        data.update(status="approved", approved_by=by, approved_on=on or date.today().isoformat())
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110)
        path.write_text(text, encoding="utf-8")
        approved = self.read(path)
        lock[approved.ref] = {"sha256": approved.content_hash, "approved_by": by, "approved_on": approved.approved_on}
        (self.directory / LOCK_FILE).write_text(json.dumps(dict(sorted(lock.items())), indent=2) + "\n", encoding="utf-8")
        archive = self.directory / "archive"
        archive.mkdir(exist_ok=True)
        (archive / f"{approved.ref}.yaml").write_text(text, encoding="utf-8")
        return approved

    def diff(self, prompt_id: str, against: str | None = None) -> str:
        """Unified diff from an archived approved version (the latest by default) to the current file."""
        path = self.path_of(prompt_id)
        archived = sorted((self.directory / "archive").glob(f"{prompt_id}@*.yaml"),
                          key=lambda p: tuple(int(x) for x in p.stem.split("@")[1].split(".")))
        if against:
            archived = [p for p in archived if p.stem == f"{prompt_id}@{against}"]
        if not archived:
            raise NotFoundError(f"No archived approved version of '{prompt_id}'" + (f" at {against}" if against else "") + ".",
                                hint="Versions are archived by `meshpilot prompts approve`.")
        old = archived[-1]
        return "".join(difflib.unified_diff(old.read_text().splitlines(True), path.read_text().splitlines(True),
                                            fromfile=old.name, tofile=path.name))


@cache
def _default_registry() -> Registry:
    return Registry.default()


def load(prompt_id: str) -> Prompt:
    """A governed prompt from the installed package (refused when tampered with or a draft)."""
    return _default_registry().load(prompt_id)
