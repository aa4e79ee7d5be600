"""ProfileBuilder: streams conversations in, keeps bounded state, hands out a JSON profile.

Its state round-trips through JSON (`to_state` / `from_state`), so the parsing stage can
checkpoint the profile with every batch and a restarted worker resumes it exactly.
"""

from __future__ import annotations

import re
from typing import Any

from pipeline.exports.models import Conversation

from .activity import Activity
from .names import Names
from .quotes import Quotes
from .style import Style
from .technical import is_technical, strip_machinery
from .text import sentences, split_prose, words
from .themes import Themes
from .topics import Topics

_LOWER_WORD = re.compile(r"(?<![\w'’])[a-z]{3,}\b")  # written in lower case
PROFILE_VERSION = 2
STATE_VERSION = 1
_COUNTS = (
    "conversations",
    "conversations_with_user_messages",
    "user_messages",
    "assistant_messages",
)


class ProfileBuilder:
    """Builds a person's profile from their own (role 'user') messages only.

    Call `add` once per conversation as an export streams past; nothing keeps a message's
    text after `add` returns, so memory stays flat however large the export is.
    """

    def __init__(self) -> None:
        self.conversations = 0
        self.conversations_with_user_messages = 0
        self.user_messages = 0
        self.assistant_messages = 0
        self.activity = Activity()
        self.style = Style()
        self.topics = Topics()
        self.themes = Themes()
        self.quotes = Quotes()
        self.names = Names()

    def add(self, conv: Conversation) -> None:
        """Fold one conversation into the profile."""
        self.conversations += 1
        prose_texts: list[str] = []
        life_texts: list[str] = []  # prose not about machinery: where topics come from
        vocabulary: set[str] = set()
        for msg in conv.messages:
            if msg.role != "user":
                # The assistant's words never describe the person.
                self.assistant_messages += 1
                continue
            self.user_messages += 1
            ts = msg.create_time if msg.create_time is not None else conv.create_time
            self.activity.add(ts)
            prose = split_prose(msg.text)
            tokens = words(prose.text)
            self.style.add(msg.text, prose, tokens)
            self.quotes.add(prose.text, conv.title, ts)
            prose_texts.append(prose.text)
            vocabulary.update(tokens)
            if not prose.has_code and not is_technical(prose.text):
                life_texts.append(strip_machinery(prose.text))
        if not prose_texts:
            return
        self.conversations_with_user_messages += 1
        if life_texts and conv.title and not is_technical(conv.title):
            # The title names what the conversation was about ("Japan trip: Takayama
            # food"); only for conversations that are about a life, not about code.
            life_texts.append(strip_machinery(conv.title))
        fresh = self.topics.add(conv.index, life_texts)  # copies of earlier messages dropped
        self.themes.add(vocabulary)
        said = [s for text in fresh for s in sentences(text)]
        self.names.add(conv.index, said, {w for text in fresh for w in _LOWER_WORD.findall(text)})

    def state_size(self) -> dict[str, int]:
        """Sizes of every growing structure: all are capped (see each module's MAX_*)."""
        return {
            **self.topics.state_size(),
            "quote_pool": self.quotes.state_size(),
            "length_buckets": len(self.style.lengths),
            "languages": len(self.style.languages),
            "names": len(self.names.names),
            "code_languages": len(self.style.code_languages),
            "months": len(self.activity.by_month),
            "theme_words": len(self.themes.evidence),
        }

    def profile(self) -> dict[str, Any]:
        """The structured profile: JSON-serializable, same input gives the same output."""
        topics = self.topics.summary()
        topic_words = {
            w.lower() for t in topics for phrase in t["keyphrases"] for w in phrase.split()
        }
        return {
            "version": PROFILE_VERSION,
            "source": "user messages only",
            "volume": {
                "conversations": self.conversations,
                "conversations_with_user_messages": self.conversations_with_user_messages,
                "user_messages": self.user_messages,
                "assistant_messages": self.assistant_messages,
                "user_words": self.style.words,
            },
            "activity": self.activity.summary(),
            "topics": topics,
            "style": self.style.summary(),
            "names": self.names.summary(),
            "themes": self.themes.summary(),
            "quotes": self.quotes.summary(topic_words),
        }

    def to_state(self) -> dict[str, Any]:
        """Everything `add` has folded in so far, as JSON-ready data."""
        return {
            "version": STATE_VERSION,
            "counts": {k: getattr(self, k) for k in _COUNTS},
            "activity": self.activity.to_state(),
            "style": self.style.to_state(),
            "topics": self.topics.to_state(),
            "themes": self.themes.to_state(),
            "quotes": self.quotes.to_state(),
            "names": self.names.to_state(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ProfileBuilder:
        """A builder that continues exactly where the one that wrote `state` stopped.
        ValueError for a state written by an incompatible version."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(
                f"profile state version {state.get('version')!r} is not {STATE_VERSION}"
            )
        builder = cls()
        for key in _COUNTS:
            setattr(builder, key, int(state["counts"][key]))
        builder.activity = Activity.from_state(state["activity"])
        builder.style = Style.from_state(state["style"])
        builder.topics = Topics.from_state(state["topics"])
        builder.themes = Themes.from_state(state["themes"])
        builder.quotes = Quotes.from_state(state["quotes"])
        builder.names = Names.from_state(state["names"])
        return builder
