"""Outgoing webhooks in the console: the wizard, event types, the delivery log."""
