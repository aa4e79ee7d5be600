"""Names that recur in a person's life: a pet, a sister, a friend, told by name.

A capitalized word in the middle of a sentence, never written in lower case, that comes
back in two or more conversations is a name; it is reported when the person also said who
it is: "my beagle Biscuit", "Biscuit, my beagle", "my sister Maya", "我家柯基豆豆".
"""

from __future__ import annotations

import re
from typing import Any

from .cjk import has_han
from .languages import ALL_STOPWORDS
from .text import word_set as _set

MAX_NAMES = 2000  # distinct capitalized words tracked; pruned to half by conversations
MAX_SHOWN = 6

RELATIONS = _set(
    """dog puppy pup cat kitten kitty beagle corgi labrador retriever poodle terrier spaniel
    collie husky pug dachshund shepherd bulldog chihuahua greyhound whippet schnauzer doodle
    parrot budgie cockatiel bird rabbit bunny hamster gerbil ferret horse pony tortoise turtle
    lizard gecko snake goldfish fish tabby pet
    sister brother mom mum mother dad father son daughter wife husband partner boyfriend
    girlfriend fiance fiancé fiancee fiancée cousin aunt uncle niece nephew grandma grandmother
    grandpa grandfather granny nan friend roommate flatmate boss colleague coworker baby kid
    child twin stepmom stepdad stepmother stepfather teacher coach therapist neighbor
    neighbour"""
)
# Capitalized words that are not names however often they recur.
_NOT_NAMES = _set(
    """I I'm I've I'd I'll OK Ok Monday Tuesday Wednesday Thursday Friday Saturday Sunday
    January February March April May June July August September October November December
    Mr Mrs Ms Dr English Christmas Easter AI ChatGPT GPT"""
)
_CAP = re.compile(r"(?<![\w'’])([A-Z][a-z]{2,})(?:['’]s)?\b")
# "my" in any case; the relation in lower case; the name capitalized.
_MY_REL_NAME = re.compile(
    r"\b(?i:my)\s+(?:(?:little|older|younger|big|baby|new|old|sweet|best|lovely)\s+)?"
    r"((?:[a-z-]+\s+)?[a-z-]+)\s*,?\s+([A-Z][a-z]{2,})\b"
)
_NAME_MY_REL = re.compile(r"\b([A-Z][a-z]{2,})(?:['’]s)?\s*,\s*my\s+((?:[a-z-]+\s+)?[a-z-]+)\b")


# Chinese: "我家柯基豆豆", "我表姐小雅", "我的猫团子": a relation word, then a two-character
# name (the common length; no dictionary to tell where a name ends).
ZH_RELATIONS = _set(
    """狗狗 猫咪 柯基 金毛 泰迪 哈士奇 边牧 柴犬 橘猫 布偶 英短 仓鼠 兔子 鹦鹉 乌龟 狗 猫
    姐姐 妹妹 哥哥 弟弟 表姐 表妹 表哥 表弟 堂哥 堂姐 堂弟 堂妹 妈妈 爸爸 老公 老婆 女儿 儿子
    奶奶 爷爷 外婆 外公 男朋友 女朋友 闺蜜 同事 老板"""
)
_ZH_REL_NAME = re.compile(
    r"我(?:家的|家|的)?("
    + "|".join(sorted(ZH_RELATIONS, key=len, reverse=True))
    + r")([\u4e00-\u9fff]{2})"
)
# A "name" starting with one of these is the sentence going on ("我妈妈说今天").
_ZH_NOT_NAME_START = frozenset(
    "的了是在我你他她它们吗呢吧和与就都也还又很太要会能把被给让对从到说有"
    "没不这那个些一么怎样哪为上下去来过着得想叫问觉最每今明昨已总"
)


def _relation(phrase: str) -> str | None:
    """The relation word at the end of "tabby cat" / "older sister", if it is one."""
    words = phrase.lower().split()
    return phrase.lower() if words and words[-1] in RELATIONS else None


class Names:
    """Per capitalized word: conversations, lower-case sightings and stated relations."""

    def __init__(self) -> None:
        # name -> [conversations, lowercase sightings, last conversation index, {relation: n}]
        self.names: dict[str, list[Any]] = {}

    def add(self, index: int, sentences: list[str], lower_words: set[str]) -> None:
        """One conversation's sentences (the person's prose) and the words it writes in lower
        case."""
        entry: list[Any] | None  # None from the lower-case lookup at the end
        for sentence in sentences:
            relations = [
                (m.group(2), _relation(m.group(1))) for m in _MY_REL_NAME.finditer(sentence)
            ]
            relations += [
                (m.group(1), _relation(m.group(2))) for m in _NAME_MY_REL.finditer(sentence)
            ]
            for m in _CAP.finditer(sentence):
                name = m.group(1)
                if m.start() == len(sentence) - len(sentence.lstrip()) and not any(
                    name == n for n, _ in relations
                ):
                    continue  # sentence-initial: capitalized anyway
                if name in _NOT_NAMES or name.lower() in ALL_STOPWORDS:
                    continue
                entry = self.names.setdefault(name, [0, 0, -1, {}])
                if entry[2] != index:
                    entry[0] += 1
                    entry[2] = index
            for name, rel in relations:
                if rel and name in self.names:
                    votes = self.names[name][3]
                    votes[rel] = votes.get(rel, 0) + 1
        self._add_chinese(index, "\n".join(sentences))
        for word in lower_words:  # "rust" written in lower case: a word, not a name
            if (entry := self.names.get(word.capitalize())) is not None:
                entry[1] += 1
        if len(self.names) > MAX_NAMES:
            ranked = sorted(self.names, key=lambda n: (-self.names[n][0], n))
            for name in ranked[MAX_NAMES // 2 :]:
                del self.names[name]

    def _add_chinese(self, index: int, text: str) -> None:
        """Names introduced with a relation ("我家柯基豆豆"), then every conversation that
        mentions them."""
        if not has_han(text):
            return
        for m in _ZH_REL_NAME.finditer(text):
            rel, name = m.group(1), m.group(2)
            if name[0] in _ZH_NOT_NAME_START or name[1] in _ZH_NOT_NAME_START:
                continue
            votes = self.names.setdefault(name, [0, 0, -1, {}])[3]
            votes[rel] = votes.get(rel, 0) + 1
        for name, entry in self.names.items():
            if entry[2] != index and entry[3] and "\u4e00" <= name[0] <= "\u9fff" and name in text:
                entry[0] += 1
                entry[2] = index

    def summary(self) -> list[dict[str, Any]]:
        """Recurring names the person said who they are ("my beagle Biscuit"), most
        conversations first. A capitalized word with no relation may be a place or a brand:
        it is left to the topics."""
        out = []
        for name, (convs, lower, _, votes) in sorted(
            self.names.items(), key=lambda kv: (-kv[1][0], kv[0])
        ):
            if convs < 2 or lower or not votes:
                continue
            relation = min(votes, key=lambda r: (-votes[r], r))
            out.append({"name": name, "relation": relation, "conversations": convs})
        return out[:MAX_SHOWN]

    def to_state(self) -> dict[str, Any]:
        return {"names": self.names}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Names:
        names = cls()
        names.names = {k: [v[0], v[1], v[2], dict(v[3])] for k, v in state["names"].items()}
        return names
