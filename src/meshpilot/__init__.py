"""Meshpilot: a grounded copilot for data-mesh data products."""
