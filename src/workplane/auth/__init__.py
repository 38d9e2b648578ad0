"""Credentials and tokens."""
