"""The ways in: MCP server, web chat, Slack bot, OpenLineage HTTP endpoint."""
