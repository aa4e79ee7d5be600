"""A stand-in for the OpenAI embeddings API, speaking its wire format over real HTTP.

Usage::

    from tests.fake_openai import fake_openai, fake_vector

    with fake_openai(fail_first=1, retry_after=2) as srv:
        settings = Settings(embedding_provider="openai", openai_base_url=srv.base_url,
                            openai_api_key=srv.api_key)
        ...
        srv.requests        # list[RecordedRequest], every request in arrival order
        fake_vector("hi")   # the exact unit vector the server returns for "hi"

``POST {base_url}/embeddings`` with ``Authorization: Bearer <api_key>`` and a body
``{"model", "input": str | [str], "dimensions"?, "encoding_format"?: "float"|"base64"}``
answers ``{"object": "list", "data": [{"object": "embedding", "index", "embedding"}],
"model", "usage"}``. Like the real API it answers 401 (``invalid_api_key``, echoing a
masked key) for a wrong key, 400 for empty strings or ``dimensions`` on a model without
them, and — while ``fail_first`` lasts — ``fail_status`` (429 by default, with a
``Retry-After`` header). Vectors are a deterministic function of the text and size.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

DEFAULT_KEY = "sk-fake-test-0123456789abcdefSECRET"
NATIVE_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}


def fake_vector(text: str, dimensions: int = 1536) -> np.ndarray:
    """The unit float32 vector the fake returns for ``text`` at ``dimensions``."""
    seed = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")
    v = np.random.default_rng(seed).standard_normal(dimensions).astype(np.float32)
    return v / np.linalg.norm(v)


@dataclass
class RecordedRequest:
    """One request as the fake saw it (headers lower-cased, body parsed when JSON)."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeOpenAI:
    """Handle on a running fake: its address, its key, its knobs and what it received."""

    base_url: str
    api_key: str
    fail_first: int = 0
    fail_status: int = 429
    retry_after: float | str | None = 0
    error_code: str | None = None
    reverse_order: bool = False
    fail_after: int = 0  # requests answered normally before the fail_first failures begin
    latency_s: float = 0.0  # added to every answer, like a real API across the internet
    # encoding_format=base64: "yes" (as OpenAI), "ignored" (floats whatever was asked, as
    # some compatible servers do), "refused" (400 naming the parameter) or "refused-vllm"
    # (vLLM's 400: the message at the top level, the parameter not named).
    base64: str = "yes"
    in_flight: int = 0
    max_in_flight: int = 0  # the most requests it was answering at one time
    requests: list[RecordedRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def fail_next(
        self,
        n: int,
        status: int = 429,
        retry_after: float | str | None = 0,
        error_code: str | None = None,
    ) -> None:
        """Answer the next ``n`` embedding requests with ``status`` (then succeed again)."""
        with self.lock:
            self.fail_first, self.fail_status = n, status
            self.retry_after, self.error_code = retry_after, error_code

    @property
    def embedding_requests(self) -> list[RecordedRequest]:
        """Only the POSTs to /embeddings, in arrival order."""
        return [r for r in self.requests if r.path.endswith("/embeddings")]


def _error(status: int, message: str, type_: str, code: str | None) -> tuple[int, dict]:
    return status, {"error": {"message": message, "type": type_, "param": None, "code": code}}


def _mask(key: str) -> str:
    # What the real API echoes in its 401 message: a few leading and the last 4 characters.
    return key[:3] + "*" * max(0, len(key) - 7) + key[-4:] if len(key) > 7 else "***"


def _answer(srv: FakeOpenAI, auth: str | None, body: Any) -> tuple[int, dict, dict[str, str]]:
    """(status, JSON body, extra headers) for one POST /embeddings."""
    if auth != f"Bearer {srv.api_key}":
        given = (auth or "").removeprefix("Bearer ")
        return (
            *_error(
                401,
                f"Incorrect API key provided: {_mask(given)}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                "invalid_request_error",
                "invalid_api_key",
            ),
            {},
        )
    with srv.lock:
        if srv.fail_after > 0:
            srv.fail_after -= 1
        elif srv.fail_first > 0:
            srv.fail_first -= 1
            headers = {} if srv.retry_after is None else {"Retry-After": str(srv.retry_after)}
            if srv.fail_status == 429:
                msg = "Rate limit reached for requests. Please try again later."
                return (
                    *_error(429, msg, "requests", srv.error_code or "rate_limit_exceeded"),
                    headers,
                )
            return (
                *_error(
                    srv.fail_status, "The server had an error.", "server_error", srv.error_code
                ),
                headers,
            )
    if not isinstance(body, dict) or "model" not in body or "input" not in body:
        return (
            *_error(400, "'model' and 'input' are required.", "invalid_request_error", None),
            {},
        )
    model = body["model"]
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    if not inputs or any(not isinstance(t, str) or t == "" for t in inputs):
        return (
            *_error(
                400,
                "'$.input' is invalid. Please check the API reference.",
                "invalid_request_error",
                None,
            ),
            {},
        )
    dims = body.get("dimensions")
    native = NATIVE_DIMENSIONS.get(model, 768)
    if dims is not None and not model.startswith("text-embedding-3"):
        return (
            *_error(
                400,
                "This model does not support specifying dimensions.",
                "invalid_request_error",
                None,
            ),
            {},
        )
    size = int(dims or native)
    fmt = body.get("encoding_format", "float")
    if fmt == "base64" and srv.base64 == "refused":
        return (
            *_error(
                400,
                "Invalid value for 'encoding_format': only 'float' is supported.",
                "invalid_request_error",
                None,
            ),
            {},
        )
    if fmt == "base64" and srv.base64 == "refused-vllm":
        return (
            400,
            {
                "object": "error",
                "message": "base64 encoding is not currently supported",
                "type": "BadRequestError",
                "param": None,
                "code": 400,
            },
            {},
        )
    if srv.base64 == "ignored":
        fmt = "float"
    data = []
    for i, text in enumerate(inputs):
        vec = fake_vector(text, size)
        emb: Any = (
            base64.b64encode(vec.astype("<f4").tobytes()).decode()
            if fmt == "base64"
            else [float(x) for x in vec]
        )
        data.append({"object": "embedding", "index": i, "embedding": emb})
    if srv.reverse_order:
        data.reverse()
    tokens = sum(max(1, len(t) // 4) for t in inputs)
    return (
        200,
        {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        },
        {},
    )


def _handler(srv: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like the real API behind a pool

        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            pass

        def _reply(self, status: int, payload: dict, headers: dict[str, str]) -> None:
            raw = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(raw)

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body: Any = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
            headers = {k.lower(): v for k, v in self.headers.items()}
            with srv.lock:
                srv.requests.append(RecordedRequest("POST", self.path, headers, body))
            if self.path.rstrip("/") != _path(srv.base_url) + "/embeddings":
                self._reply(
                    *_error(404, f"Unknown path {self.path}", "invalid_request_error", None), {}
                )
                return
            with srv.lock:
                srv.in_flight += 1
                srv.max_in_flight = max(srv.max_in_flight, srv.in_flight)
            try:
                if srv.latency_s:
                    time.sleep(srv.latency_s)
                self._reply(*_answer(srv, self.headers.get("Authorization"), body))
            finally:
                with srv.lock:
                    srv.in_flight -= 1

    return Handler


def _path(base_url: str) -> str:
    return "/" + base_url.split("://", 1)[1].split("/", 1)[1].rstrip("/")


@contextmanager
def fake_openai(
    *,
    api_key: str = DEFAULT_KEY,
    fail_first: int = 0,
    fail_status: int = 429,
    retry_after: float | str | None = 0,
    error_code: str | None = None,
    reverse_order: bool = False,
    fail_after: int = 0,
    latency_s: float = 0.0,
    base64: str = "yes",
) -> Iterator[FakeOpenAI]:
    """Run the fake on 127.0.0.1 (a free port) for the duration of the ``with`` block.

    ``fail_first``: how many embedding requests get ``fail_status`` before any succeeds
    (429s carry ``Retry-After: retry_after`` unless it is None; ``error_code`` goes in the
    error body, e.g. ``"insufficient_quota"``); ``fail_after`` requests succeed before
    those failures begin. ``latency_s`` delays every answer. ``reverse_order``: return ``data`` in
    reverse index order (legal on the wire; clients must sort by ``index``). ``base64``:
    "yes", "ignored", "refused" or "refused-vllm" (see FakeOpenAI).
    """
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    httpd.daemon_threads = True
    srv = FakeOpenAI(
        base_url=f"http://127.0.0.1:{httpd.server_address[1]}/v1",
        api_key=api_key,
        fail_first=fail_first,
        fail_status=fail_status,
        retry_after=retry_after,
        error_code=error_code,
        reverse_order=reverse_order,
        fail_after=fail_after,
        latency_s=latency_s,
        base64=base64,
    )
    httpd.RequestHandlerClass = _handler(srv)
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-openai", daemon=True
    )
    thread.start()
    try:
        yield srv
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
