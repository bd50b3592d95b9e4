"""Fixtures for the feature tests: the ``cli`` fixture of tests/transfer, reused."""

from __future__ import annotations

from featkit import cli

__all__ = ["cli"]
