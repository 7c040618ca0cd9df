"""The checker's decisions: pure functions from what was sent, stored and seen to a verdict.

Nothing here does I/O. The runner gathers three records and hands them over:

- the producers' ledger: every event published, its audience and whether the broker confirmed
  it (``Sent``);
- the event log: how many times each event_id is stored (``stored``, from PostgreSQL);
- the clients' ledger: every notification frame each client received, live or replayed, in
  the order it arrived on its connection (``Seen``), and each stream's handover mark.

The account follows the invariants of docs/architecture.md: a confirmed event is stored exactly
once (1, 2); every stored notification reaches each of its recipients live or by replay (3);
a client may see an event twice only as the same frame again (a replay of something unread,
or a reconnect overlapping what it had), never a frame nobody sent or sent to someone else (8);
within one connection, each stream's live frames come in seq order, above the handover mark
(4, 5).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

Audience = Literal["user", "room", "broadcast"]
USER_STREAM = "user"


def room_stream(room: str) -> str:
    return f"room:{room}"


@dataclass(frozen=True, slots=True)
class Sent:
    """One published event: its audience (``target`` is the user or the room, or "" for a
    broadcast) and whether the broker confirmed it."""

    event_id: str
    audience: Audience
    target: str
    notification_type: str
    confirmed: bool


class Seen(NamedTuple):
    """One notification frame as a client received it (a tuple: a run keeps millions)."""

    user_id: str
    connection: int  # a number unique to the connection within the run
    event_id: str
    seq: int
    stream: str  # USER_STREAM or room_stream(room)
    replayed: bool
    notification_type: str


@dataclass(frozen=True, slots=True)
class OrderViolation:
    user_id: str
    connection: int
    stream: str
    previous: int  # the mark or the live seq before
    seq: int
    replayed: bool


@dataclass(frozen=True, slots=True)
class Unexpected:
    user_id: str
    event_id: str
    reason: str


@dataclass(slots=True)
class Account:
    """Every number of the verdict; ``problems`` holds a few examples of each failure."""

    published: int = 0
    confirmed: int = 0
    in_doubt: int = 0  # published without a confirm (timed out): may or may not be stored
    stored: int = 0  # distinct event_ids in the log that the producers sent
    stored_in_doubt: int = 0
    confirmed_not_stored: int = 0
    stored_more_than_once: int = 0
    stored_never_sent: int = 0
    deliveries_expected: int = 0  # (recipient, stored event) pairs
    received_live: int = 0  # of those pairs, first received live
    received_replayed: int = 0  # of those pairs, first received in a replay
    lost: int = 0
    frames: int = 0  # notification frames the clients received in all
    duplicates: int = 0  # receptions beyond the first of one (user, event)
    duplicates_replayed: int = 0  # of those, in a replay
    duplicates_live: int = 0  # of those, live (another connection had it already)
    unexpected: int = 0
    order_violations: int = 0
    examples: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return (
            self.lost == 0
            and self.confirmed_not_stored == 0
            and self.stored_more_than_once == 0
            and self.unexpected == 0
            and self.order_violations == 0
        )

    def counts(self) -> dict[str, int]:
        return {name: getattr(self, name) for name, _ in ROWS}


EXAMPLES = 10


def _example(account: Account, kind: str, item: Any) -> None:
    bucket = account.examples.setdefault(kind, [])
    if len(bucket) < EXAMPLES:
        bucket.append(item)


def recipients(
    sent: Sent, members: Mapping[str, frozenset[str]], users: frozenset[str]
) -> frozenset[str]:
    """Who must receive a stored event: its user, its room's members, or every client."""
    if sent.audience == "user":
        return frozenset((sent.target,)) & users
    if sent.audience == "room":
        return members.get(sent.target, frozenset())
    return users


def may_receive(
    sent: Sent, user_id: str, stream: str, rooms_of: Mapping[str, frozenset[str]]
) -> str | None:
    """None if ``user_id`` may get this event on ``stream``; else why not."""
    if sent.audience == "user":
        if sent.target != user_id:
            return f"personal notification of {sent.target}"
        return None if stream == USER_STREAM else f"personal notification on {stream}"
    if sent.audience == "room":
        if sent.target not in rooms_of.get(user_id, frozenset()):
            return f"notification of room {sent.target}, not the user's"
        return None if stream == room_stream(sent.target) else f"room notification on {stream}"
    return None if stream == USER_STREAM else f"broadcast on {stream}"


def account_store(ledger: Mapping[str, Sent], stored: Mapping[str, int], account: Account) -> None:
    """Confirmed = stored, exactly once each (invariants 1 and 2)."""
    account.published = len(ledger)
    account.confirmed = sum(1 for s in ledger.values() if s.confirmed)
    account.in_doubt = account.published - account.confirmed
    for event_id, sent in ledger.items():
        times = stored.get(event_id, 0)
        if times:
            account.stored += 1
            if not sent.confirmed:
                account.stored_in_doubt += 1
        elif sent.confirmed:
            account.confirmed_not_stored += 1
            _example(account, "confirmed_not_stored", event_id)
        if times > 1:
            account.stored_more_than_once += 1
            _example(account, "stored_more_than_once", [event_id, times])
    for event_id in stored:
        if event_id not in ledger:
            account.stored_never_sent += 1
            _example(account, "stored_never_sent", event_id)


def account_receipts(
    ledger: Mapping[str, Sent],
    stored: Mapping[str, int],
    seen: Iterable[Seen],
    rooms_of: Mapping[str, frozenset[str]],
    account: Account,
) -> None:
    """Every stored notification reached each recipient (3); nothing unexpected (8);
    duplicates only as the same frame again."""
    first: dict[tuple[str, str], tuple[int, str, bool]] = {}
    for frame in seen:
        account.frames += 1
        sent = ledger.get(frame.event_id)
        if sent is None:
            account.unexpected += 1
            _example(
                account, "unexpected", Unexpected(frame.user_id, frame.event_id, "nobody sent it")
            )
            continue
        why_not = may_receive(sent, frame.user_id, frame.stream, rooms_of)
        if why_not is None and frame.notification_type != sent.notification_type:
            why_not = f"type {frame.notification_type}, sent as {sent.notification_type}"
        key = (frame.user_id, frame.event_id)
        before = first.get(key)
        if why_not is None and before is not None and before[0:2] != (frame.seq, frame.stream):
            why_not = f"seen before as seq {before[0]} on {before[1]}, now seq {frame.seq}"
        if why_not is not None:
            account.unexpected += 1
            _example(account, "unexpected", Unexpected(frame.user_id, frame.event_id, why_not))
            continue
        if before is None:
            first[key] = (frame.seq, frame.stream, frame.replayed)
            continue
        account.duplicates += 1
        if frame.replayed:
            account.duplicates_replayed += 1
        else:
            account.duplicates_live += 1

    users = frozenset(rooms_of)
    members: dict[str, set[str]] = defaultdict(set)
    for user_id, rooms in rooms_of.items():
        for room in rooms:
            members[room].add(user_id)
    frozen = {room: frozenset(users_) for room, users_ in members.items()}
    for event_id, sent in ledger.items():
        if not stored.get(event_id):
            continue
        for user_id in recipients(sent, frozen, users):
            account.deliveries_expected += 1
            got = first.get((user_id, event_id))
            if got is None:
                account.lost += 1
                _example(account, "lost", [user_id, event_id, sent.audience, sent.target])
            elif got[2]:
                account.received_replayed += 1
            else:
                account.received_live += 1


def order_violations(
    seen: Iterable[Seen], marks: Mapping[tuple[int, str], int]
) -> list[OrderViolation]:
    """Within one connection, each stream's replayed frames come oldest first, and its live
    frames in strictly increasing seq above the stream's handover mark (``marks``, from
    ``replay_complete.last_seq`` or ``subscribed.last_seq``), so never twice either."""
    last_replayed: dict[tuple[int, str], int] = {}
    last_live: dict[tuple[int, str], int] = {}
    found: list[OrderViolation] = []
    for frame in seen:
        key = (frame.connection, frame.stream)
        if frame.replayed:
            previous = last_replayed.get(key, -1)
            last_replayed[key] = frame.seq
        else:
            previous = last_live.get(key, marks.get(key, -1))
            last_live[key] = max(frame.seq, previous)
        if frame.seq <= previous:
            found.append(
                OrderViolation(
                    frame.user_id, frame.connection, frame.stream, previous, frame.seq,
                    frame.replayed,
                )
            )  # fmt: skip
    return found


def check(
    ledger: Mapping[str, Sent],
    stored: Mapping[str, int],
    seen: list[Seen],
    rooms_of: Mapping[str, frozenset[str]],
    marks: Mapping[tuple[int, str], int],
) -> Account:
    """The whole account of a run."""
    account = Account()
    account_store(ledger, stored, account)
    account_receipts(ledger, stored, seen, rooms_of, account)
    violations = order_violations(seen, marks)
    account.order_violations = len(violations)
    for violation in violations[:EXAMPLES]:
        _example(account, "order_violations", violation)
    return account


def audience_mix(ledger: Iterable[Sent]) -> dict[str, int]:
    return dict(Counter(s.audience for s in ledger))


ROWS = (
    ("published", "events published by the producers"),
    ("confirmed", "  confirmed by the broker"),
    ("in_doubt", "  no confirm in time (may or may not be stored)"),
    ("stored", "distinct published events in the log"),
    ("stored_in_doubt", "  of which published without a confirm"),
    ("confirmed_not_stored", "confirmed but not stored"),
    ("stored_more_than_once", "stored more than once"),
    ("stored_never_sent", "stored but never published by the run"),
    ("deliveries_expected", "deliveries owed (recipient x stored event)"),
    ("received_live", "  first received live"),
    ("received_replayed", "  first received in a replay"),
    ("lost", "lost"),
    ("frames", "notification frames received"),
    ("duplicates", "duplicates (the same id again)"),
    ("duplicates_replayed", "  in a replay"),
    ("duplicates_live", "  live"),
    ("unexpected", "unexpected frames"),
    ("order_violations", "order violations"),
)

MUST_BE_ZERO = {"confirmed_not_stored", "stored_more_than_once", "lost", "unexpected",
                "order_violations"}  # fmt: skip


def table(account: Account) -> str:
    """The account as a plain-text table, the failures marked."""
    counts = account.counts()
    width = max(len(label) for _, label in ROWS)
    lines = [f"{'':<{width}}  {'count':>10}", f"{'-' * width}  {'-' * 10}"]
    for name, label in ROWS:
        mark = "  <-- must be 0" if name in MUST_BE_ZERO and counts[name] else ""
        lines.append(f"{label:<{width}}  {counts[name]:>10}{mark}")
    lines.append(f"{'verdict':<{width}}  {'PASS' if account.passed else 'FAIL':>10}")
    return "\n".join(lines)
