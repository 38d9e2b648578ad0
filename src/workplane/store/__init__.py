"""Persistence: tables, the per-dialect engine set-up, migrations and the row-level data functions."""
