"""The search service on loopback for the HTTP search tests: secrets, signed tokens, a JWKS
endpoint, the local embedder and the receiver app as fixtures (import them by name)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import jwt
import pytest

from handlers.app import create_app
from handlers.server import ServerHandle, serve_in_thread
from pipeline import lifecycle
from pipeline.embedded import searcher_url
from pipeline.embedding import get_embedder
from pipeline.settings import Settings
from tests.search_helpers import completed_import

JWT_SECRET = "test-legacy-jwt-secret-with-at-least-32-characters"
WEBHOOK_SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def token(
    user: uuid.UUID,
    *,
    key: object = JWT_SECRET,
    alg: str = "HS256",
    kid: str | None = None,
    **claims: object,
) -> str:
    """A Supabase-shaped access token for ``user``; ``claims`` override the defaults."""
    body = {
        "sub": str(user),
        "aud": "authenticated",
        "role": "authenticated",
        "exp": int(time.time()) + 3600,
        "iat": int(time.time()),
        "iss": "http://127.0.0.1/auth/v1",
        **claims,
    }
    headers = {"kid": kid} if kid else None
    return jwt.encode(body, key, algorithm=alg, headers=headers)


@pytest.fixture(scope="module")
def embedder():
    return get_embedder(Settings())


@pytest.fixture
def start_service(db_url: str, worker_db_url: str) -> Iterator[Callable[..., ServerHandle]]:
    """The service (receiver app) on loopback, as the worker role, searching as the search
    role (``search=False``: no SEARCH_DATABASE_URL); stopped at teardown."""
    handles: list[ServerHandle] = []

    def start(search: bool = True, **overrides: object) -> ServerHandle:
        settings = Settings(
            **{"webhook_secret": WEBHOOK_SECRET, "supabase_jwt_secret": JWT_SECRET, **overrides}
        )
        app = create_app(
            settings,
            conninfo=worker_db_url,
            shutdown_grace_s=5,
            search_conninfo=searcher_url(db_url) if search else None,
        )
        handles.append(serve_in_thread(app))
        return handles[-1]

    lifecycle.reset()
    yield start
    for handle in handles:
        handle.stop()
    lifecycle.reset()


def import_texts(db_url: str, embedder, user: uuid.UUID, texts: dict[str, str]) -> None:
    vectors = embedder.embed(list(texts.values()))
    completed_import(
        db_url,
        user,
        [
            (cid, text, list(map(float, vec)))
            for (cid, text), vec in zip(texts.items(), vectors, strict=True)
        ],
        model=embedder.model,
        dim=embedder.dimensions,
    )


ALICE = {
    "dog": "User: Biscuit chewed through my sneakers again. Is bitter spray safe for a beagle?",
    "code": "User: my Python code raises KeyError: 'user_id' in parse_config, how to fix?",
    "trip": "User: Flying into Reykjavik in June to see the glaciers, what should I not miss?",
}
BOB = {"bob-dog": "User: My dog Rex, a husky, keeps howling at night."}


def search(
    handle: ServerHandle, tok: str | None, body: object = None, raw: bytes | None = None
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {tok}"} if tok is not None else {}
    content = raw if raw is not None else json.dumps(body or {"query": "x"}).encode()
    return httpx.post(
        handle.url + "/v1/search",
        content=content,
        headers={**headers, "content-type": "application/json"},
        timeout=30,
    )


class Jwks:
    """A Supabase-style JWKS endpoint on loopback, counting how often it is fetched."""

    def __init__(self, keys: list[dict]) -> None:
        self.keys, self.fetches = keys, 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/auth/v1/.well-known/jwks.json":
                    self.send_error(404)
                    return
                outer.fetches += 1
                body = json.dumps({"keys": outer.keys}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def jwk_of(public_key: object, kid: str, alg: str) -> dict:
    jwk = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(public_key))
    return {**jwk, "kid": kid, "alg": alg, "use": "sig"}
