"""Access policy as code: `policy.yaml` in the workspace says what each role may see and do.

    roles:
      analyst:
        domains: "*"                 # or a list of domain ids
        pii: refuse                  # refuse | allow: may the role read columns classified as PII?
        tools: "*"                   # or a list of tool names
      data-product-owner:
        domains: own                 # the domains of the caller's team
        pii: allow
      governance:
        domains: "*"
        pii: allow
    default_role: analyst            # the role of a caller who names none
    approval: [run_sql_on_pii, publish_contract, post_to_slack]

The policy is enforced inside the tools (search hides what a caller may not see, SQL validation refuses
PII columns and tables outside the caller's domains), never in prompts. A caller is a role, plus the
team for `own`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from meshpilot.errors import InvalidArgumentError, InvalidWorkspaceError, NotFoundError
from meshpilot.mesh import files
from meshpilot.mesh.model import MeshRef, Strict

POLICY_FILE = "policy.yaml"


class Role(Strict):
    domains: str | list[str] = "*"
    pii: str = Field("refuse", pattern="^(refuse|allow)$")
    tools: str | list[str] = "*"
    description: str | None = None


class PolicyFile(Strict):
    roles: dict[str, Role]
    default_role: str | None = Field(None, description="The role of a caller who names none.")
    approval: list[str] = []


@dataclass(frozen=True)
class Caller:
    role: str
    team: str | None = None


class Policy(BaseModel):
    roles: dict[str, Role]
    default_role: str | None = None
    approval: list[str] = []
    team_domains: dict[str, list[str]] = {}

    @classmethod
    def load(cls, workspace: Any) -> Policy | None:
        """The workspace's policy, or None when it has none (then nothing is restricted)."""
        path = Path(workspace.root) / POLICY_FILE
        if not path.exists():
            return None
        doc, problems = files.load_yaml(path, POLICY_FILE)
        if doc is not None:
            parsed, problems = doc.validate(PolicyFile)
        if problems:
            raise InvalidWorkspaceError(f"The access policy {path} is invalid.", problems=problems)
        from meshpilot.mesh.store import MeshStore

        with MeshStore.open(workspace) as store:
            rows = store.con.execute("SELECT owner, list(DISTINCT domain) FROM products WHERE owner IS NOT NULL "
                                     "GROUP BY owner").fetchall()
        return cls(roles=parsed.roles, default_role=parsed.default_role, approval=parsed.approval,
                   team_domains={team: domains for team, domains in rows})

    def role(self, caller: Caller) -> Role:
        role = self.roles.get(caller.role)
        if role is None:
            raise NotFoundError(f"No role '{caller.role}' in the access policy.",
                                hint=f"Roles: {', '.join(sorted(self.roles))}.")
        return role

    def domains(self, caller: Caller) -> set[str] | None:
        """The domains the caller may read; None means all."""
        allowed = self.role(caller).domains
        if allowed == "*":
            return None
        if allowed == "own":
            if not caller.team:
                raise InvalidArgumentError(f"The role '{caller.role}' reads its own team's domains: say which team.",
                                           hint="Pass --team (or MESHPILOT_TEAM).")
            return set(self.team_domains.get(caller.team, []))
        return set(allowed if isinstance(allowed, list) else [allowed])

    def may_read_pii(self, caller: Caller) -> bool:
        return self.role(caller).pii == "allow"

    def may_call(self, caller: Caller, tool: str) -> bool:
        tools = self.role(caller).tools
        return tools == "*" or tool in (tools if isinstance(tools, list) else [tools])

    def sql_guard(self, caller: Caller) -> SqlGuard:
        return SqlGuard(self, caller)


class SqlGuard:
    """The SQL validator's AccessPolicy for one caller: tables outside their domains and PII columns
    they may not read are refused, with the reason."""

    def __init__(self, policy: Policy, caller: Caller):
        self.caller = caller
        self.domains = policy.domains(caller)
        self.pii = policy.may_read_pii(caller)
        self.role = caller.role

    def check_table(self, table: Any) -> str | None:
        if self.domains is None or not table.ref:
            return None
        domain = MeshRef.parse(table.ref).domain
        return None if domain in self.domains else (
            f"role '{self.role}' may not read {table.name} (domain {domain}; allowed: {', '.join(sorted(self.domains)) or 'none'})")

    def check_column(self, table: Any, column: str) -> str | None:
        classification = table.classifications.get(column.lower()) if hasattr(table, "classifications") else None
        if classification and not self.pii:
            return (f"role '{self.role}' may not read {table.name}.{column}: it holds personal data ({classification}); "
                    "leave it out of the query, or ask governance for access")
        return None
