"""Access policy as code: `policy.yaml` in the workspace says what each role may see and do.

    roles:
      analyst:
        domains: "*"                 # or a list of domain ids
        pii: refuse                  # refuse | mask | allow, or per PII class:
                                     #   {EMAIL_ADDRESS: mask, LOCATION: allow, "*": refuse}
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
PII columns and tables outside the caller's domains) and, for SQL, by the engine: each query runs over a
relation set holding only what the role may read (tools/sql_engines.py), never in prompts. A caller is
a role, plus the team for `own`.

`mask` lets queries use a PII column whose values come back as stable tokens (`EMAIL_ADDRESS#3f9a...`):
joins and counts work, the values and any predicate on them reveal nothing. With `run_sql_on_pii` in
`approval`, a role with blanket PII access (`pii: allow`) reads masked tokens until a human approves the
call; classes granted by name (`classifications`, or a class in a `pii:` map) need no approval.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, Field

from meshpilot.errors import InvalidArgumentError, InvalidWorkspaceError, NotFoundError
from meshpilot.mesh import files
from meshpilot.mesh.model import MeshRef, Strict

POLICY_FILE = "policy.yaml"


PII_TREATMENTS = ("refuse", "mask", "allow")
_TREATMENT = "^(refuse|mask|allow)$"


class Role(Strict):
    domains: str | list[str] = "*"
    products: str | list[str] = Field("*", description="Within those domains, only these products (mesh:// refs).")
    pii: Annotated[str, Field(pattern=_TREATMENT)] | dict[str, Annotated[str, Field(pattern=_TREATMENT)]] = Field(
        "refuse", description="refuse | mask | allow, or a map from PII class (or '*') to one of them.")
    classifications: list[str] = Field(
        [], description="PII classes the role may read even with pii: refuse (e.g. LOCATION for city-level work).")
    tools: str | list[str] = "*"
    description: str | None = None


class Token(Strict):
    """A bearer token for the HTTP servers (MCP, web): only its SHA-256 is stored."""

    sha256: str = Field(pattern="^[0-9a-f]{64}$")
    role: str
    team: str | None = None
    name: str = Field(description="Whose token it is, for the audit log and for revoking it.")


class PolicyFile(Strict):
    roles: dict[str, Role]
    default_role: str | None = Field(None, description="The role of a caller who names none.")
    approval: list[str] = []
    tokens: list[Token] = []


@dataclass(frozen=True)
class Caller:
    role: str
    team: str | None = None


class Policy(BaseModel):
    roles: dict[str, Role]
    default_role: str | None = None
    approval: list[str] = []
    tokens: list[Token] = []
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
        unknown = sorted({t.role for t in parsed.tokens} - set(parsed.roles))
        if unknown:
            raise InvalidWorkspaceError(f"The access policy {path} gives tokens unknown roles: {', '.join(unknown)}.",
                                        hint=f"Roles: {', '.join(sorted(parsed.roles))}.")
        return cls(roles=parsed.roles, default_role=parsed.default_role, approval=parsed.approval, tokens=parsed.tokens,
                   team_domains={team: domains for team, domains in rows})

    def caller_for_token(self, token: str) -> tuple[Caller, str] | None:
        """The caller a bearer token stands for, and the token's name; None for an unknown token."""
        digest = hashlib.sha256(token.encode()).hexdigest()
        for entry in self.tokens:
            if hmac.compare_digest(entry.sha256, digest):
                return Caller(role=entry.role, team=entry.team), entry.name
        return None

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

    def products(self, caller: Caller) -> set[str] | None:
        """The products the caller may read; None means every product of their domains."""
        allowed = self.role(caller).products
        return None if allowed == "*" else set(allowed if isinstance(allowed, list) else [allowed])

    def visible(self, caller: Caller, ref: str) -> bool:
        """Whether the caller may see a product, dataset or column reference."""
        parsed = MeshRef.parse(ref)
        domains, products = self.domains(caller), self.products(caller)
        return (domains is None or parsed.domain in domains) and (
            products is None or str(parsed.product_ref()) in products)

    def pii_treatment(self, caller: Caller, classification: str | None) -> str:
        """How the caller sees a column of this PII class: allow, mask or refuse (allow when unclassified)."""
        if not classification:
            return "allow"
        role = self.role(caller)
        if classification in role.classifications:
            return "allow"
        if isinstance(role.pii, dict):
            return role.pii.get(classification, role.pii.get("*", "refuse"))
        return role.pii

    def may_read_pii(self, caller: Caller) -> bool:
        """Whether the caller may see every class of personal data in the clear (the output guard's test)."""
        pii = self.role(caller).pii
        return all(v == "allow" for v in pii.values()) and "*" in pii if isinstance(pii, dict) else pii == "allow"

    def pii_needs_approval(self) -> bool:
        return "run_sql_on_pii" in self.approval

    def may_call(self, caller: Caller, tool: str) -> bool:
        tools = self.role(caller).tools
        return tools == "*" or tool in (tools if isinstance(tools, list) else [tools])

    def sql_guard(self, caller: Caller, approved: bool = False) -> SqlGuard:
        return SqlGuard(self, caller, approved)

    def every_sql_guard(self) -> list[tuple[str, SqlGuard]]:
        """(label, guard) for every way a caller can read SQL: each role, each team of a role that reads its
        own team's domains, and each of those once approved where approval changes what it reads."""
        guards = []
        for name, role in sorted(self.roles.items()):
            callers = [(f"{name}@{team}", Caller(name, team)) for team in sorted(self.team_domains)] \
                if role.domains == "own" else [(name, Caller(name))]
            for label, caller in callers:
                guards.append((label, self.sql_guard(caller)))
                if self.pii_needs_approval() and self.may_read_pii(caller):
                    guards.append((f"{label} (approved)", self.sql_guard(caller, approved=True)))
        return guards


class SqlGuard:
    """The SQL validator's and the engine's AccessPolicy for one caller: tables outside their domains and
    PII columns they may not read are refused, with the reason; `treatment` says how the engine shows each
    column. `approved` is whether a human approved reading PII in the clear for this call."""

    def __init__(self, policy: Policy, caller: Caller, approved: bool = False):
        self.policy = policy
        self.caller = caller
        self.domains = policy.domains(caller)
        self.products = policy.products(caller)
        self.role = caller.role
        self.approved = approved
        self.may_read_pii = policy.may_read_pii(caller)

    def require_visible(self, ref: str) -> None:
        """Refuse a product or dataset outside the caller's domains and products. A dataset lineage
        events name that no product holds (`<namespace>/<name>`) is in no domain: only a caller who may
        see every domain sees it."""
        if not ref.startswith("mesh://"):
            if self.domains is not None or self.products is not None:
                raise InvalidArgumentError(f"Your role may not see {ref}: it is in no data product.",
                                           hint="Ask a platform engineer to assign it (`meshpilot datasets assign`).")
            return
        parsed = MeshRef.parse(ref)
        if self.domains is not None and parsed.domain not in self.domains:
            raise InvalidArgumentError(f"Your role may not see the domain '{parsed.domain}'.",
                                       hint=f"Visible domains: {', '.join(sorted(self.domains)) or 'none'}.")
        if self.products is not None and str(parsed.product_ref()) not in self.products:
            raise InvalidArgumentError(f"Your role may not see the product {parsed.product_ref()}.",
                                       hint=f"Visible products: {', '.join(sorted(self.products)) or 'none'}.")

    @property
    def cache_key(self) -> tuple:
        return ("sql-guard", self.caller.role, self.caller.team, self.approved)

    def approve(self) -> SqlGuard:
        """The same caller with reading PII in the clear approved (for one approved call)."""
        return SqlGuard(self.policy, self.caller, approved=True)

    def treatment(self, table: Any, column: str) -> str:
        classification = table.classifications.get(column.lower()) if hasattr(table, "classifications") else None
        chosen = self.policy.pii_treatment(self.caller, classification)
        if chosen == "allow" and self._approval_gated(classification):
            return "mask"  # until a human approves, the engine shows tokens, whatever the parser saw
        return chosen

    def _approval_gated(self, classification: str | None) -> bool:
        """Blanket PII access waits for approval (`run_sql_on_pii`); a class granted by name does not."""
        return bool(classification) and self.may_read_pii and self.policy.pii_needs_approval() and not self.approved

    def pending_approval(self, table: Any, column: str) -> bool:
        """Whether reading this column in the clear waits for an approval."""
        classification = table.classifications.get(column.lower()) if hasattr(table, "classifications") else None
        return self._approval_gated(classification) and self.policy.pii_treatment(self.caller, classification) == "allow"

    def check_table(self, table: Any) -> str | None:
        if not table.ref:
            return None
        ref = MeshRef.parse(table.ref)
        if self.domains is not None and ref.domain not in self.domains:
            return (f"role '{self.role}' may not read {table.name} (domain {ref.domain}; allowed: "
                    f"{', '.join(sorted(self.domains)) or 'none'})")
        if self.products is not None and str(ref.product_ref()) not in self.products:
            return (f"role '{self.role}' may not read {table.name} (product {ref.product_ref()}; allowed: "
                    f"{', '.join(sorted(self.products)) or 'none'})")
        return None

    def check_column(self, table: Any, column: str) -> str | None:
        classification = table.classifications.get(column.lower()) if hasattr(table, "classifications") else None
        if classification and self.policy.pii_treatment(self.caller, classification) == "refuse":
            return (f"role '{self.role}' may not read {table.name}.{column}: it holds personal data ({classification}); "
                    "leave it out of the query, or ask governance for access")
        return None


def create_token(workspace: Any, role: str, name: str, team: str | None = None) -> str:
    """A new bearer token for `role`: its hash is added to policy.yaml (validated, atomic); the token is
    returned once and stored nowhere."""
    path = Path(workspace.root) / POLICY_FILE
    policy = Policy.load(workspace)
    if policy is None:
        raise InvalidWorkspaceError("This workspace has no access policy, so tokens have no role to map to.",
                                    hint=f"Write {POLICY_FILE} first (see docs/security.md).")
    policy.role(Caller(role=role, team=team))
    if any(t.name == name for t in policy.tokens):
        raise InvalidArgumentError(f"A token named '{name}' exists already.", hint="Pick another name.")
    token = secrets.token_urlsafe(32)
    doc, _ = files.load_yaml(path, POLICY_FILE)
    data = dict(doc.data)
    entry = {"sha256": hashlib.sha256(token.encode()).hexdigest(), "role": role, "name": name}
    if team:
        entry["team"] = team
    data["tokens"] = [*(data.get("tokens") or []), entry]
    PolicyFile.model_validate(data)
    workspace.apply({POLICY_FILE: files.dump_yaml(data)})
    return token
