"""The soulprint: a profile of who a person is, built only from what they wrote.

`ProfileBuilder` streams conversations into a bounded structured profile,
`render_portrait` turns it into an offline markdown portrait, `narrate` asks an
OpenAI-compatible LLM for one instead, and `build_soulprint` ties them together.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from pipeline.exports.models import Conversation

from ..settings import Settings
from .narrator import NarrationError, narrate
from .portrait import render_portrait
from .profile import ProfileBuilder

__all__ = [
    "NarrationError",
    "ProfileBuilder",
    "build_soulprint",
    "narrate",
    "render_portrait",
    "write_soulprint",
]

log = logging.getLogger(__name__)


def build_soulprint(
    conversations: Iterable[Conversation],
    settings: Settings | None = None,
    *,
    about: dict[str, list[dict[str, Any]]] | None = None,
) -> tuple[dict[str, Any], str]:
    """Profile and soulprint_text; the profile's "narration" says which text was used.

    ``about``: what the export says about the person outside their messages
    (pipeline.exports.person_notes.load): ``self_description`` (their custom instructions, their
    own words) and ``memory_notes`` (ChatGPT's memory notes: its words, not theirs); each
    a list of ``{"text", "kind", "first_seen", "last_seen"}``. Copied into the profile.
    """
    builder = ProfileBuilder()
    for conv in conversations:
        builder.add(conv)
    profile = builder.profile()
    profile["self_description"] = list((about or {}).get("self_description", []))
    profile["memory_notes"] = list((about or {}).get("memory_notes", []))
    return write_soulprint(profile, settings)


def write_soulprint(
    profile: dict[str, Any], settings: Settings | None = None
) -> tuple[dict[str, Any], str]:
    """The soulprint_text of a finished profile: narrated where an LLM is configured (and
    answers), else the offline portrait. Returns the profile with "narration" added."""
    narration: dict[str, Any] = {"source": "offline"}
    text: str | None = None
    if profile["volume"]["user_messages"]:  # nothing to narrate from an empty profile
        try:
            text = narrate(profile, settings)
        except NarrationError as exc:
            log.warning("falling back to the offline soulprint: %s", exc)
            narration = {"source": "offline", "fallback_reason": str(exc)}
    if text is not None:
        narration = {"source": "llm", "model": settings.llm_model if settings else None}
    profile["narration"] = narration
    return profile, text if text is not None else render_portrait(profile)
