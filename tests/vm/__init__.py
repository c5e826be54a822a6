"""Helpers for hostclock tests that boot a real Linux guest under QEMU."""
