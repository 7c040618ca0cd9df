"""Who is listening on this process, by routing key, and which keys are bound on the broker.

The first local member of a key binds the key; ``add`` returns once the binding is in place,
so a caller that goes on to read Postgres knows that everything committed from then on will
also reach it live (invariant 4). Binds of many keys at once (a reconnect storm) travel
together: each waits for one round trip of the batch it joined, not for the binds queued
before it.

When the last member leaves, the key stays bound for ``linger`` seconds: a user whose socket
drops usually comes back within seconds (a reload, a network change, a deploy), and a key
still bound makes that handshake cheaper and spares the broker an unbind and a bind. A key
that nobody came back for is unbound in the background, one key at a time, oldest first: a
mass disconnect costs a bounded trickle of work, linear in the keys, rather than a burst. A
lingering binding only brings frames that no local socket wants, which are dropped; it never
makes a socket miss one, since a key is bound, lingering or not, whenever it has members.

Adds and removes of one key are serialised; different keys proceed independently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Collection, Hashable, Iterator
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from producers.waiting import cancel_and_wait, wait_event

log = logging.getLogger("notify.edge")

M = TypeVar("M", bound=Hashable)


class Binder(Protocol):
    async def bind(self, key: str) -> None:
        """Return once ``key`` is bound."""

    async def bind_many(self, keys: Collection[str]) -> None:
        """Return once every key is bound."""

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
    def __init__(self, binder: Binder, linger: float = 0.0) -> None:
        self._binder = binder
        self.linger = linger
        self._entries: dict[str, _Entry[M]] = {}
        # Keys with members, by kind (what comes before the key's first dot: user, room).
        self.active: Counter[str] = Counter()
        # Bound keys without members, by the loop time they became so, oldest first.
        self._idle: OrderedDict[str, float] = OrderedDict()
        self._idle_changed = asyncio.Event()
        self._sweeper: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def _locked(self, key: str, create: bool = False) -> AsyncIterator[_Entry[M] | None]:
        """The key's entry (made if ``create``), with its lock held; None if there is none.
        The entry is dropped afterwards if nothing is left in it."""
        entry = self._entries.setdefault(key, _Entry()) if create else self._entries.get(key)
        if entry is None:
            yield None
            return
        entry.users += 1
        try:
            async with entry.lock:
                yield entry
        finally:
            entry.users -= 1
            self._drop_if_idle(key, entry)

    async def add(self, key: str, member: M) -> None:
        async with self._locked(key, create=True) as entry:
            assert entry is not None
            if not entry.bound:
                await self._binder.bind(key)
                entry.bound = True
            if not entry.members:
                self.active[_kind(key)] += 1
            entry.members.add(member)
            self._idle.pop(key, None)

    async def remove(self, key: str, member: M) -> None:
        async with self._locked(key) as entry:
            if entry is None:
                return
            if member not in entry.members:
                return
            entry.members.discard(member)
            if not entry.members:
                self.active[_kind(key)] -= 1
            if entry.members or not entry.bound:
                return
            if self.linger > 0:
                self._idle[key] = asyncio.get_running_loop().time()
                self._idle.move_to_end(key)
                self._start_sweeper()
                return
            entry.bound = False
            await self._binder.unbind(key)

    def _drop_if_idle(self, key: str, entry: _Entry[M]) -> None:
        idle = entry.users == 0 and not entry.members and not entry.bound
        if idle and self._entries.get(key) is entry:
            del self._entries[key]

    # -- lingering keys --------------------------------------------------------------------

    def _start_sweeper(self) -> None:
        self._idle_changed.set()
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.create_task(self._sweep(), name="edge-unbinds")

    async def _sweep(self) -> None:
        """Unbind keys that stayed without members for ``linger`` seconds, one at a time."""
        loop = asyncio.get_running_loop()
        while True:
            if not self._idle:
                self._idle_changed.clear()
                await self._idle_changed.wait()
                continue
            key, since = next(iter(self._idle.items()))
            wait = since + self.linger - loop.time()
            if wait > 0:
                self._idle_changed.clear()
                await wait_event(self._idle_changed, wait)
                continue
            del self._idle[key]
            await self._unbind_idle(key)

    async def _unbind_idle(self, key: str) -> None:
        async with self._locked(key) as entry:
            if entry is None or entry.members or not entry.bound or key in self._idle:
                return  # gone, a member came back, or the key was re-queued meanwhile
            entry.bound = False
            try:
                await self._binder.unbind(key)
            except Exception as exc:  # noqa: BLE001 - the sweeper must go on
                # The broker is away: the binding went with the queue (which is declared
                # again without it), or it stays and its frames are dropped here.
                log.debug("could not unbind %s: %s", key, exc)

    # -- the broker connection -------------------------------------------------------------

    async def rebind(self) -> int:
        """After the queue was lost and a new one declared (with none of these bindings):
        bind every key that has members, in one batch; forget the lingering ones. Returns how
        many keys were bound."""
        wanted = [key for key, entry in self._entries.items() if entry.members]
        for key in list(self._idle):
            entry = self._entries.get(key)
            del self._idle[key]
            if entry is not None and not entry.members:
                entry.bound = False
                self._drop_if_idle(key, entry)
        if wanted:
            await self._binder.bind_many(wanted)
        for key in wanted:
            entry = self._entries.get(key)
            if entry is not None:
                entry.bound = True
        return len(wanted)

    async def close(self) -> None:
        await cancel_and_wait(self._sweeper)
        self._sweeper = None

    # -- reading -----------------------------------------------------------------------------

    def members(self, key: str) -> set[M]:
        entry = self._entries.get(key)
        return entry.members if entry is not None else set()

    def active_keys(self) -> Iterator[str]:
        return (key for key, entry in self._entries.items() if entry.members)

    def lingering(self) -> int:
        """Keys still bound without a member."""
        return len(self._idle)

    def __contains__(self, key: str) -> bool:
        return bool(self.members(key))


def _kind(key: str) -> str:
    return key.partition(".")[0]
