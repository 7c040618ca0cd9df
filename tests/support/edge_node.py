"""A registry binder for unit tests of an edge node's sequencing: binds in memory, no broker.
The unit tests' ``node`` fixture (tests/unit/conftest.py) uses it."""

from __future__ import annotations

from collections.abc import Collection


class MemoryBinder:
    async def bind(self, key: str) -> None:
        return None

    async def bind_many(self, keys: Collection[str]) -> None:
        return None

    async def unbind(self, key: str) -> None:
        return None
