"""Embeddings from any OpenAI-compatible ``POST {base_url}/embeddings`` endpoint.

Error messages reach the person (the job's error_message, over Realtime): they never name
the endpoint (it may be a private host) or the operator's settings; the log line logged
with each one has those, secrets redacted."""

from __future__ import annotations

import base64
import logging
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from ..retry_after import retry_after_seconds
from .base import l2_normalize
from .errors import EmbedderError, EmbedderUnavailable, EmbeddingRequestFailed

if TYPE_CHECKING:
    from ..settings import Settings

log = logging.getLogger(__name__)

DEFAULT_MODEL = "text-embedding-3-small"
# Embedding components are small (OpenAI's are unit vectors); a float32 read with the wrong
# byte order is mostly astronomically large or tiny.
MAX_COMPONENT = 1e6
# Native sizes, so ``dimensions`` is known without a request for the common models.
_KNOWN_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
# Anything that looks like an OpenAI-style secret, including the masked echo of a key that
# the API puts in its 401 message ("Incorrect API key provided: sk-ab***...wxyz").
_SECRET_RE = re.compile(r"\b(?:sk|rk|pk)-[A-Za-z0-9_\-*]{3,}")


class _Transient(Exception):
    """A failure worth retrying; carries the server's requested wait, if any."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def _redact(text: str, key: str | None) -> str:
    if key:
        text = text.replace(key, "[redacted]")
    return _SECRET_RE.sub("[redacted]", text)


def _error_detail(resp: httpx.Response) -> tuple[str, str | None]:
    """(message, code) from an OpenAI error body ``{"error": {"message", "code"}}``."""
    try:
        body = resp.json()
        err = body.get("error") or {}
        if isinstance(err, dict):
            # vLLM and others put the message at the top: {"object": "error", "message"}.
            message = err.get("message") or body.get("message") or ""
            return str(message).strip(), err.get("code")
        return str(err), None
    except (ValueError, AttributeError):
        return resp.text[:200].strip(), None


class OpenAIEmbedder:
    """Batched, retried client for the OpenAI embeddings API (or a compatible server).

    Thread-safe: one ``httpx.Client`` (a thread-safe connection pool) is shared by all
    callers. One ``embed`` call sends its batches ``concurrency`` at a time: the API's
    latency, not its throughput, is what limits a single request stream. The API key is
    sent only in the Authorization header and scrubbed from every message this class logs
    or raises.
    """

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str = "https://api.openai.com/v1",
        model: str = DEFAULT_MODEL,
        dimensions: int | None = None,
        batch_size: int = 96,
        concurrency: int = 4,
        max_attempts: int = 6,
        max_wait: float = 60.0,
        timeout: float = 60.0,
        max_input_chars: int = 6000,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not api_key:
            log.error(
                "EMBEDDING_PROVIDER=openai needs an API key: set OPENAI_API_KEY, "
                "or use EMBEDDING_PROVIDER=minilm to embed offline"
            )
            raise EmbedderUnavailable(
                "The embedding service has no API key on this server; the operator has to "
                "configure one."
            )
        self.model = model
        self._api_key = api_key
        self._url = base_url.rstrip("/") + "/embeddings"
        # For messages and logs: a base URL may carry credentials (user:pass@, ?key=).
        self._shown_url = str(httpx.URL(self._url).copy_with(userinfo=b"", query=None))
        self._requested_dimensions = dimensions
        # Vectors as base64 of little-endian float32, as OpenAI's own SDK asks: a quarter
        # of the bytes of JSON numbers and ~10x cheaper to read (1536-d, 96 vectors: 4 ms
        # instead of 50). "float" once a compatible server refuses it.
        self._encoding = "base64"
        self._dimensions = dimensions or _KNOWN_DIMENSIONS.get(model)
        self.batch_size = batch_size
        self.concurrency = max(1, concurrency)
        self._pool: ThreadPoolExecutor | None = None
        self.max_attempts = max_attempts
        self.max_wait = max_wait
        # The API rejects inputs over 8191 tokens; 6000 chars stays below that even for
        # scripts that take more than one token per character. Chunks are ~1000 chars.
        self.max_input_chars = max_input_chars
        self._sleep = sleep
        self._timeout = timeout
        self._client: httpx.Client | None = None
        self._client_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> OpenAIEmbedder:
        """Build from ``Settings`` (model, dimensions, base URL and key)."""
        return cls(
            api_key=settings.openai_api_key or "",
            base_url=settings.openai_base_url or "https://api.openai.com/v1",
            model=settings.embedding_model or DEFAULT_MODEL,
            dimensions=settings.embedding_dimensions,
            concurrency=settings.embedding_concurrency,
            **kwargs,
        )

    def __repr__(self) -> str:
        return f"OpenAIEmbedder(model={self.model!r}, url={self._shown_url!r})"

    @property
    def dimensions(self) -> int:
        """Vector size; for a model of unknown size, learned with one small request."""
        if self._dimensions is None:
            self.embed(["dimension probe"])
        assert self._dimensions is not None
        return self._dimensions

    @property
    def stage_batch_size(self) -> int:
        """One request per worker: a stage batch is one round trip of latency."""
        return self.batch_size * self.concurrency

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts`` in batches; rows come back in input order, L2-normalized."""
        if not texts:
            return np.zeros((0, self._dimensions or 0), dtype=np.float32)
        batches = [texts[i : i + self.batch_size] for i in range(0, len(texts), self.batch_size)]
        if len(batches) == 1 or self.concurrency == 1:
            parts = [self._post_with_retries(b) for b in batches]
        else:
            # map keeps input order and re-raises the first failure.
            parts = list(self._requests().map(self._post_with_retries, batches))
        return l2_normalize(np.concatenate(parts))

    def close(self) -> None:
        """Close the connection pool and the request threads."""
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def _requests(self) -> ThreadPoolExecutor:
        with self._client_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    self.concurrency, thread_name_prefix="embeddings-api"
                )
            return self._pool

    def _http(self) -> httpx.Client:
        with self._client_lock:
            if self._client is None:
                self._client = httpx.Client(
                    timeout=self._timeout,
                    headers={"Authorization": f"Bearer {self._api_key}"},
                )
            return self._client

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Transient) and exc.retry_after is not None:
            return min(exc.retry_after, self.max_wait)
        return wait_exponential_jitter(initial=1, max=self.max_wait)(state)

    def _before_sleep(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "embedding request failed (%s); attempt %d of %d, retrying in %.1f s",
            getattr(exc, "reason", type(exc).__name__),
            state.attempt_number,
            self.max_attempts,
            wait,
        )

    def _post_with_retries(self, batch: list[str]) -> np.ndarray:
        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=self._wait,
            retry=retry_if_exception_type(_Transient),
            sleep=self._sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        try:
            return retrying(self._post, batch)
        except _Transient as exc:
            log.error(
                "the embedding service at %s kept failing (%s) after %d attempts",
                self._shown_url,
                exc.reason,
                self.max_attempts,
            )
            # The kind of failure only ("HTTP 503", "ConnectError"): the rest may name hosts.
            kind = exc.reason.split(":", 1)[0]
            raise EmbeddingRequestFailed(
                f"The embedding service kept failing ({kind}) after {self.max_attempts} "
                "attempts. The import can be retried later."
            ) from None

    def _post(self, batch: list[str]) -> np.ndarray:
        # The API rejects empty strings; a space keeps the row (and its position).
        inputs = [(t[: self.max_input_chars] if t.strip() else " ") for t in batch]
        encoding = self._encoding
        body: dict[str, Any] = {"model": self.model, "input": inputs, "encoding_format": encoding}
        if self._requested_dimensions:
            body["dimensions"] = self._requested_dimensions
        try:
            resp = self._http().post(self._url, json=body)
        except httpx.TransportError as exc:
            raise _Transient(_redact(f"{type(exc).__name__}: {exc}", self._api_key)) from None
        if resp.status_code == 200:
            try:
                return self._parse(resp, len(batch))
            except EmbedderError:
                if encoding != "base64":
                    raise
        elif encoding != "base64" or resp.status_code not in (400, 422):
            return self._raise_for(resp)
        # base64 refused (servers say so in words of their own) or sent in a form we cannot
        # read: ask once for numbers, and keep asking for them if that works.
        self._encoding = "float"
        try:
            vectors = self._post(batch)
        except EmbedderError:
            self._encoding = "base64"  # numbers did not help: the problem is elsewhere
            raise
        log.info(
            "the embedding API at %s: base64 vectors refused or unreadable; asking for floats",
            self._shown_url,
        )
        return vectors

    def _raise_for(self, resp: httpx.Response) -> np.ndarray:
        status = resp.status_code
        message, code = _error_detail(resp)
        message = _redact(message, self._api_key)
        detail = f"HTTP {status}" + (f": {message}" if message else "")
        if status == 429 and code == "insufficient_quota":
            log.error(
                "the embedding API at %s: account out of quota (%s); add credit or set "
                "EMBEDDING_PROVIDER=minilm",
                self._shown_url,
                detail,
            )
            raise EmbedderUnavailable(
                "The embedding service's account is out of quota; the operator has to add "
                "credit or embed offline."
            )
        if status in (408, 409, 429) or status >= 500:
            raise _Transient(detail, retry_after_seconds(resp.headers))
        if status in (401, 403):
            log.error(
                "the embedding API at %s rejected the API key (%s); check OPENAI_API_KEY",
                self._shown_url,
                detail,
            )
            raise EmbedderUnavailable(
                f"The embedding service refused this server's credentials (HTTP {status}); "
                "the operator has to fix its key."
            )
        log.error("the embedding API at %s refused the request (%s)", self._shown_url, detail)
        # The API's own explanation (redacted) says what to change; the URL stays in the log.
        raise EmbedderError(f"The embedding service refused the request ({detail}).")

    def _parse(self, resp: httpx.Response, n: int) -> np.ndarray:
        try:
            data = resp.json()["data"]
            rows = sorted(data, key=lambda d: d["index"])
            if [d["index"] for d in rows] != list(range(n)):
                raise ValueError(f"expected indices 0..{n - 1}")
            parts = [_vector(d["embedding"]) for d in rows]
        except (ValueError, KeyError, TypeError) as exc:  # binascii.Error is a ValueError
            log.error(
                "the embedding API at %s sent an unreadable response: %s", self._shown_url, exc
            )
            raise EmbedderError("The embedding service sent a response we cannot read.") from None
        if len({v.shape for v in parts}) != 1 or parts[0].ndim != 1:
            log.error("the embedding API at %s sent vectors of differing lengths", self._shown_url)
            raise EmbedderError("The embedding service sent vectors of differing lengths.")
        vectors = np.stack(parts).astype(np.float32, copy=False)
        # NaN, infinities, all zeros, or components no embedding model makes (byte-swapped
        # float32 looks like this): vectors search could never find, or that the database
        # refuses as text it cannot read. (float64: a float32 norm overflows.)
        wide = vectors.astype(np.float64)
        finite = wide.size > 0 and bool(np.isfinite(wide).all())
        finite = finite and float(np.abs(wide).max()) <= MAX_COMPONENT
        if not finite or not (np.linalg.norm(wide, axis=1) > 0).all():
            log.error(
                "the embedding API at %s sent vectors that are not numbers an embedding "
                "model makes (NaN, infinite, all zero or beyond %g)",
                self._shown_url,
                MAX_COMPONENT,
            )
            raise EmbedderError("The embedding service sent vectors that are not numbers.")
        got = vectors.shape[1]
        if self._dimensions is None:
            self._dimensions = got
        elif got != self._dimensions:
            log.error(
                "the embedding API at %s returned %d-dimensional vectors for %s, expected %d; "
                "check EMBEDDING_MODEL and EMBEDDING_DIMENSIONS",
                self._shown_url,
                got,
                self.model,
                self._dimensions,
            )
            raise EmbedderUnavailable(
                f"The embedding service returned {got}-dimensional vectors for {self.model}, "
                f"expected {self._dimensions}; the operator has to fix the embedding settings."
            )
        return vectors


def _vector(embedding: Any) -> np.ndarray:
    """One ``embedding`` of the response: base64 of little-endian float32 (what we ask for)
    or a list of numbers (a server that ignores ``encoding_format``). Raises ValueError
    (binascii.Error included) or TypeError when it is neither."""
    if isinstance(embedding, str):
        return np.frombuffer(base64.b64decode(embedding, validate=True), dtype="<f4")
    return np.asarray(embedding, dtype=np.float32)
