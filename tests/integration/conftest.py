"""Fixtures shared by the integration tests (the search service on loopback)."""

from tests.search_service import embedder, start_service

__all__ = ["embedder", "start_service"]
