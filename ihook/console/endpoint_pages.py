"""Incoming endpoints in the console: the create wizard and an endpoint's page."""
