"""Cross-cutting guardrails applied at the edges: PII, prompt injection, access policy, audit."""
