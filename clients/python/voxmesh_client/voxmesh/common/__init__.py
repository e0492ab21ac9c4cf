"""Shared messages."""
