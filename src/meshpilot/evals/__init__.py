"""Evaluation suites measuring the layers above, run by `meshpilot evals run`."""
