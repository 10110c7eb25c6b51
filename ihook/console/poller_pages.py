"""Pollers in the console: create and edit, poll now, the poll log."""
