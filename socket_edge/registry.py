"""Who is listening on this process, by routing key: a pure in-memory structure.

The first local member of a key binds the key on the broker, the last one to leave unbinds
it. Binding is awaited before ``add`` returns, so a caller that goes on to read Postgres knows
that everything committed from then on will also reach it live (invariant 4).

Adds and removes of one key are serialised; different keys proceed independently.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

M = TypeVar("M", bound=Hashable)


class Binder(Protocol):
    async def bind(self, key: str) -> None: ...

    async def unbind(self, key: str) -> None: ...


@dataclass
class _Entry(Generic[M]):
    members: set[M] = field(default_factory=set)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Callers holding or waiting for the lock: the entry is not dropped while any remain,
    # so two callers of one key never end up holding two different locks.
    users: int = 0
    bound: bool = False


class Registry(Generic[M]):
    def __init__(self, binder: Binder) -> None:
        self._binder = binder
        self._entries: dict[str, _Entry[M]] = {}

    async def add(self, key: str, member: M) -> None:
        entry = self._entries.setdefault(key, _Entry())
        entry.users += 1
        try:
            async with entry.lock:
                if not entry.bound:
                    await self._binder.bind(key)
                    entry.bound = True
                entry.members.add(member)
        finally:
            entry.users -= 1
            self._drop_if_idle(key, entry)

    async def remove(self, key: str, member: M) -> None:
        entry = self._entries.get(key)
        if entry is None:
            return
        entry.users += 1
        try:
            async with entry.lock:
                entry.members.discard(member)
                if not entry.members and entry.bound:
                    entry.bound = False
                    await self._binder.unbind(key)
        finally:
            entry.users -= 1
            self._drop_if_idle(key, entry)

    def _drop_if_idle(self, key: str, entry: _Entry[M]) -> None:
        idle = entry.users == 0 and not entry.members and not entry.bound
        if idle and self._entries.get(key) is entry:
            del self._entries[key]

    def members(self, key: str) -> set[M]:
        entry = self._entries.get(key)
        return entry.members if entry is not None else set()

    def active_keys(self) -> Iterator[str]:
        return (key for key, entry in self._entries.items() if entry.members)

    def __contains__(self, key: str) -> bool:
        return bool(self.members(key))
