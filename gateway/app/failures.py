"""Failures after start-up that end the gateway with one line and a non-zero exit (never half-alive)."""

from __future__ import annotations

__all__ = ["ServingFailed"]


class ServingFailed(Exception):
    """A part the gateway cannot serve without (the SNTP responder's thread) failed for good; the
    message is one line. The command exits 1 rather than go on answering nothing."""
