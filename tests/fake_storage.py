"""A stand-in for the hosted Supabase Storage API, speaking its wire format over real HTTP.

Only what the worker uses: `POST /storage/v1/object/sign/{bucket}/{path}` (as called by
supabase-py's `create_signed_url`), `GET /storage/v1/object/sign/{bucket}/{path}?token=` and
`DELETE /storage/v1/object/{bucket}` with `{"prefixes": [...]}` (supabase-py's `remove`).
Like Storage with this project's RLS, it signs objects only for a JWT whose role is
`import_storage_reader` (the Storage-only role of SUPABASE_WORKER_JWT) and only in bucket
`imports`; signed URLs expire.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from handlers.server import serve_in_thread
from pipeline.settings import Settings

JWT_SECRET = b"test-only-jwt-secret-not-a-real-one"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_jwt(claims: dict[str, object]) -> str:
    """HS256 JWT signed with the fake project's secret."""
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps(claims).encode())
    sig = hmac.new(JWT_SECRET, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(sig)}"


def worker_settings(data_dir: Path, url: str, role: str = "import_storage_reader") -> Settings:
    """A worker's settings against the fake at ``url``: its own JWT, here for ``role``."""
    return Settings(
        data_dir=data_dir,
        supabase_url=url,
        supabase_anon_key="anon-key",
        supabase_worker_jwt=make_jwt({"role": role, "exp": time.time() + 3600}),
    )


def read_jwt(token: str) -> dict[str, object] | None:
    try:
        head, body, sig = token.split(".")
    except ValueError:
        return None
    good = hmac.new(JWT_SECRET, f"{head}.{body}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(good, _unb64(sig)):
        return None
    claims = json.loads(_unb64(body))
    if float(claims.get("exp", 0)) < time.time():
        return None
    return claims


def _error(status: int, error: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"statusCode": str(status), "error": error, "message": message}, status_code=status
    )


@dataclass
class FakeStorage:
    root: Path  # files at root/<bucket>/<name>
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)  # method, path, role
    url: str = ""

    def app(self) -> Starlette:
        async def sign(request: Request) -> Response:
            bucket, name = request.path_params["bucket"], request.path_params["name"]
            auth = request.headers.get("authorization", "").removeprefix("Bearer ")
            claims = read_jwt(auth)
            role = str(claims.get("role")) if claims else None
            self.requests.append(("POST", f"{bucket}/{name}", role))
            if claims is None:
                return _error(400, "InvalidJWT", "invalid signature")
            if role != "import_storage_reader" or bucket != "imports":
                # Storage RLS hides what a role may not read.
                return _error(400, "not_found", "Object not found")
            if not (self.root / bucket / name).is_file():
                return _error(400, "not_found", "Object not found")
            expires_in = int((await request.json()).get("expiresIn", 60))
            token = make_jwt({"url": f"{bucket}/{name}", "exp": time.time() + expires_in})
            return JSONResponse({"signedURL": f"/object/sign/{bucket}/{name}?token={token}"})

        async def download(request: Request) -> Response:
            bucket, name = request.path_params["bucket"], request.path_params["name"]
            claims = read_jwt(request.query_params.get("token", ""))
            self.requests.append(("GET", f"{bucket}/{name}", None))
            if claims is None or claims.get("url") != f"{bucket}/{name}":
                return _error(400, "InvalidJWT", "jwt expired")
            path = self.root / bucket / name

            def chunks() -> Iterator[bytes]:
                with open(path, "rb") as f:
                    while block := f.read(256 * 1024):
                        yield block

            return StreamingResponse(
                chunks(),
                media_type="application/octet-stream",
                headers={"content-length": str(path.stat().st_size)},
            )

        async def remove(request: Request) -> Response:
            bucket = request.path_params["bucket"]
            claims = read_jwt(request.headers.get("authorization", "").removeprefix("Bearer "))
            role = str(claims.get("role")) if claims else None
            prefixes = (await request.json()).get("prefixes", [])
            self.requests.append(("DELETE", f"{bucket}/{','.join(prefixes)}", role))
            if claims is None:
                return _error(400, "InvalidJWT", "invalid signature")
            # Like Storage: RLS decides which rows the DELETE reaches; the answer lists the
            # objects actually deleted (none, when the role may not delete them).
            if role not in ("import_worker", "import_storage_reader") or bucket != "imports":
                return JSONResponse([])
            deleted = []
            for name in prefixes:
                path = self.root / bucket / name
                if path.is_file():
                    path.unlink()
                    deleted.append({"bucket_id": bucket, "name": name})
            return JSONResponse(deleted)

        return Starlette(
            routes=[
                Route("/storage/v1/object/{bucket}", remove, methods=["DELETE"]),
                Route("/storage/v1/object/sign/{bucket}/{name:path}", sign, methods=["POST"]),
                Route("/storage/v1/object/sign/{bucket}/{name:path}", download, methods=["GET"]),
            ]
        )


@contextmanager
def fake_storage(root: Path) -> Iterator[FakeStorage]:
    storage = FakeStorage(root)
    handle = serve_in_thread(storage.app())
    storage.url = handle.url
    try:
        yield storage
    finally:
        handle.stop()
