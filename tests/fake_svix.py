"""A stand-in for Svix's hosted API, speaking its wire format over real HTTP.

Only what this project calls: applications, endpoints, message.create (idempotency keys,
eventId), message.get, endpoint.recover and message_attempt.resend. Like Svix it delivers
each message itself, signed with the endpoint's secret under ``svix-*`` headers, and retries
failures (on a compressed schedule). The real ``svix`` client talks to it via server_url.
"""

from __future__ import annotations

import base64
import json
import queue
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from svix.webhooks import Webhook

RETRY_SCHEDULE = (0.0, 0.05, 0.2)  # Svix: 0, 5 s, 5 min, 30 min, ...; compressed here


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


@dataclass
class FakeEndpoint:
    id: str
    url: str
    secret: str
    created_at: datetime = field(default_factory=_now)

    def out(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "description": "",
            "metadata": {},
            "createdAt": _iso(self.created_at),
            "updatedAt": _iso(self.created_at),
        }


@dataclass
class FakeMessage:
    id: str
    event_type: str
    payload: dict[str, Any]
    event_id: str | None
    timestamp: datetime = field(default_factory=_now)

    def out(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "eventType": self.event_type,
            "payload": self.payload,
            "eventId": self.event_id,
            "timestamp": _iso(self.timestamp),
        }


@dataclass
class FakeAttempt:
    msg_id: str
    endpoint_id: str
    status_code: int | None
    at: datetime = field(default_factory=_now)

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _error(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse({"code": code, "detail": detail}, status_code=status)


class FakeSvix:
    """State plus the Starlette app serving it. ``token`` is the API key it accepts."""

    def __init__(self, token: str = "testsk_fake") -> None:
        self.token = token
        self.apps: dict[str, dict[str, Any]] = {}
        self.endpoints: dict[str, dict[str, FakeEndpoint]] = {}
        self.messages: dict[str, dict[str, FakeMessage]] = {}
        self.attempts: list[FakeAttempt] = []
        self.idempotent: dict[str, tuple[int, dict[str, Any]]] = {}
        self.create_calls = 0
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[str, str, str] | None] = queue.Queue()
        self._pending = 0
        self._idle = threading.Condition(self._lock)
        self._http = httpx.Client(timeout=10)
        self._worker = threading.Thread(target=self._deliver_loop, daemon=True, name="fake-svix")
        self._worker.start()
        self.app = Starlette(
            routes=[
                Route("/api/v1/app", self.create_app, methods=["POST"]),
                Route("/api/v1/app/{app_id}/endpoint", self.create_endpoint, methods=["POST"]),
                Route("/api/v1/app/{app_id}/endpoint", self.list_endpoints, methods=["GET"]),
                Route("/api/v1/app/{app_id}/msg", self.create_message, methods=["POST"]),
                Route("/api/v1/app/{app_id}/msg/{msg_id}", self.get_message, methods=["GET"]),
                Route(
                    "/api/v1/app/{app_id}/endpoint/{endpoint_id}/recover",
                    self.recover,
                    methods=["POST"],
                ),
                Route(
                    "/api/v1/app/{app_id}/msg/{msg_id}/endpoint/{endpoint_id}/resend",
                    self.resend,
                    methods=["POST"],
                ),
            ]
        )

    # Helpers for tests ------------------------------------------------------------------

    def add_app(self, uid: str) -> str:
        with self._lock:
            self.apps[uid] = {"id": uid, "uid": uid, "name": uid}
            self.endpoints.setdefault(uid, {})
            self.messages.setdefault(uid, {})
        return uid

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Until every queued delivery (and its retries) is done."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._pending, timeout)

    def close(self) -> None:
        self._queue.put(None)
        self._http.close()

    # Wire format --------------------------------------------------------------------------

    def _authorized(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.token}"

    async def create_app(self, request: Request) -> Response:
        if not self._authorized(request):
            return _error(401, "authentication_failed", "Invalid token")
        body = await request.json()
        uid = body.get("uid") or _id("app")
        self.add_app(uid)
        now = _iso(_now())
        return JSONResponse(
            {
                "id": uid,
                "uid": uid,
                "name": body.get("name", uid),
                "metadata": {},
                "createdAt": now,
                "updatedAt": now,
            },
            status_code=201,
        )

    async def create_endpoint(self, request: Request) -> Response:
        if not self._authorized(request):
            return _error(401, "authentication_failed", "Invalid token")
        app_id = request.path_params["app_id"]
        if app_id not in self.apps:
            return _error(404, "not_found", "Application not found")
        body = await request.json()
        secret = body.get("secret") or "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        endpoint = FakeEndpoint(_id("ep"), body["url"], secret)
        with self._lock:
            self.endpoints[app_id][endpoint.id] = endpoint
        return JSONResponse(endpoint.out(), status_code=201)

    async def list_endpoints(self, request: Request) -> Response:
        if not self._authorized(request):
            return _error(401, "authentication_failed", "Invalid token")
        app_id = request.path_params["app_id"]
        if app_id not in self.apps:
            return _error(404, "not_found", "Application not found")
        data = [e.out() for e in self.endpoints[app_id].values()]
        return JSONResponse({"data": data, "iterator": None, "prevIterator": None, "done": True})

    async def create_message(self, request: Request) -> Response:
        if not self._authorized(request):
            return _error(401, "authentication_failed", "Invalid token")
        app_id = request.path_params["app_id"]
        if app_id not in self.apps:
            return _error(404, "not_found", "Application not found")
        key = request.headers.get("idempotency-key")
        body = await request.json()
        with self._lock:
            self.create_calls += 1
            if key and (app_id, key) in self.idempotent:
                status, cached = self.idempotent[(app_id, key)]  # type: ignore[index]
                return JSONResponse(cached, status_code=status)
            event_id = body.get("eventId")
            if event_id and any(m.event_id == event_id for m in self.messages[app_id].values()):
                return _error(409, "conflict", "Message with this eventId already exists")
            msg = FakeMessage(_id("msg"), body["eventType"], body["payload"], event_id)
            self.messages[app_id][msg.id] = msg
            out = msg.out()
            if key:
                self.idempotent[(app_id, key)] = (202, out)  # type: ignore[index]
            endpoints = list(self.endpoints[app_id])
        for endpoint_id in endpoints:
            self._enqueue(app_id, msg.id, endpoint_id)
        return JSONResponse(out, status_code=202)

    def _find(self, app_id: str, msg_id: str) -> FakeMessage | None:
        msgs = self.messages.get(app_id, {})
        return msgs.get(msg_id) or next((m for m in msgs.values() if m.event_id == msg_id), None)

    async def get_message(self, request: Request) -> Response:
        if not self._authorized(request):
            return _error(401, "authentication_failed", "Invalid token")
        msg = self._find(request.path_params["app_id"], request.path_params["msg_id"])
        if msg is None:
            return _error(404, "not_found", "Message not found")
        return JSONResponse(msg.out())

    async def recover(self, request: Request) -> Response:
        """Resend every message whose attempts to this endpoint all failed, since ``since``."""
        if not self._authorized(request):
            return _error(401, "authentication_failed", "Invalid token")
        app_id = request.path_params["app_id"]
        endpoint_id = request.path_params["endpoint_id"]
        if endpoint_id not in self.endpoints.get(app_id, {}):
            return _error(404, "not_found", "Endpoint not found")
        body = await request.json()
        since = datetime.fromisoformat(body["since"].replace("Z", "+00:00"))
        until = body.get("until")
        until_dt = datetime.fromisoformat(until.replace("Z", "+00:00")) if until else _now()
        with self._lock:
            failed = [
                m.id
                for m in self.messages[app_id].values()
                if since <= m.timestamp <= until_dt
                and not any(
                    a.ok for a in self.attempts if a.msg_id == m.id and a.endpoint_id == endpoint_id
                )
            ]
        for msg_id in failed:
            self._enqueue(app_id, msg_id, endpoint_id)
        return JSONResponse(
            {
                "id": _id("qtask"),
                "status": "running",
                "task": "endpoint.recover",
                "updatedAt": _iso(_now()),
            },
            status_code=202,
        )

    async def resend(self, request: Request) -> Response:
        if not self._authorized(request):
            return _error(401, "authentication_failed", "Invalid token")
        app_id = request.path_params["app_id"]
        msg = self._find(app_id, request.path_params["msg_id"])
        endpoint_id = request.path_params["endpoint_id"]
        if msg is None or endpoint_id not in self.endpoints.get(app_id, {}):
            return _error(404, "not_found", "Message or endpoint not found")
        self._enqueue(app_id, msg.id, endpoint_id)
        return JSONResponse({}, status_code=202)

    # Delivery, as Svix does it: minified JSON, signed per endpoint, retried -------------

    def _enqueue(self, app_id: str, msg_id: str, endpoint_id: str) -> None:
        with self._lock:
            self._pending += 1
        self._queue.put((app_id, msg_id, endpoint_id))

    def _deliver_loop(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                self._deliver(*item)
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def _deliver(self, app_id: str, msg_id: str, endpoint_id: str) -> None:
        msg = self.messages[app_id][msg_id]
        endpoint = self.endpoints[app_id][endpoint_id]
        body = json.dumps(msg.payload, separators=(",", ":"), ensure_ascii=False)
        for delay in RETRY_SCHEDULE:
            time.sleep(delay)
            now = _now()
            headers = {
                "svix-id": msg.id,
                "svix-timestamp": str(int(now.timestamp())),
                "svix-signature": Webhook(endpoint.secret).sign(msg.id, now, body),
                "content-type": "application/json",
            }
            try:
                status: int | None = self._http.post(
                    endpoint.url, content=body.encode(), headers=headers
                ).status_code
            except httpx.HTTPError:
                status = None
            attempt = FakeAttempt(msg.id, endpoint_id, status)
            with self._lock:
                self.attempts.append(attempt)
            if attempt.ok:
                return
