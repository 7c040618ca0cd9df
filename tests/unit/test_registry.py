"""The edge's registry: first member binds, last member unbinds, under any interleaving."""

from __future__ import annotations

import asyncio
import random

import pytest

from socket_edge.registry import Registry


class RecordingBinder:
    """A broker stand-in whose bind and unbind take a random number of loop turns."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.bound: set[str] = set()
        self.calls: list[tuple[str, str]] = []

    async def _turns(self) -> None:
        for _ in range(self.rng.randint(0, 3)):
            await asyncio.sleep(0)

    async def bind(self, key: str) -> None:
        await self._turns()
        assert key not in self.bound, f"{key} bound twice"
        self.bound.add(key)
        self.calls.append(("bind", key))

    async def unbind(self, key: str) -> None:
        await self._turns()
        assert key in self.bound, f"{key} unbound while not bound"
        self.bound.discard(key)
        self.calls.append(("unbind", key))


async def test_first_member_binds_and_last_unbinds() -> None:
    binder = RecordingBinder(random.Random(0))
    registry: Registry[str] = Registry(binder)
    await registry.add("user.a", "s1")
    await registry.add("user.a", "s2")
    await registry.remove("user.a", "s1")
    assert binder.bound == {"user.a"}
    await registry.remove("user.a", "s2")
    assert binder.calls == [("bind", "user.a"), ("unbind", "user.a")]
    assert list(registry.active_keys()) == []


async def test_removing_an_unknown_member_is_harmless() -> None:
    registry: Registry[str] = Registry(RecordingBinder(random.Random(0)))
    await registry.remove("user.nobody", "s1")
    assert "user.nobody" not in registry


@pytest.mark.parametrize("seed", range(200))
async def test_concurrent_adds_and_removes_keep_binding_and_members_in_step(seed: int) -> None:
    rng = random.Random(seed)
    binder = RecordingBinder(rng)
    registry: Registry[int] = Registry(binder)
    keys = [f"user.{i}" for i in range(3)]

    async def session(member: int) -> None:
        key = rng.choice(keys)
        await registry.add(key, member)
        # While a member is registered, its key must be bound on the broker.
        assert key in binder.bound
        for _ in range(rng.randint(0, 4)):
            await asyncio.sleep(0)
        assert key in binder.bound
        await registry.remove(key, member)

    await asyncio.gather(*(session(m) for m in range(30)))
    assert binder.bound == set()
    assert list(registry.active_keys()) == []
    assert registry._entries == {}
