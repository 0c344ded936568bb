"""LangGraph agents that decide which tools to call: the copilot and the SQL repair loop."""
