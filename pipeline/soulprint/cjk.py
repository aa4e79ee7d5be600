"""Topic candidates from Chinese (and Japanese kanji/katakana) text, which has no spaces.

No dictionary: runs of Han characters are cut at function characters and common function
words, and every 2- to 8-character piece of what remains is a candidate. Across
conversations the pieces that recur are the person's words ("羽毛球", "豆豆", "古筝");
`Topics.summary` then keeps the longest piece where a shorter one only ever appears inside
it ("羽毛" inside "羽毛球").
"""

from __future__ import annotations

import re

from .text import word_set as _set

MIN_N, MAX_N = 2, 8

# Common multi-character function words and request framings: never part of a topic.
_STOP_WORDS = sorted(
    _set(
        """可以 什么 怎么 怎么办 怎样 为什么 一下 时候 觉得 应该 需要 比较 非常 知道 现在 已经
    然后 如果 因为 所以 但是 还是 就是 这个 那个 这些 那些 这样 那样 大家 自己 有没有 问题
    帮忙 谢谢 请问 推荐 介绍 一些 东西 事情 方法 办法 建议 比如 例如 不是 没有 一个 多少
    合适 正常 开始 最近 今天 明天 昨天 每天 每周 每次 下次 一定 可能 其实 真的 感觉 告诉
    帮我 给我 详细 讲讲 一点 有点 有些 还有 或者 而且 以及 之后 之前 时间 一直 不会 不能
    不要 能不能 要不要 会不会 是不是 好的 好吗 行吗 多久 几天 几个 哪里 哪些 哪个 谁的
    这里 那里 这么 那么 特别 一样 起来 出来 下去 上去 意思 区别 例子 举个 如何 可是 可惜
    里面 那里 哪里"""
    ),
    key=lambda w: (-len(w), w),
)
_STOP_CHARS = frozenset(
    "的了是在我你他她它们吗呢吧啊呀哦嗯和与及或就都也还又很太要会能把被给让对从到说有"
    "没不这那个些一么怎样哪为上下去来过着得地之而但所以其该每再才已将并且用"
)
_HAN_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\u30a0-\u30ff]+")
_STOP_WORD_RE = re.compile("|".join(map(re.escape, _STOP_WORDS)))


def has_han(text: str) -> bool:
    """True when `text` holds any CJK ideograph or katakana (worth the n-gram pass)."""
    return _HAN_RUN.search(text) is not None


def candidates(text: str) -> set[str]:
    """The 2-8 character pieces of `text`'s Han runs, cut at function characters/words."""
    out: set[str] = set()
    for run in _HAN_RUN.findall(_STOP_WORD_RE.sub(" ", text)):
        piece = ""
        for ch in run + "的":  # a sentinel stop character flushes the last piece
            if ch in _STOP_CHARS:
                for n in range(MIN_N, min(MAX_N, len(piece)) + 1):
                    out.update(piece[i : i + n] for i in range(len(piece) - n + 1))
                piece = ""
            else:
                piece += ch
    return out


def contains(longer: str, shorter: str) -> bool:
    """Whether the candidate `shorter` is a piece of `longer`."""
    return len(longer) > len(shorter) and shorter in longer
