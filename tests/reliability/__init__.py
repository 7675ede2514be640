"""Reliability tests, one module per category of ../shared/RELIABILITY.md (docs/reliability.md)."""
