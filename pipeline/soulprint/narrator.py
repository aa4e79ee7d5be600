"""narrate: an OpenAI-compatible chat model writes the portrait from the structured profile.

Only the profile (counts, topics, style, a few quotes) is sent, never the raw history.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from pipeline.errors import SoulprintError

from ..retry_after import retry_after_seconds
from ..settings import Settings

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 4
MAX_RETRY_AFTER = 60.0  # a server asking for longer is treated as down: fall back instead
TIMEOUT = httpx.Timeout(60.0, connect=10.0)

SYSTEM_PROMPT = """\
You write a person's "soulprint": a warm, specific portrait of who they are, addressed to
them in the second person ("you"). You get a JSON profile built only from the messages they
wrote to an AI assistant: volume and time span, activity by hour and weekday (UTC), main
topics (their own recurring phrases), names of people and animals in their life with who
they are, writing style, life themes and a few quotes.
Write markdown: a "# Your soulprint" heading, then short sections (what's on their mind,
how they write, when they show up, what seems to matter, and a few of their own words as
blockquotes). Weave at most a few numbers into sentences; never list statistics. Use only
what the profile supports; do not invent facts, names or events. Times are UTC."""


class NarrationError(SoulprintError, RuntimeError):
    """The LLM could not write the portrait; the caller falls back to the offline text."""


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


_backoff = wait_exponential_jitter(initial=1, max=20)


def _wait(state: RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, _Retryable) and exc.retry_after is not None:
        return exc.retry_after
    return _backoff(state)


def _payload(profile: dict[str, Any], model: str) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": "Profile (JSON):\n" + json.dumps(profile, indent=1)},
        ],
        "temperature": 0.7,
    }


def _post(client: httpx.Client, url: str, body: dict[str, Any], key: str | None) -> str:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        resp = client.post(url, json=body, headers=headers)
    except httpx.TransportError as exc:
        # The exception type names the failure; its text could echo request details.
        raise _Retryable(f"transport error ({type(exc).__name__})") from None
    if resp.status_code == 429 or resp.status_code >= 500:
        after = retry_after_seconds(resp.headers)
        if after is not None and after > MAX_RETRY_AFTER:
            raise NarrationError(f"LLM busy (HTTP {resp.status_code}, retry after {after:.0f} s)")
        raise _Retryable(f"HTTP {resp.status_code}", after)
    if resp.status_code != 200:
        raise NarrationError(f"LLM request rejected with HTTP {resp.status_code}")
    try:
        content = resp.json()["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise NarrationError("LLM response was not a chat completion") from None
    if not isinstance(content, str) or not content.strip():
        raise NarrationError("LLM returned an empty portrait")
    return content.strip() + "\n"


def narrate(
    profile: dict[str, Any],
    settings: Settings | None,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> str | None:
    """The LLM-written portrait, or None when no provider is configured.

    Retries 429, 5xx and transport errors (honouring Retry-After) up to MAX_ATTEMPTS,
    then raises NarrationError. The API key never appears in a message or log line.
    """
    provider = settings.llm_provider if settings is not None else None
    if settings is None or not provider:
        return None
    if provider != "openai":
        raise NarrationError(f"unknown llm_provider {provider!r} (expected 'openai')")
    if not settings.llm_base_url or not settings.llm_model:
        raise NarrationError("llm_provider is 'openai' but LLM_BASE_URL or LLM_MODEL is unset")
    url = settings.llm_base_url.rstrip("/") + "/chat/completions"
    body = _payload(profile, settings.llm_model)
    retrying = Retrying(
        retry=retry_if_exception(lambda e: isinstance(e, _Retryable)),
        stop=stop_after_attempt(MAX_ATTEMPTS),
        wait=_wait,
        sleep=sleep,
        before_sleep=lambda s: log.warning(
            "LLM narration attempt %d failed (%s); retrying",
            s.attempt_number,
            s.outcome.exception() if s.outcome else "?",
        ),
        reraise=True,
    )
    with httpx.Client(timeout=TIMEOUT) as client:
        try:
            return retrying(_post, client, url, body, settings.llm_api_key)
        except _Retryable as exc:
            raise NarrationError(
                f"LLM narration failed after {MAX_ATTEMPTS} attempts: {exc}"
            ) from None
