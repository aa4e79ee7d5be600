"""`soulprint-import serve`: the webhook receiver under uvicorn (Render's web service)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import TypedDict

from pipeline import log_redaction
from pipeline.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="run the signed-webhook receiver (Render web service)")
    p.add_argument("--host", default="0.0.0.0", help="bind address (default 0.0.0.0)")
    p.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("PORT") or 8000),
        help="port (default $PORT, else 8000)",
    )
    p.set_defaults(func=serve)


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from handlers.app import create_app
    from pipeline.stages import make_work_sources

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env()
    log_redaction.install_for(settings)  # no token or secret in any log line
    missing = [
        n
        for n, v in (
            ("DATABASE_URL", settings.database_url),
            ("WEBHOOK_SECRET", settings.webhook_secret),
        )
        if not v
    ]
    if missing:
        print(f"soulprint-import serve: set {' and '.join(missing)}", file=sys.stderr)
        return 2
    assert settings.database_url
    _warn_if_model_unbuilt(settings)
    app = create_app(
        settings,
        conninfo=settings.database_url,
        sources=make_work_sources(settings, settings.database_url),
        # POST /v1/search only; unset, the endpoint answers 503 (never the worker's URL).
        search_conninfo=settings.search_database_url,
    )
    # uvicorn turns SIGTERM into a graceful stop: open requests finish, then our lifespan
    # shutdown lets stages checkpoint and release their leases.
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        timeout_graceful_shutdown=5,
        access_log=False,
        **proxy_options(settings),
        **server_limits(settings),
    )
    return 0


def _warn_if_model_unbuilt(settings: Settings) -> None:
    """One warning at start-up when the first import would build the model graph (review
    of issue 13, F3): on a 512 MB instance that build is what gets killed."""
    from pipeline.embedding.readiness import missing_graph_warning

    warning = missing_graph_warning(settings)
    if warning:
        logging.getLogger("pipeline.serve").warning(warning)


class ProxyOptions(TypedDict):
    """Keyword arguments of uvicorn.run / uvicorn.Config, typed as uvicorn declares them."""

    proxy_headers: bool
    forwarded_allow_ips: str


class ServerLimits(TypedDict):
    """Keyword arguments of uvicorn.run / uvicorn.Config (connections; seconds)."""

    limit_concurrency: int
    timeout_keep_alive: int


def proxy_options(settings: Settings) -> ProxyOptions:
    """uvicorn's proxy-header options: X-Forwarded-* believed only from the peers in
    FORWARDED_ALLOW_IPS (default loopback), so a caller cannot pose as another address."""
    return {"proxy_headers": True, "forwarded_allow_ips": settings.forwarded_allow_ips}


def server_limits(settings: Settings) -> ServerLimits:
    """uvicorn's resource limits: at most RECEIVER_MAX_CONNECTIONS connections at once
    (the next gets 503) and idle keep-alive connections closed after 5 s, so unsigned
    callers cannot pile up connections and buffers (security review finding 6)."""
    return {"limit_concurrency": settings.receiver_max_connections, "timeout_keep_alive": 5}
