"""ProfileBuilder: streams conversations in, keeps bounded state, hands out a JSON profile."""

from __future__ import annotations

from typing import Any

from ..models import Conversation
from .activity import Activity
from .quotes import Quotes
from .style import Style
from .text import split_prose, words
from .themes import Themes
from .topics import Topics

PROFILE_VERSION = 1


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

    def add(self, conv: Conversation) -> None:
        """Fold one conversation into the profile."""
        self.conversations += 1
        prose_texts: list[str] = []
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
        if not prose_texts:
            return
        self.conversations_with_user_messages += 1
        self.topics.add(conv.index, conv.title, prose_texts)
        self.themes.add(vocabulary)

    def state_size(self) -> dict[str, int]:
        """Sizes of every growing structure: all are capped (see each module's MAX_*)."""
        return {
            **self.topics.state_size(),
            "quote_pool": self.quotes.state_size(),
            "length_buckets": len(self.style.lengths),
            "languages": len(self.style.languages),
            "code_languages": len(self.style.code_languages),
            "months": len(self.activity.by_month),
            "theme_words": len(self.themes.evidence),
        }

    def profile(self) -> dict[str, Any]:
        """The structured profile: JSON-serializable, same input gives the same output."""
        topics = self.topics.summary()
        topic_words = {w for t in topics for phrase in t["keyphrases"] for w in phrase.split()}
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
            "themes": self.themes.summary(),
            "quotes": self.quotes.summary(topic_words),
        }
