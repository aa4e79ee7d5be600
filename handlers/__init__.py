"""Starlette receiver for signed import events."""
