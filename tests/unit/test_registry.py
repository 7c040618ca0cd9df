"""The edge's registry: first member binds, last member unbinds (at once, or after the key
lingered), under any interleaving; a restored broker connection gets every wanted key bound
again."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Collection

import pytest

from socket_edge.registry import Registry


class RecordingBinder:
    """A broker stand-in whose bind and unbind take a random number of loop turns."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.bound: set[str] = set()
        self.calls: list[tuple[str, str]] = []
        self.changed = asyncio.Event()

    async def _turns(self) -> None:
        for _ in range(self.rng.randint(0, 3)):
            await asyncio.sleep(0)

    async def bind(self, key: str) -> None:
        await self._turns()
        assert key not in self.bound, f"{key} bound twice"
        self.bound.add(key)
        self.calls.append(("bind", key))
        self.changed.set()

    async def bind_many(self, keys: Collection[str]) -> None:
        await self._turns()
        self.bound.update(keys)
        self.calls.extend(("bind", key) for key in keys)
        self.changed.set()

    async def until(self, done: Callable[[], bool]) -> None:
        async def wait() -> None:
            while not done():
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(wait(), 5)

    async def unbind(self, key: str) -> None:
        await self._turns()
        assert key in self.bound, f"{key} unbound while not bound"
        self.bound.discard(key)
        self.calls.append(("unbind", key))
        self.changed.set()


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


async def test_a_key_lingers_after_its_last_member_and_a_member_back_in_time_needs_no_bind() -> (
    None
):
    binder = RecordingBinder(random.Random(0))
    registry: Registry[str] = Registry(binder, linger=3_600)
    await registry.add("user.a", "s1")
    await registry.remove("user.a", "s1")
    assert binder.bound == {"user.a"} and registry.lingering() == 1
    assert "user.a" not in registry  # no member: nothing is delivered to it
    await registry.add("user.a", "s2")
    assert binder.calls == [("bind", "user.a")] and registry.lingering() == 0
    await registry.close()


async def test_a_key_nobody_came_back_for_is_unbound_after_the_linger() -> None:
    binder = RecordingBinder(random.Random(0))
    registry: Registry[str] = Registry(binder, linger=0.01)
    for user in range(50):
        await registry.add(f"user.{user}", "s")
        await registry.remove(f"user.{user}", "s")
    await binder.until(lambda: not binder.bound)
    assert [call for call, _ in binder.calls] == ["bind"] * 50 + ["unbind"] * 50
    assert registry._entries == {} and registry.lingering() == 0
    await registry.close()


@pytest.mark.parametrize("seed", range(100))
async def test_with_a_linger_a_member_never_waits_on_an_unbound_key(seed: int) -> None:
    """Members come and go on a few keys while the linger expires now and then: whenever a
    member is registered its key is bound, the binder never sees a bind of a bound key or an
    unbind of an unbound one, and once everyone has left every key is unbound."""
    rng = random.Random(seed)
    binder = RecordingBinder(rng)
    registry: Registry[int] = Registry(binder, linger=rng.choice([0.0005, 0.002, 0.01]))
    keys = [f"user.{i}" for i in range(3)]

    async def session(member: int) -> None:
        for _ in range(rng.randint(1, 3)):
            key = rng.choice(keys)
            await registry.add(key, member)
            assert key in binder.bound
            await asyncio.sleep(rng.choice([0, 0, 0.001, 0.003]))
            assert key in binder.bound
            await registry.remove(key, member)

    await asyncio.gather(*(session(m) for m in range(20)))
    await binder.until(lambda: not binder.bound)
    assert list(registry.active_keys()) == [] and registry._entries == {}
    await registry.close()


async def test_after_a_reconnect_wanted_keys_are_bound_again_and_lingering_ones_forgotten() -> None:
    binder = RecordingBinder(random.Random(0))
    registry: Registry[str] = Registry(binder, linger=3_600)
    await registry.add("user.a", "s1")
    await registry.add("room.r", "s1")
    await registry.add("user.b", "s2")
    await registry.remove("user.b", "s2")  # lingering
    binder.bound.clear()  # the queue was deleted with the connection, and declared again
    binder.calls.clear()
    assert await registry.rebind() == 2
    assert binder.bound == {"user.a", "room.r"} and registry.lingering() == 0
    assert "user.b" not in registry._entries
    await registry.add("user.b", "s3")  # bound anew, not believed to linger
    assert binder.calls[-1] == ("bind", "user.b")
    await registry.close()


@pytest.mark.parametrize("seed", range(20))
async def test_the_count_of_active_keys_by_kind_follows_any_interleaving(seed: int) -> None:
    """The metrics read how many user and room keys have members from counts the registry
    keeps as members come and go, instead of walking every key: concurrent adds and removes
    (twice, of absent members too) leave the counts equal to the keys with members."""
    rng = random.Random(seed)
    registry: Registry[str] = Registry(RecordingBinder(rng), linger=rng.choice([0.0, 30.0]))
    keys = ["user.a", "user.b", "room.x", "room.y", "user.c"]
    members = ["s1", "s2", "s3"]

    async def step() -> None:
        key, member = rng.choice(keys), rng.choice(members)
        if rng.random() < 0.55:
            await registry.add(key, member)
        else:
            await registry.remove(key, member)

    for _ in range(10):
        await asyncio.gather(*(step() for _ in range(20)))
        expected = {"user": 0, "room": 0}
        for key in keys:
            if registry.members(key):
                expected[key.partition(".")[0]] += 1
        assert {kind: registry.active[kind] for kind in expected} == expected
    await registry.close()
