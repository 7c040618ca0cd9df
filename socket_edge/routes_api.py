"""REST (docs/websocket.md): the seed's connection-manager endpoints, cluster-wide, and each
user's notification history, counts, state (read, seen, archived) and preferences."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, model_validator

from dispatcher.records import timestamp
from producers.catalog import NotificationType, Priority
from producers.envelope import (
    ID_PATTERN,
    READ_IDS_MAX,
    SCHEMA_VERSION,
    SEQ_MAX,
    ActionUrl,
    Envelope,
    JsonObject,
    Message,
    Seq,
    Title,
    describe,
    new_event_id,
)
from producers.errors import NotifyError
from producers.preferences import Preferences, catalog_for
from socket_edge.auth import AuthError, Principal, forbidden, token_from
from socket_edge.cluster import NodeReport
from socket_edge.edge import (
    EDGE_PRODUCER,
    EdgeNode,
    Event,
    archive_event,
    preferences_event,
    read_event,
    seen_event,
)
from socket_edge.guard import PRINCIPAL_KEY
from socket_edge.http_errors import error_body

router = APIRouter()

HISTORY_PAGE_MAX = 200


def get_edge(request: Request) -> EdgeNode:
    edge: EdgeNode = request.app.state.edge
    return edge


Edge = Annotated[EdgeNode, Depends(get_edge)]
UserId = Annotated[str, Path(pattern=ID_PATTERN)]


def refused(edge: EdgeNode, refusal: AuthError) -> HTTPException:
    edge.refuse(refusal.code)
    headers = {"WWW-Authenticate": "Bearer"} if refusal.status == 401 else None
    return HTTPException(refusal.status, error_body(refusal.code, refusal.reason), headers)


def caller(request: Request, edge: Edge) -> Principal:
    """The caller, as ``guard.RestGuard`` verified it before the body was read."""
    principal: Principal | None = getattr(request.state, PRINCIPAL_KEY, None)
    if principal is not None:
        return principal
    token, _ = token_from(request.query_params, request.headers)
    try:
        return edge.auth.verify(token)
    except AuthError as refusal:
        raise refused(edge, refusal) from None


Caller = Annotated[Principal, Depends(caller)]


def admin(edge: Edge, principal: Caller) -> Principal:
    if not principal.admin:
        raise refused(edge, forbidden("admin_only", "this endpoint needs a token with role admin"))
    return principal


def user_itself(edge: Edge, principal: Caller, user_id: UserId) -> Principal:
    if not principal.may_act_for(user_id):
        raise refused(edge, forbidden("wrong_user", "the token belongs to another user"))
    return principal


Admin = Depends(admin)
UserItself = Depends(user_itself)


def freshness(reports: list[NodeReport], interval: float) -> dict[str, Any]:
    now = time.time()
    return {
        "as_of": timestamp(datetime.fromtimestamp(now, UTC)),
        "report_interval_seconds": interval,
        "oldest_report_age_seconds": round(max(now - r.at for r in reports), 3),
        "nodes": [
            {
                "node_id": r.node_id,
                "connections": r.connections,
                "age_seconds": round(now - r.at, 3),
            }
            for r in reports
        ],
    }


@router.get("/ws/stats", dependencies=[Admin])
async def stats(edge: Edge) -> dict[str, Any]:
    reports = edge.cluster.fresh_reports()
    users = sorted({user for r in reports for user in r.users})
    rooms = {room for r in reports for room in r.rooms}
    return {
        "status": "online",
        "stats": {
            "total_connections": sum(r.accepted_total for r in reports),
            "active_connections": sum(r.connections for r in reports),
            "messages_sent": sum(r.frames_sent for r in reports),
            # Every node receives every broadcast: the count is the same on each.
            "broadcasts": max(r.broadcasts for r in reports),
            "unique_users": len(users),
            "total_rooms": len(rooms),
            "queued_messages": sum(r.held_frames for r in reports),
        },
        "online_users": users,
        "refusals": dict(sum((Counter(r.refusals) for r in reports), Counter())),
        "cluster": freshness(reports, edge.cluster.interval),
    }


@router.get("/ws/rooms", dependencies=[Admin])
async def rooms(edge: Edge) -> dict[str, Any]:
    reports = edge.cluster.fresh_reports()
    counts: Counter[str] = Counter()
    for report in reports:
        counts.update(report.rooms)
    return {
        "rooms": [{"room": room, "connections": n} for room, n in sorted(counts.items())],
        "total_rooms": len(counts),
        "cluster": freshness(reports, edge.cluster.interval),
    }


@router.get("/ws/users/{user_id}/connections", dependencies=[Admin])
async def user_connections(edge: Edge, user_id: UserId) -> dict[str, Any]:
    connections = await edge.cluster.user_connections(user_id)
    return {
        "user_id": user_id,
        "online": bool(connections),
        "count": len(connections),
        "connections": connections,
    }


class BroadcastBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title
    message: Message
    priority: Priority = Priority.HIGH
    action_url: ActionUrl | None = None
    data: JsonObject = Field(default_factory=dict)


async def publish(edge: EdgeNode, fields: dict[str, Any]) -> dict[str, Any]:
    try:
        envelope = Envelope.model_validate(
            {
                "event_id": new_event_id(),
                "schema_version": SCHEMA_VERSION,
                "notification_type": NotificationType.SYSTEM_ALERT,
                "producer": EDGE_PRODUCER,
                **fields,
            }
        )
    except ValidationError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, describe(exc)) from None
    event_id = await published(edge, envelope)
    return {"success": True, "event_id": str(event_id)}


async def published(edge: EdgeNode, event: Event) -> uuid.UUID:
    try:
        return await edge.publish(event)
    except NotifyError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None


@router.post("/ws/broadcast", status_code=status.HTTP_202_ACCEPTED, dependencies=[Admin])
async def broadcast(edge: Edge, body: BroadcastBody) -> dict[str, Any]:
    return await publish(edge, {"broadcast": True, **body.model_dump()})


@router.post(
    "/ws/rooms/{room}/broadcast", status_code=status.HTTP_202_ACCEPTED, dependencies=[Admin]
)
async def room_broadcast(
    edge: Edge, room: Annotated[str, Path(pattern=ID_PATTERN)], body: BroadcastBody
) -> dict[str, Any]:
    return await publish(edge, {"room": room, **body.model_dump()})


HistoryStatus = Literal["all", "unread", "read", "unseen", "archived"]


@router.get("/api/users/{user_id}/notifications", dependencies=[UserItself])
async def history(
    edge: Edge,
    user_id: UserId,
    status_: Annotated[HistoryStatus, Query(alias="status")] = "all",
    limit: Annotated[int, Query(ge=1, le=HISTORY_PAGE_MAX)] = 50,
    before_seq: Annotated[int | None, Query(ge=1, le=SEQ_MAX)] = None,
) -> dict[str, Any]:
    notifications, user = await edge.replay.history(user_id, status_, limit, before_seq)
    last = notifications[-1]["seq"] if len(notifications) == limit else None
    return {
        "user_id": user_id,
        "status": status_,
        "notifications": notifications,
        "unread_count": user.counts.unread,
        "unseen_count": user.counts.unseen,
        "next_before_seq": last,
    }


@router.get("/api/users/{user_id}/notifications/unread-count", dependencies=[UserItself])
async def unread_count(edge: Edge, user_id: UserId) -> dict[str, Any]:
    counts = await edge.replay.counts(user_id)
    return {"user_id": user_id, "unread_count": counts.unread, "unseen_count": counts.unseen}


class ReadBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[uuid.UUID] = Field(default_factory=list, max_length=READ_IDS_MAX)
    all: StrictBool = False
    up_to_seq: Seq | None = None

    @model_validator(mode="after")
    def _one_of(self) -> ReadBody:
        if bool(self.ids) == self.all:
            raise ValueError('give either "ids": [...] or "all": true')
        return self


def accepted(event_id: uuid.UUID) -> dict[str, Any]:
    return {"success": True, "event_id": str(event_id)}


@router.post(
    "/api/users/{user_id}/notifications/read",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[UserItself],
)
async def mark_read(edge: Edge, user_id: UserId, body: ReadBody) -> dict[str, Any]:
    event = read_event(user_id, ids=body.ids, all=body.all, up_to_seq=body.up_to_seq)
    return accepted(await published(edge, event))


class SeenBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    up_to_seq: Seq


@router.post(
    "/api/users/{user_id}/notifications/seen",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[UserItself],
)
async def mark_seen(edge: Edge, user_id: UserId, body: SeenBody) -> dict[str, Any]:
    return accepted(await published(edge, seen_event(user_id, body.up_to_seq)))


class ArchiveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[uuid.UUID] = Field(default_factory=list, max_length=READ_IDS_MAX)
    all_read: StrictBool = False
    up_to_seq: Seq | None = None

    @model_validator(mode="after")
    def _one_of(self) -> ArchiveBody:
        if bool(self.ids) == self.all_read:
            raise ValueError('give either "ids": [...] or "all_read": true')
        if self.up_to_seq is not None and not self.all_read:
            raise ValueError('up_to_seq goes with "all_read": true')
        return self


class UnarchiveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[uuid.UUID] = Field(min_length=1, max_length=READ_IDS_MAX)


@router.post(
    "/api/users/{user_id}/notifications/archive",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[UserItself],
)
async def archive(edge: Edge, user_id: UserId, body: ArchiveBody) -> dict[str, Any]:
    event = archive_event(user_id, ids=body.ids, all_read=body.all_read, up_to_seq=body.up_to_seq)
    return accepted(await published(edge, event))


@router.post(
    "/api/users/{user_id}/notifications/unarchive",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[UserItself],
)
async def unarchive(edge: Edge, user_id: UserId, body: UnarchiveBody) -> dict[str, Any]:
    return accepted(await published(edge, archive_event(user_id, ids=body.ids, unarchive=True)))


@router.get("/api/users/{user_id}/preferences", dependencies=[UserItself])
async def get_preferences(edge: Edge, user_id: UserId) -> dict[str, Any]:
    """The user's preferences, and what a preferences screen needs to draw itself."""
    preferences, _ = await edge.replay.preferences(user_id)
    return {"user_id": user_id, "preferences": preferences.document(), **catalog_for(edge.critical)}


@router.put(
    "/api/users/{user_id}/preferences",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[UserItself],
)
async def put_preferences(edge: Edge, user_id: UserId, body: Preferences) -> dict[str, Any]:
    """Replace the user's preferences (every socket of the user gets a ``preferences``
    frame once the dispatcher has applied them)."""
    try:
        body.check_critical(edge.critical)
    except ValueError as exc:
        raise RequestValidationError(
            [{"loc": ("body", "muted_types"), "msg": str(exc), "type": "value_error"}]
        ) from None
    event_id = await published(edge, preferences_event(user_id, body))
    return {**accepted(event_id), "preferences": body.document()}
