"""Failures after start-up that end the gateway with one line and a non-zero exit (never half-alive)."""

from __future__ import annotations

__all__ = ["ServingFailed"]


class ServingFailed(Exception):
    """A part the gateway cannot serve without failed for good after start-up (a plugin's host
    server, such as the SNTP responder whose serving thread keeps failing); the message is one
    line. A host server raises it from `run` instead of going on answering nothing; the
    command prints it and exits 1."""
