"""Workflows in the console: the YAML editor, live validation, test runs and versions."""
