"""Prompts as versioned, owned, approved files: one YAML per prompt id, shipped inside the package."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

import yaml
from pydantic import BaseModel


class Prompt(BaseModel):
    id: str
    version: int
    owner: str
    approved_by: str
    approved_on: str
    description: str
    gated_by: list[str] = []
    template: str

    @property
    def ref(self) -> str:
        """How answers cite the prompt they used: id@version."""
        return f"{self.id}@{self.version}"

    def render(self, **values: str) -> str:
        return self.template.format(**values)


@cache
def load(prompt_id: str) -> Prompt:
    text = files("meshpilot.prompts").joinpath(f"{prompt_id}.yaml").read_text(encoding="utf-8")
    return Prompt.model_validate(yaml.safe_load(text))
