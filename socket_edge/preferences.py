"""The preferences of the users an edge holds sockets for, applied to broadcasts as they pass.

A personal notification is decided by the dispatcher when it routes it (a muted or quiet one
is not published at all); a broadcast is one delivery for everybody, so each edge decides it
per user (docs/websocket.md, "Preferences"). The edge holds the preferences of its users that
have any: loaded with the user's handshake snapshot, replaced when a ``preferences`` sync for
the user passes through the edge (the newer, by the seq of the event that set them, wins),
forgotten when the user's last local socket goes. A broadcast the user mutes, or a
non-urgent one during their quiet hours (a critical type excepted), is not written to their
sockets; the read side (``dispatcher.queries``) leaves the muted ones out of counts and
replays and replays the quiet ones with ``"quiet": true``.

The fan-out of a broadcast is the edge's hot path: when no local user has preferences it
costs nothing more than before, and otherwise one decision per distinct set of preferences
among its users (users with the same preferences share it), never one per socket.

A socket whose handshake is under way holds the live frames of its stream until its replay
is sent; its user's preferences become known only with the replay's snapshot. So the seqs of
recent broadcasts are noted (a set, no parsing), and the frames held meanwhile are decided
once the preferences are known (``keep_held``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from producers.catalog import CATALOG, NotificationType
from producers.preferences import NO_PREFERENCES, Preferences, decide, preferences_of
from socket_edge.sinks import OutFrame

# How a frame's text begins (``dispatcher.records`` encodes "type" first): a notification
# told from a state sync, and a preferences sync among those, by their first bytes.
NOTIFICATION_FRAME = '{"type":"notification"'
PREFERENCES_FRAME = '{"type":"preferences"'

# Broadcasts remembered for streams still holding their frames during a replay: far more than
# arrive during one handshake.
RECENT_BROADCASTS = 4096


@dataclass(frozen=True, slots=True)
class Kind:
    """What a preference decides a notification by."""

    notification_type: str
    category: str
    priority: str


def kind_of(frame: Any) -> Kind | None:
    """The kind of a decoded notification frame; None for anything else or an unknown type
    (which no preference can name)."""
    if not isinstance(frame, dict) or frame.get("type") != "notification":
        return None
    name, priority = frame.get("notification_type"), frame.get("priority")
    if not isinstance(name, str) or not isinstance(priority, str):
        return None
    try:
        entry = CATALOG[NotificationType(name)]
    except ValueError:
        return None
    return Kind(name, entry.category.value, priority)


def preferences_sync(text: str) -> Preferences | None:
    """The preferences a ``preferences`` sync frame carries; None if it carries none this
    version reads."""
    try:
        frame = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(frame, dict) or frame.get("type") != "preferences":
        return None
    document = frame.get("preferences")
    if not isinstance(document, dict):
        return None
    return preferences_of(document)


class HeldPreferences:
    def __init__(self, critical: frozenset[str], recent: int = RECENT_BROADCASTS) -> None:
        self.critical = critical
        # Users with preferences, by user id: only these cost anything on a broadcast.
        self.active: dict[str, Preferences] = {}
        # The same users by their preferences (``Preferences.key``): a broadcast is decided
        # once per distinct set of preferences, however many users share it.
        self._groups: dict[tuple[object, ...], tuple[Preferences, set[str]]] = {}
        # The seq of the event that set each known user's preferences, theirs or none.
        self._seqs: dict[str, int] = {}
        self._recent: deque[int] = deque()
        self._recent_set: set[int] = set()
        self._recent_size = recent

    def __len__(self) -> int:
        return len(self.active)

    def of(self, user_id: str) -> Preferences:
        return self.active.get(user_id, NO_PREFERENCES)

    def load(self, user_id: str, seq: int, preferences: Preferences) -> bool:
        """Hold ``preferences`` for the user, set by the event of ``seq``, unless newer ones
        are held already; True if they were taken."""
        if seq < self._seqs.get(user_id, 0):
            return False
        self._seqs[user_id] = seq
        self._drop(user_id)
        if preferences != NO_PREFERENCES:
            self.active[user_id] = preferences
            group = self._groups.setdefault(preferences.key, (preferences, set()))
            group[1].add(user_id)
        return True

    def forget(self, user_id: str) -> None:
        """The user's last local socket is gone."""
        self._drop(user_id)
        self._seqs.pop(user_id, None)

    def _drop(self, user_id: str) -> None:
        preferences = self.active.pop(user_id, None)
        if preferences is not None:
            users = self._groups[preferences.key][1]
            users.discard(user_id)
            if not users:
                del self._groups[preferences.key]

    # -- broadcasts ----------------------------------------------------------------------------

    def note_broadcast(self, seq: int) -> None:
        """A broadcast passed: a stream that holds it may need it decided later."""
        if seq in self._recent_set:
            return
        self._recent.append(seq)
        self._recent_set.add(seq)
        if len(self._recent) > self._recent_size:
            self._recent_set.discard(self._recent.popleft())

    def held_back(self, frame: OutFrame, at: datetime | None = None) -> set[str]:
        """The users (among those with preferences) whose sockets must not get the broadcast
        ``frame``: they mute it, or it is not urgent and comes during their quiet hours."""
        if not self.active:
            return set()
        kind = kind_of(_decode(frame.text))
        if kind is None:
            return set()
        moment = at or datetime.now(UTC)
        held: set[str] = set()
        for preferences, users in self._groups.values():
            if self.suppressed(preferences, kind, moment):
                held |= users
        return held

    def suppressed(self, preferences: Preferences, kind: Kind, at: datetime) -> bool:
        return (
            decide(
                preferences,
                kind.notification_type,
                kind.category,
                kind.priority,
                at,
                self.critical,
            )
            is not None
        )

    def keep_held(self, user_id: str) -> Callable[[int, OutFrame], bool] | None:
        """For a stream of ``user_id`` whose frames were held while its preferences were not
        known: which of them to keep (None: all of them)."""
        preferences = self.active.get(user_id)
        if preferences is None:
            return None
        moment = datetime.now(UTC)
        recent = self._recent_set

        def keep(seq: int, frame: OutFrame) -> bool:
            if seq not in recent:
                return True
            kind = kind_of(_decode(frame.text))
            return kind is None or not self.suppressed(preferences, kind, moment)

        return keep


def _decode(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
