"""The demo's one error: it cannot run or start, said in one line naming the fix (exit 1)."""

__all__ = ["DemoFailed"]


class DemoFailed(Exception):
    """The demo cannot run or start; the message is one line naming the fix."""
