"""A fake OpenAI-compatible chat completions server on loopback, for narrator tests.

Speaks the real wire format over real HTTP; only the model is fake.

    with FakeLLM(fail_times=2, fail_status=429, retry_after="0") as llm:
        settings = Settings(llm_provider="openai", llm_base_url=llm.base_url, ...)
        ...
        llm.requests  # every request received: [{"path", "headers", "json"}, ...]

- `fail_times`: how many requests fail before the server starts answering (-1: always).
- `fail_status`: the failing status (429 or 5xx); `retry_after`: the Retry-After header
  sent with failures (None: no header).
- `reply`: the assistant message content of a successful answer.
- `api_key`: when set, a request without `Authorization: Bearer <api_key>` gets 401.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULT_REPLY = "# Your soulprint\n\nYou bake, you run, you write Rust.\n"


class FakeLLM:
    """Context manager running the fake server in a thread; see the module docstring."""

    def __init__(
        self,
        *,
        fail_times: int = 0,
        fail_status: int = 429,
        retry_after: str | None = None,
        reply: str = DEFAULT_REPLY,
        api_key: str | None = None,
    ) -> None:
        self.fail_times = fail_times
        self.fail_status = fail_status
        self.retry_after = retry_after
        self.reply = reply
        self.api_key = api_key
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None, "use FakeLLM as a context manager"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> FakeLLM:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _send(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                try:
                    payload = json.loads(raw)
                except ValueError:
                    payload = None
                with fake._lock:
                    fake.requests.append(
                        {"path": self.path, "headers": dict(self.headers), "json": payload}
                    )
                    failing = fake.fail_times != 0
                    if fake.fail_times > 0:
                        fake.fail_times -= 1
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, _error("Unknown path", "invalid_request_error"), {})
                elif fake.api_key and self.headers.get("Authorization") != f"Bearer {fake.api_key}":
                    self._send(401, _error("Incorrect API key provided", "invalid_api_key"), {})
                elif failing:
                    headers = {"Retry-After": fake.retry_after} if fake.retry_after else {}
                    kind = "rate_limit_exceeded" if fake.fail_status == 429 else "server_error"
                    self._send(fake.fail_status, _error("Please retry", kind), headers)
                elif not isinstance(payload, dict) or not payload.get("messages"):
                    self._send(400, _error("'messages' is required", "invalid_request_error"), {})
                else:
                    self._send(200, _completion(payload.get("model", "fake"), fake.reply), {})

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # A short poll interval lets __exit__ return at once instead of after 0.5 s.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def _error(message: str, code: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": code, "param": None, "code": code}}


def _completion(model: str, content: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }
