"""Stores: where alerts, work queues and state live. :func:`open_store` picks one by URL."""

from __future__ import annotations

from pathlib import Path

from alert_router.store.base import Store


def create_store(url: str) -> Store:
    """Build the store for ``url`` (``sqlite:///PATH``; ``postgresql://…`` for several replicas)."""
    if url.startswith("sqlite:///"):
        from alert_router.store.sqlite import SQLiteStore

        return SQLiteStore(Path(url[len("sqlite:///") :]))
    if url.startswith(("postgresql://", "postgres://")):
        raise ValueError("the PostgreSQL store is not available in this version")
    raise ValueError(f"unsupported store URL {url!r}")


__all__ = ["Store", "create_store"]
