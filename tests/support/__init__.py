"""Helpers shared by tests (imported as `support.*`)."""
