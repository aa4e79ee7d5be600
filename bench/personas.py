"""Invented persons as ChatGPT exports, with planted life facts and paraphrased questions.

A deterministic generator for the retrieval and soulprint benchmarks: no real person, the
same arguments always give the same bytes.

Each person has seven planted facts (kinds in :data:`FACT_KINDS`): a pet by name, a sport,
a trip, an instrument they are learning, their job, a relative's wedding and a hobby. Each
fact is told by the person in several conversations (three by default), the way people
mention such things in passing while asking for help. The facts are buried among hundreds
to thousands of noise conversations: code help with identifiers and stack traces, trivia,
long assistant answers, and a few near-miss topics (other people's dogs, travel in general,
music theory) so that the right memory is not the only one on its subject.

For every fact there are questions that paraphrase it instead of repeating its words
("What is my four-legged companion called?" for "Biscuit chewed my sneakers again"), and
the words that show a chunk carries the fact (``Fact.evidence``).

English (``"en"``) and Chinese (``"zh"``) persons; a Chinese person's facts, questions and
most of their noise are written in Chinese (code help stays mixed, as it is in real life).

API::

    from bench.personas import make_person, make_persons

    person = make_person(0, language="en", n_noise=400)
    person.user_id          # a stable uuid string for this person
    person.conversations    # list of export conversation dicts, newest first
    person.write_zip(path)  # a 2024-shaped export zip (conversations.json + side files)
    person.facts            # 7 Fact objects
    person.interests        # planted interests (sport, instrument, hobby, pet, trip), in the
                            #   person's language, for the soulprint bench
    for fact, question in person.questions():
        ...                 # score a retrieved chunk with fact.is_hit(conversation_id, text)

    make_persons(n_en=2, n_zh=1, n_noise=400)   # English persons first, then Chinese

``Fact`` fields: ``kind`` (one of FACT_KINDS), ``label`` (short, the person's language),
``evidence`` (strings; a chunk holding any of them, from one of the fact's conversations,
carries the fact), ``conversation_ids`` (the export ids of the conversations that tell it),
``questions`` (paraphrases, the person's language).

Run ``python bench/personas.py OUT_DIR`` to write one zip per person of the default set
plus ``questions.json``.
"""

from __future__ import annotations

import json
import random
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.export_factory import add_node, make_message, write_zip  # noqa: E402

FACT_KINDS: tuple[str, ...] = ("pet", "sport", "trip", "instrument", "job", "wedding", "hobby")
INTEREST_KINDS: tuple[str, ...] = ("sport", "instrument", "hobby", "pet", "trip")
_NS = uuid.UUID("3b8e0c7a-61d4-4f0e-9a52-7c1d2e3f4a5b")
_START = datetime(2023, 1, 5, tzinfo=UTC).timestamp()
_SPAN = 3 * 365 * 86_400.0  # conversations spread over three years


def _uuid(*parts: object) -> str:
    return str(uuid.uuid5(_NS, "/".join(map(str, parts))))


@dataclass(frozen=True)
class Fact:
    """One planted fact of a person; see the module docstring for the fields."""

    kind: str
    label: str
    evidence: tuple[str, ...]
    conversation_ids: tuple[str, ...]
    questions: tuple[str, ...]

    def is_hit(self, conversation_id: str, text: str) -> bool:
        """Whether a retrieved chunk (its export conversation id and text) carries this fact."""
        if conversation_id not in self.conversation_ids:
            return False
        lowered = text.lower()
        return any(e.lower() in lowered for e in self.evidence)


@dataclass
class Person:
    """An invented person: their export conversations and what was planted in them."""

    key: str
    name: str
    language: str
    user_id: str
    conversations: list[dict[str, Any]]
    facts: tuple[Fact, ...]
    interests: tuple[str, ...]
    noise_count: int = field(default=0)

    def questions(self) -> list[tuple[Fact, str]]:
        """Every (fact, question) pair, facts in FACT_KINDS order."""
        return [(f, q) for f in self.facts for q in f.questions]

    def write_zip(self, path: str | Path) -> Path:
        """Write the export as a zip (``conversations.json`` plus the usual side files)."""
        return write_zip(path, self.conversations)


# --- planted facts -----------------------------------------------------------------------
# Each kind: slot values per person (cycled by person index), the user's statements (one per
# conversation, with the assistant's answer), questions that paraphrase, and evidence slots.

_EN_SLOTS: dict[str, list[dict[str, str]]] = {
    "pet": [
        {"species": "beagle", "name": "Biscuit", "thing": "my sneakers"},
        {"species": "tabby cat", "name": "Pickles", "thing": "the sofa cushions"},
        {"species": "corgi", "name": "Waffles", "thing": "the garden hose"},
        {"species": "grey parrot", "name": "Kiwi", "thing": "the window blinds"},
        {"species": "lop-eared rabbit", "name": "Clover", "thing": "the laptop charger"},
    ],
    "sport": [
        {"sport": "bouldering", "place": "the climbing gym", "gear": "chalk bag"},
        {"sport": "rowing", "place": "the river club", "gear": "rowing gloves"},
        {"sport": "volleyball", "place": "the beach courts", "gear": "knee pads"},
        {"sport": "fencing", "place": "the fencing salle", "gear": "mask and jacket"},
        {"sport": "table tennis", "place": "the community hall", "gear": "paddle rubber"},
    ],
    "trip": [
        {"country": "Iceland", "city": "Reykjavik", "sight": "the glaciers"},
        {"country": "Peru", "city": "Cusco", "sight": "Machu Picchu"},
        {"country": "Vietnam", "city": "Hanoi", "sight": "Ha Long Bay"},
        {"country": "Norway", "city": "Tromsø", "sight": "the northern lights"},
        {"country": "Morocco", "city": "Marrakesh", "sight": "the Atlas mountains"},
    ],
    "instrument": [
        {"instrument": "cello", "teacher": "Mrs. Okafor", "piece": "the Bach prelude"},
        {"instrument": "ukulele", "teacher": "a YouTube course", "piece": "Riptide"},
        {"instrument": "saxophone", "teacher": "Mr. Delgado", "piece": "Take Five"},
        {"instrument": "violin", "teacher": "Ms. Petrova", "piece": "the Vivaldi concerto"},
        {"instrument": "banjo", "teacher": "an online course", "piece": "Cripple Creek"},
    ],
    "job": [
        {"job": "pediatric nurse", "workplace": "the children's ward", "task": "night shifts"},
        {"job": "civil engineer", "workplace": "a bridge project", "task": "site inspections"},
        {
            "job": "high school chemistry teacher",
            "workplace": "Westbrook High",
            "task": "grading lab reports",
        },
        {
            "job": "air traffic controller",
            "workplace": "the regional tower",
            "task": "radar shifts",
        },
        {
            "job": "veterinary surgeon",
            "workplace": "a small animal clinic",
            "task": "spaying surgeries",
        },
    ],
    "wedding": [
        {"relative": "sister", "name": "Maya", "partner": "Jonah", "venue": "a vineyard"},
        {"relative": "brother", "name": "Tom", "partner": "Priya", "venue": "a lakeside barn"},
        {"relative": "cousin", "name": "Lena", "partner": "Marco", "venue": "a castle"},
        {"relative": "sister", "name": "Grace", "partner": "Ade", "venue": "a rooftop garden"},
        {"relative": "brother", "name": "Sam", "partner": "Noor", "venue": "a beach resort"},
    ],
    "hobby": [
        {"hobby": "pottery", "item": "the wheel", "made": "a lopsided bowl"},
        {"hobby": "birdwatching", "item": "binoculars", "made": "a list of 40 species"},
        {"hobby": "woodworking", "item": "a chisel set", "made": "a walnut side table"},
        {"hobby": "astrophotography", "item": "a star tracker", "made": "a photo of Orion"},
        {"hobby": "knitting", "item": "circular needles", "made": "a cable-knit scarf"},
    ],
}

_EN_STATEMENTS: dict[str, list[tuple[str, str]]] = {
    "pet": [
        (
            "{name} chewed through {thing} again last night. Is there a bitter spray that is safe "
            "for a {species}?",
            "Yes, there are bitter apple sprays made for animals. Test a small area first, and "
            "give {name} something allowed to chew so the habit has somewhere to go.",
        ),
        (
            "The vet says my {species} {name} needs to lose about a kilo. How should I cut back "
            "the food without making {name} miserable?",
            "Reduce portions by ten percent at a time, swap treats for vegetables or kibble from "
            "the daily ration, and add a short extra walk or play session.",
        ),
        (
            "I'm going away for a week. What should I tell the sitter who will look after "
            "{name}, my {species}?",
            "Write down feeding times and amounts, the vet's number, habits and fears, and where "
            "the lead, litter or cage supplies are kept.",
        ),
    ],
    "sport": [
        (
            "I've been doing {sport} three evenings a week at {place} and my forearms are "
            "wrecked. How do I recover between sessions?",
            "Rest days matter as much as training: sleep, protein, light mobility work and not "
            "going all out every session. Ease back in after a pain-free day.",
        ),
        (
            "What {gear} would you recommend for {sport}? I'm past the beginner stage now.",
            "Look for durable, well-fitting gear; ask others at your club what they use, and "
            "try before buying if you can.",
        ),
        (
            "There's a {sport} competition at {place} next month. How do I stop my nerves from "
            "ruining it?",
            "Keep your warm-up routine identical to training, focus on process goals, and treat "
            "the first round as practice.",
        ),
    ],
    "trip": [
        (
            "I'm finally booking {country}! Flying into {city} in June. What should I not miss?",
            "Give yourself time for {sight}, book guided excursions early in high season, and "
            "keep a flexible day for weather.",
        ),
        (
            "How many days would you plan around {city} if the main goal is {sight}?",
            "Three to four days is comfortable: one to arrive and adjust, two for the main "
            "excursion and a spare day in case of weather or delays.",
        ),
        (
            "Back from {country}. {sight} was unreal. Help me caption my photo album from {city}.",
            "Here are some ideas: 'Where the map ran out of words', 'Three weeks, one camera, "
            "zero regrets', 'Postcards from the edge of the world'.",
        ),
    ],
    "instrument": [
        (
            "I started {instrument} lessons with {teacher} and my left hand cramps after twenty "
            "minutes. Is that normal?",
            "Very common at the start. Keep practice sessions short, relax the thumb, and stop "
            "when it hurts; strength and ease come within weeks.",
        ),
        (
            "How do I practise {piece} on the {instrument} when I keep messing up the same bar?",
            "Slow that bar right down with a metronome, loop it ten times clean, then join it to "
            "the bar before and after.",
        ),
        (
            "Is it too late to learn the {instrument} at my age? {teacher} says I'm doing fine.",
            "It is never too late. Adults progress quickly with steady practice because they "
            "understand structure; listen to your teacher.",
        ),
    ],
    "job": [
        (
            "Work as a {job} is exhausting this month, {task} every week. Any tips for sleeping "
            "better?",
            "Keep a fixed wind-down routine, blackout curtains, and protect an anchor block of "
            "sleep at the same time each day.",
        ),
        (
            "Can you help me write my yearly self-review? I'm a {job} at {workplace}.",
            "Start with three concrete achievements, one thing you improved, one challenge you "
            "handled, and a goal for next year.",
        ),
        (
            "A new colleague starts at {workplace} on Monday. As a {job}, what should I show "
            "them first?",
            "Safety and escalation routines first, then the daily workflow, then who to ask for "
            "what. Pair them with you for the first week.",
        ),
    ],
    "wedding": [
        (
            "My {relative} {name} is marrying {partner} at {venue} in September and I'm giving "
            "a speech. Where do I start?",
            "Open with who you are, tell one short story that shows who {name} is, welcome "
            "{partner}, and end with a toast. Three minutes is plenty.",
        ),
        (
            "What do I wear to a wedding at {venue}? It's {name}'s big day, my {relative}.",
            "Check the dress code on the invitation; for an outdoor venue choose breathable "
            "fabric and shoes that cope with grass or sand.",
        ),
        (
            "{name} and {partner} asked for no gifts at the wedding. Is it rude to bring "
            "something anyway?",
            "Respect their wish. A heartfelt card is always welcome, or a contribution to a "
            "cause they named.",
        ),
    ],
    "hobby": [
        (
            "I finished {made} in my {hobby} class this week! What should I try next?",
            "Well done! Next try something that repeats a technique with one new element, so "
            "each piece builds on the last.",
        ),
        (
            "Is it worth buying {item} for {hobby} or should I keep borrowing?",
            "If you use it weekly, buy a decent mid-range one; the cheapest ones often frustrate "
            "beginners.",
        ),
        (
            "How do I find a {hobby} club near me? I love it but I do it alone.",
            "Look at community centres, library boards, local social media groups and "
            "specialist shops, which often run meetups.",
        ),
    ],
}

_EN_QUESTIONS: dict[str, tuple[str, ...]] = {
    "pet": (
        "What is the name of my four-legged companion?",
        "What kind of animal lives with me at home?",
        "Who chews my stuff when I'm not looking?",
    ),
    "sport": (
        "Which physical activity do I train for several nights each week?",
        "What athletic pursuit am I into?",
        "Was I preparing for some kind of tournament?",
    ),
    "trip": (
        "Where did I go on holiday abroad?",
        "Which far-away destination did I plan a journey to?",
        "What country did I visit on my vacation?",
    ),
    "instrument": (
        "What musical instrument am I studying?",
        "Who teaches me music?",
        "Which tune was I rehearsing?",
    ),
    "job": ("What do I do for a living?", "What is my profession?", "Where am I employed?"),
    "wedding": (
        "Which family member got married?",
        "Whose marriage ceremony was I giving a toast at?",
        "What was I supposed to say at the reception?",
    ),
    "hobby": (
        "What craft or pastime do I enjoy in my free time?",
        "What leisure activity do I practise on weekends?",
        "What did I make in my class?",
    ),
}

_EN_EVIDENCE: dict[str, tuple[str, ...]] = {
    "pet": ("{name}",),
    "sport": ("{sport}",),
    "trip": ("{country}", "{city}"),
    "instrument": ("{instrument}", "{teacher}"),
    "job": ("{job}", "{workplace}"),
    "wedding": ("{name}", "{partner}", "wedding"),
    "hobby": ("{hobby}", "{made}"),
}
_EN_LABEL: dict[str, str] = {
    "pet": "{species} called {name}",
    "sport": "{sport}",
    "trip": "trip to {country}",
    "instrument": "{instrument}",
    "job": "{job}",
    "wedding": "{relative} {name}'s wedding",
    "hobby": "{hobby}",
}
_EN_INTEREST: dict[str, str] = {
    "pet": "{species}",
    "sport": "{sport}",
    "trip": "travel to {country}",
    "instrument": "{instrument}",
    "hobby": "{hobby}",
}

_ZH_SLOTS: dict[str, list[dict[str, str]]] = {
    "pet": [
        {"species": "柯基", "name": "豆豆", "thing": "拖鞋"},
        {"species": "橘猫", "name": "团子", "thing": "沙发垫"},
        {"species": "仓鼠", "name": "米粒", "thing": "笼子里的木屋"},
        {"species": "边牧", "name": "可乐", "thing": "电线"},
    ],
    "sport": [
        {"sport": "羽毛球", "place": "体育馆", "gear": "球拍"},
        {"sport": "攀岩", "place": "攀岩馆", "gear": "攀岩鞋"},
        {"sport": "游泳", "place": "游泳馆", "gear": "泳镜"},
        {"sport": "乒乓球", "place": "社区活动中心", "gear": "球拍胶皮"},
    ],
    "trip": [
        {"country": "云南", "city": "大理", "sight": "洱海"},
        {"country": "新疆", "city": "喀什", "sight": "帕米尔高原"},
        {"country": "日本", "city": "京都", "sight": "伏见稻荷大社"},
        {"country": "西藏", "city": "拉萨", "sight": "布达拉宫"},
    ],
    "instrument": [
        {"instrument": "古筝", "teacher": "王老师", "piece": "渔舟唱晚"},
        {"instrument": "二胡", "teacher": "李老师", "piece": "赛马"},
        {"instrument": "尤克里里", "teacher": "网课", "piece": "小幸运"},
        {"instrument": "大提琴", "teacher": "陈老师", "piece": "天鹅"},
    ],
    "job": [
        {"job": "小学语文老师", "workplace": "实验小学", "task": "批改作文"},
        {"job": "软件测试工程师", "workplace": "一家游戏公司", "task": "回归测试"},
        {"job": "急诊科护士", "workplace": "市人民医院", "task": "夜班"},
        {"job": "建筑设计师", "workplace": "设计院", "task": "改图纸"},
    ],
    "wedding": [
        {"relative": "表姐", "name": "小雅", "partner": "阿杰", "venue": "海边酒店"},
        {"relative": "堂哥", "name": "建国", "partner": "丽丽", "venue": "老家的院子"},
        {"relative": "妹妹", "name": "晓晓", "partner": "志明", "venue": "草坪"},
        {"relative": "表哥", "name": "浩然", "partner": "静怡", "venue": "古镇"},
    ],
    "hobby": [
        {"hobby": "书法", "item": "毛笔", "made": "一幅春联"},
        {"hobby": "烘焙", "item": "烤箱", "made": "戚风蛋糕"},
        {"hobby": "摄影", "item": "定焦镜头", "made": "一组街拍"},
        {"hobby": "陶艺", "item": "拉坯机", "made": "一个茶杯"},
    ],
}

_ZH_STATEMENTS: dict[str, list[tuple[str, str]]] = {
    "pet": [
        (
            "{name}昨晚又把{thing}咬坏了，有没有对{species}安全的防咬喷雾？",
            "有专门给宠物用的苦味喷雾，先在小块地方试一下，同时给{name}准备可以啃的玩具。",
        ),
        (
            "兽医说我家{species}{name}要减重一公斤，怎么减少食量又不让它难受？",
            "每次减少一成的量，用蔬菜代替零食，再多加一次短时间的散步或游戏。",
        ),
        (
            "我下周出差，要请人照顾{name}，需要交代哪些事？",
            "写清楚喂食时间和分量、兽医电话、它的习惯和害怕的东西，以及用品放在哪里。",
        ),
    ],
    "sport": [
        (
            "我每周三个晚上去{place}练{sport}，手臂酸得不行，怎么恢复？",
            "休息和训练一样重要：保证睡眠和蛋白质，做轻度拉伸，不要每次都用尽全力。",
        ),
        (
            "打{sport}用什么{gear}比较好？我已经不算新手了。",
            "选择耐用、合适的装备，可以问问俱乐部里的人用什么，能试用最好。",
        ),
        (
            "下个月{place}有{sport}比赛，我太紧张了怎么办？",
            "热身流程和平时训练保持一致，关注动作本身，把第一轮当作练习。",
        ),
    ],
    "trip": [
        (
            "终于订好去{country}的行程了！六月飞{city}，有什么必去的？",
            "一定要留时间给{sight}，旺季的行程要提前预订，再留一天机动应对天气。",
        ),
        (
            "如果主要想看{sight}，在{city}待几天合适？",
            "三到四天比较舒服：一天适应，两天主要行程，再留一天备用。",
        ),
        (
            "从{country}回来了，{sight}太震撼了，帮我给{city}的相册写几句配文。",
            "可以试试：'地图之外的风景'、'一台相机，三周，无悔'、'来自远方的明信片'。",
        ),
    ],
    "instrument": [
        (
            "我跟{teacher}开始学{instrument}，练二十分钟左手就抽筋，正常吗？",
            "刚开始很常见。每次练短一点，放松拇指，疼了就停，几周后会好很多。",
        ),
        (
            "用{instrument}练{piece}总是在同一小节出错，怎么办？",
            "把那一小节用节拍器放慢，干净地重复十遍，再和前后小节连起来。",
        ),
        (
            "我这个年纪学{instrument}是不是太晚了？{teacher}说我进步还可以。",
            "永远不晚。成年人理解结构，坚持练习进步会很快，听老师的。",
        ),
    ],
    "job": [
        (
            "做{job}这个月太累了，每周都在{task}，怎么才能睡好？",
            "固定睡前流程，用遮光窗帘，每天在同一时间保证一段核心睡眠。",
        ),
        (
            "帮我写年度自我总结，我是{workplace}的{job}。",
            "先写三个具体成绩，一项改进，一个克服的困难，再写明年的目标。",
        ),
        (
            "下周一{workplace}来了新同事，作为{job}我应该先教他什么？",
            "先讲安全和上报流程，再讲日常工作流程，最后告诉他遇到问题找谁。",
        ),
    ],
    "wedding": [
        (
            "我{relative}{name}九月要和{partner}在{venue}办婚礼，我要上台致辞，从哪里开始写？",
            "先介绍自己，讲一个能体现{name}性格的小故事，欢迎{partner}，最后举杯祝福。",
        ),
        (
            "去{venue}参加婚礼穿什么好？是我{relative}{name}的大日子。",
            "看看请柬上的着装要求，户外场地选透气的衣服和适合草地的鞋。",
        ),
        (
            "{name}和{partner}说婚礼不收礼物，我还带点东西去会不会不礼貌？",
            "尊重他们的意愿，写一张用心的贺卡就很好。",
        ),
    ],
    "hobby": [
        (
            "这周{hobby}课上我完成了{made}！下一步该学什么？",
            "很棒！下一个作品重复一种技法再加一个新元素，一步一步来。",
        ),
        (
            "{hobby}要不要自己买{item}，还是继续借别人的？",
            "如果每周都用，买一个中档的；太便宜的常常让新手受挫。",
        ),
        (
            "怎么找到附近的{hobby}小组？我很喜欢但一直一个人玩。",
            "看看社区中心、图书馆公告栏、本地社交群和专业商店，常有线下活动。",
        ),
    ],
}

_ZH_QUESTIONS: dict[str, tuple[str, ...]] = {
    "pet": ("我养的小动物叫什么名字？", "我家里养的是什么动物？", "谁总是趁我不注意啃我的东西？"),
    "sport": (
        "我每周晚上坚持的运动是什么？",
        "我喜欢哪项体育锻炼？",
        "我之前是不是在准备什么比赛？",
    ),
    "trip": ("我出去旅游去了哪里？", "我计划去哪个远方的目的地？", "我假期去过的地方是哪儿？"),
    "instrument": ("我在学哪种乐器？", "谁在教我音乐？", "我在练习哪首曲子？"),
    "job": ("我是做什么工作的？", "我的职业是什么？", "我在哪里上班？"),
    "wedding": ("家里谁结婚了？", "我要在谁的婚宴上讲话？", "我在喜宴上准备说什么？"),
    "hobby": (
        "我业余时间喜欢做什么手工或消遣？",
        "我周末常做的休闲活动是什么？",
        "我在课上做出了什么作品？",
    ),
}
_ZH_LABEL: dict[str, str] = {
    "pet": "{species}{name}",
    "sport": "{sport}",
    "trip": "{country}旅行",
    "instrument": "{instrument}",
    "job": "{job}",
    "wedding": "{relative}{name}的婚礼",
    "hobby": "{hobby}",
}
_ZH_INTEREST: dict[str, str] = {
    "pet": "{species}",
    "sport": "{sport}",
    "trip": "{country}旅行",
    "instrument": "{instrument}",
    "hobby": "{hobby}",
}

_EN_NAMES = ("Alex Morgan", "Jamie Chen", "Riley Okafor", "Sam Novak", "Taylor Reyes")
_ZH_NAMES = ("林晓", "张伟", "陈静", "王磊")

# --- noise -------------------------------------------------------------------------------

_IDENTS = (
    "user_id",
    "order_total",
    "fetch_rows",
    "parse_config",
    "retry_count",
    "session_token",
    "build_index",
    "cache_key",
    "normalize_path",
    "render_table",
    "load_fixtures",
    "OrderService",
    "invoiceRepo",
    "handleSubmit",
    "useEffect",
    "df_merged",
    "payload_bytes",
    "batch_size",
    "max_workers",
    "schema_version",
)
_ERRORS = (
    "KeyError: 'user_id'",
    "TypeError: 'NoneType' object is not subscriptable",
    "ValueError: invalid literal for int() with base 10: 'abc'",
    "AttributeError: 'list' object has no attribute 'items'",
    "psycopg.errors.UniqueViolation: duplicate key value violates unique constraint",
    "TypeError: Cannot read properties of undefined (reading 'map')",
    "RecursionError: maximum recursion depth exceeded",
    "ModuleNotFoundError: No module named 'requests'",
    "IndexError: list index out of range",
    "java.lang.NullPointerException at com.example.App.main(App.java:14)",
)
_LANGS = ("Python", "TypeScript", "Go", "SQL", "Rust", "Java")
_TRIVIA_EN = (
    (
        "Why is the sky blue?",
        "Sunlight scatters off air molecules, and shorter blue "
        "wavelengths scatter much more than red ones (Rayleigh scattering).",
    ),
    (
        "How long do dogs usually live?",
        "Most dogs live 10 to 13 years; small breeds tend to live longer than giant breeds.",
    ),
    (
        "Who invented the telephone?",
        "Alexander Graham Bell got the first patent in 1876, "
        "though Antonio Meucci and Elisha Gray worked on similar devices.",
    ),
    ("What's the tallest mountain in Africa?", "Kilimanjaro in Tanzania, at 5,895 metres."),
    (
        "How many strings does a harp have?",
        "A concert pedal harp has 47 strings; smaller lever harps have 22 to 38.",
    ),
    (
        "What's the difference between weather and climate?",
        "Weather is the day-to-day state of the atmosphere; climate is its average over decades.",
    ),
    (
        "Do cats really land on their feet?",
        "Usually, thanks to the righting reflex, but falls from low heights can still injure them.",
    ),
    (
        "Why do onions make you cry?",
        "Cutting them releases syn-propanethial-S-oxide, a gas "
        "that irritates the eyes' tear glands.",
    ),
    (
        "What is the capital of Australia?",
        "Canberra, chosen as a compromise between Sydney and Melbourne.",
    ),
    (
        "How do vaccines work?",
        "They train the immune system to recognise a pathogen by "
        "showing it a harmless piece or weakened form of it.",
    ),
    ("Which planet has the most moons?", "Saturn, with well over a hundred confirmed moons."),
    (
        "Is it safe to travel with a passport that expires in four months?",
        "Many countries require six months of validity; check the rules of your destination.",
    ),
    (
        "What does a wedding planner do?",
        "They manage budget, vendors, timeline and the day's "
        "logistics so the couple does not have to.",
    ),
    (
        "What is a major scale?",
        "A seven-note scale with the pattern whole, whole, half, whole, whole, whole, half steps.",
    ),
    (
        "How do I get better at chess?",
        "Study tactics daily, review your lost games, and learn a small opening repertoire well.",
    ),
    (
        "Why do leaves change colour in autumn?",
        "Chlorophyll breaks down and reveals yellow "
        "and orange pigments; red comes from anthocyanins made in autumn.",
    ),
)
_TOPICS_EN = (
    "the history of the printing press",
    "how compound interest works",
    "the causes of the French Revolution",
    "how solar panels generate power",
    "the basics of sourdough fermentation",
    "how to negotiate a salary",
    "the rules of cricket",
    "how black holes form",
    "how to write a cover letter",
    "the pros and cons of electric cars",
    "how the stock market works",
    "how to plan a weekly budget",
    "the basics of machine learning",
    "the history of the Roman Empire",
    "how to start composting at home",
)
_PARAGRAPHS_EN = (
    "There are a few ideas worth separating here. The first is the mechanism itself, which "
    "is simpler than it sounds once you see the moving parts. The second is the history of "
    "how people came to understand it, which explains many of the odd names we still use.",
    "In practice, most people only need the broad outline. The details matter when you have "
    "to make a decision with real consequences, and then it pays to read a primary source "
    "rather than a summary.",
    "A common misconception is that the effect is instant. In reality it builds up over "
    "time, and the early stages are easy to miss. That is why regular checks beat a single "
    "big review.",
    "If you want to go deeper, start with an introductory book, then look at a few worked "
    "examples, and only then move to the specialist literature. Skipping steps tends to "
    "leave gaps that show up later.",
    "It also helps to compare two or three alternatives side by side. Write down the costs, "
    "the benefits and the risks of each, and be honest about what you do not know yet.",
    "Finally, remember that the numbers change from year to year and from country to "
    "country. Treat any figure you read as a starting point and verify it for your case.",
)
_TRIVIA_ZH = (
    ("天空为什么是蓝色的？", "阳光被空气分子散射，蓝光波长短，散射得比红光多得多。"),
    ("狗一般能活多少年？", "大多数狗能活10到13年，小型犬通常比大型犬长寿。"),
    ("非洲最高的山是哪座？", "坦桑尼亚的乞力马扎罗山，海拔5895米。"),
    ("猫真的总是四脚着地吗？", "通常是，因为有翻正反射，但低处坠落也可能受伤。"),
    ("切洋葱为什么会流泪？", "切开时释放的气体会刺激眼睛的泪腺。"),
    ("澳大利亚的首都是哪里？", "堪培拉，是悉尼和墨尔本之间的折中选择。"),
    ("疫苗是怎么起作用的？", "它让免疫系统提前认识病原体的无害部分，从而产生防御。"),
    ("哪颗行星的卫星最多？", "土星，已确认的卫星超过一百颗。"),
    ("护照还有四个月过期能出国吗？", "很多国家要求六个月以上有效期，出发前请查清目的地规定。"),
    ("婚礼策划师负责什么？", "负责预算、供应商、流程和当天的各种安排。"),
    ("什么是大调音阶？", "七个音组成的音阶，音程关系是全全半全全全半。"),
    ("秋天树叶为什么会变色？", "叶绿素分解后露出黄色和橙色色素，红色来自秋天生成的花青素。"),
)
_TOPICS_ZH = (
    "活字印刷的历史",
    "复利是怎么计算的",
    "太阳能电池板的原理",
    "如何谈薪资",
    "黑洞是怎么形成的",
    "怎么写求职信",
    "电动车的优缺点",
    "股票市场如何运作",
    "如何做每周预算",
    "机器学习入门",
    "罗马帝国的历史",
    "在家堆肥的方法",
)
_PARAGRAPHS_ZH = (
    "这里有几个概念需要分开来看。第一是机制本身，看清楚各个部分之后其实并不复杂。第二是人们认识它的历史，"
    "这也解释了为什么很多名称听起来有些奇怪。",
    "实际生活中，大多数人只需要了解大概。只有在需要做出重要决定时，细节才真正重要，这时最好去读原始资料。",
    "一个常见的误解是效果会立刻出现。实际上它是逐渐积累的，早期阶段很容易被忽略，所以定期检查比一次性大检查更好。",
    "如果想深入了解，可以先读一本入门书，再看几个实例，最后再去读专业文献。跳过步骤往往会留下漏洞。",
    "把两三个方案放在一起比较也很有帮助。写下每个方案的成本、收益和风险，并诚实面对自己还不知道的部分。",
    "最后，数字每年都在变化，不同地区也不一样。看到的任何数据都只是起点，要针对自己的情况核实。",
)


class _Conv:
    """One conversation in the shape of its year's export (2023 / 2024 / 2025)."""

    def __init__(self, key: str, title: str, start: float) -> None:
        year = datetime.fromtimestamp(start, UTC).year
        self.era = str(min(max(year, 2023), 2025))
        self.id = _uuid("conv", key)
        self.t = start
        self.conv: dict[str, Any] = {
            "title": title,
            "create_time": start,
            "update_time": start,
            "mapping": {},
            "moderation_results": [],
            "current_node": None,
            "plugin_ids": None,
            "id": self.id,
            "_era": self.era,
        }
        if self.era != "2023":
            self.conv.update(
                conversation_id=self.id,
                default_model_slug="gpt-4o",
                gizmo_id=None,
                is_archived=False,
            )
        self.last = add_node(self.conv, None, None, node_id=_uuid("root", key))
        self.last = add_node(
            self.conv,
            make_message("system", "", era=self.era, hidden=True, message_id=_uuid("sys", key)),
            self.last,
        )

    def say(self, role: str, text: str, rng: random.Random) -> None:
        self.t += rng.randint(20, 300)
        msg = make_message(
            role,
            text,
            era=self.era,
            create_time=self.t,
            message_id=_uuid("msg", self.id, len(self.conv["mapping"])),
        )
        self.last = add_node(self.conv, msg, self.last)

    def done(self) -> dict[str, Any]:
        self.conv["current_node"] = self.last
        self.conv["update_time"] = self.t
        del self.conv["_era"]
        return self.conv


def _code_noise(rng: random.Random, zh: bool) -> tuple[str, list[tuple[str, str]]]:
    lang = rng.choice(_LANGS)
    err = rng.choice(_ERRORS)
    a, b, c = rng.sample(_IDENTS, 3)
    line = rng.randint(12, 480)
    trace = (
        f'Traceback (most recent call last):\n  File "app/{a}.py", line {line}, in {b}\n'
        f"    result = {c}[{a}]\n{err}"
    )
    ask = (
        f"我的{lang}代码报错了，{b} 里调用 {c} 的时候：\n{trace}\n怎么修？"
        if zh
        else f"My {lang} code fails when {b} calls {c}:\n{trace}\nHow do I fix it?"
    )
    fix = (
        f"The error comes from `{c}` being accessed before `{a}` is set. Guard it:\n\n"
        f'```\nif {a} is None:\n    raise ValueError("{a} is required")\n'
        f"value = {c}.get({a!r}, default)\n```\n\nAlso add a test for the empty case and "
        f"log `{b}` inputs so the next failure shows what came in."
    )
    follow = "谢谢，那 {x} 要不要也加个默认值？" if zh else "Thanks. Should {x} get a default too?"
    turns = [("user", ask), ("assistant", fix)]
    if rng.random() < 0.6:
        x = rng.choice(_IDENTS)
        turns += [
            ("user", follow.format(x=x)),
            (
                "assistant",
                f"Yes, give `{x}` an explicit default and document it; "
                f"implicit `None` values are what caused the first bug.",
            ),
        ]
    title = f"{lang} {err.split(':')[0]} in {b}"
    return title, turns


def _trivia_noise(rng: random.Random, zh: bool) -> tuple[str, list[tuple[str, str]]]:
    pool = _TRIVIA_ZH if zh else _TRIVIA_EN
    turns: list[tuple[str, str]] = []
    for q, a in rng.sample(pool, rng.randint(1, 3)):
        turns += [("user", q), ("assistant", a)]
    return turns[0][1][:40], turns


def _long_noise(rng: random.Random, zh: bool) -> tuple[str, list[tuple[str, str]]]:
    topic = rng.choice(_TOPICS_ZH if zh else _TOPICS_EN)
    paras = _PARAGRAPHS_ZH if zh else _PARAGRAPHS_EN
    body = "\n\n".join(rng.sample(paras, rng.randint(3, len(paras))))
    ask = f"给我详细讲讲{topic}。" if zh else f"Can you explain {topic} in detail?"
    intro = f"关于{topic}：\n\n" if zh else f"Here is an overview of {topic}.\n\n"
    turns = [("user", ask), ("assistant", intro + body)]
    if rng.random() < 0.4:
        more = "能再举个例子吗？" if zh else "Can you give me a concrete example?"
        turns += [("user", more), ("assistant", "\n\n".join(rng.sample(paras, 3)))]
    return topic, turns


def _fill(template: str, slots: dict[str, str]) -> str:
    return template.format(**slots)


def make_person(index: int, language: str = "en", n_noise: int = 400, mentions: int = 3) -> Person:
    """Person number ``index`` of ``language`` ("en" or "zh"), with ``n_noise`` noise
    conversations and each fact told in ``mentions`` conversations (at most 3)."""
    if language not in ("en", "zh"):
        raise ValueError("language must be 'en' or 'zh'")
    zh = language == "zh"
    slots_by_kind = _ZH_SLOTS if zh else _EN_SLOTS
    statements = _ZH_STATEMENTS if zh else _EN_STATEMENTS
    questions = _ZH_QUESTIONS if zh else _EN_QUESTIONS
    labels = _ZH_LABEL if zh else _EN_LABEL
    interest_tpl = _ZH_INTEREST if zh else _EN_INTEREST
    names = _ZH_NAMES if zh else _EN_NAMES
    key = f"{language}{index}"
    rng = random.Random(f"persona/{key}")
    mentions = max(1, min(mentions, 3))

    # Plan: (kind or None, statement index) per conversation, shuffled over time.
    plan: list[tuple[str | None, int]] = [(k, i) for k in FACT_KINDS for i in range(mentions)]
    plan += [(None, i) for i in range(n_noise)]
    rng.shuffle(plan)
    starts = sorted(_START + rng.random() * _SPAN for _ in plan)

    conversations: list[dict[str, Any]] = []
    fact_convs: dict[str, list[str]] = {k: [] for k in FACT_KINDS}
    for n, ((kind, i), start) in enumerate(zip(plan, starts, strict=True)):
        if kind is None:
            maker = rng.choices((_code_noise, _trivia_noise, _long_noise), (4, 3, 3))[0]
            title, turns = maker(rng, zh)
        else:
            slots = slots_by_kind[kind][index % len(slots_by_kind[kind])]
            user, reply = statements[kind][i]
            turns = [("user", _fill(user, slots)), ("assistant", _fill(reply, slots))]
            # A further exchange on something else, as real conversations drift.
            _, extra = _trivia_noise(rng, zh)
            turns += extra[:2]
            title = _fill(user, slots)[:40]
        conv = _Conv(f"{key}/{n}", title, start)
        for role, text in turns:
            conv.say(role, text, rng)
        conversations.append(conv.done())
        if kind is not None:
            fact_convs[kind].append(conv.id)

    facts = []
    for kind in FACT_KINDS:
        slots = slots_by_kind[kind][index % len(slots_by_kind[kind])]
        if zh:
            evidence = tuple(slots[s] for s in _ZH_EVIDENCE[kind])
        else:
            evidence = tuple(_fill(e, slots) for e in _EN_EVIDENCE[kind])
        facts.append(
            Fact(
                kind=kind,
                label=_fill(labels[kind], slots),
                evidence=evidence,
                conversation_ids=tuple(fact_convs[kind]),
                questions=questions[kind],
            )
        )
    interests = tuple(
        _fill(interest_tpl[k], slots_by_kind[k][index % len(slots_by_kind[k])])
        for k in INTEREST_KINDS
    )
    conversations.sort(key=lambda c: -c["create_time"])  # newest first, like real exports
    return Person(
        key=key,
        name=names[index % len(names)],
        language=language,
        user_id=_uuid("user", key),
        conversations=conversations,
        facts=tuple(facts),
        interests=interests,
        noise_count=n_noise,
    )


_ZH_EVIDENCE: dict[str, tuple[str, ...]] = {
    "pet": ("name",),
    "sport": ("sport",),
    "trip": ("country", "city"),
    "instrument": ("instrument", "teacher"),
    "job": ("job", "workplace"),
    "wedding": ("name", "partner"),
    "hobby": ("hobby", "made"),
}


def make_persons(n_en: int = 2, n_zh: int = 1, n_noise: int = 400) -> list[Person]:
    """``n_en`` English persons then ``n_zh`` Chinese ones, each with ``n_noise`` noise
    conversations."""
    return [make_person(i, "en", n_noise) for i in range(n_en)] + [
        make_person(i, "zh", n_noise) for i in range(n_zh)
    ]


def main(argv: list[str]) -> int:
    """Write every default person's zip and a questions.json into the directory argv[0]."""
    out = Path(argv[0] if argv else "bench/.cache/personas")
    out.mkdir(parents=True, exist_ok=True)
    index = []
    for person in make_persons():
        zpath = person.write_zip(out / f"{person.key}.zip")
        index.append(
            {
                "key": person.key,
                "name": person.name,
                "language": person.language,
                "user_id": person.user_id,
                "zip": zpath.name,
                "interests": list(person.interests),
                "facts": [
                    {
                        "kind": f.kind,
                        "label": f.label,
                        "evidence": list(f.evidence),
                        "conversation_ids": list(f.conversation_ids),
                        "questions": list(f.questions),
                    }
                    for f in person.facts
                ],
            }
        )
    (out / "questions.json").write_text(json.dumps(index, ensure_ascii=False, indent=1))
    print(f"wrote {len(index)} persons to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
