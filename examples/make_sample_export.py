"""Write examples/sample-export.zip: a small synthetic ChatGPT export (no real person).

Usage: ``python examples/make_sample_export.py [OUT.zip]``

The person is invented: Inês, a backend developer in Lisbon who grew up in Seville, bakes
sourdough, runs, has a dog called Miso, learns guitar and plans a trip to Japan. Her
chats span March 2023 to January 2026 at all hours, in English, Spanish and Portuguese.

The zip is shaped like a 2026 export (conversations split into
``conversations-000.json``, ``-001.json``, plus chat.html and user.json), while each
conversation keeps the shape of its era: 2023 ones have only ``id`` and custom
instructions as a hidden system message; 2024/2025 ones add ``conversation_id`` and
``user_editable_context``; 2026 ones drop ``children``. Edge cases included: custom
instructions, tool calls and tool output, an edited message and a regenerated answer
(branches off the active thread), an image-only message, voice messages, thoughts and
reasoning recaps, a code message, a null title. Output is byte-for-byte deterministic.
"""

from __future__ import annotations

import json
import random
import sys
import uuid
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

NS = uuid.UUID("a4c5b3e2-1d2f-4e6a-9b8c-7d6e5f4a3b2c")
OUT = Path(__file__).resolve().parent / "sample-export.zip"
PER_SHARD = 20

ABOUT = (
    "I'm a backend developer in Lisbon, originally from Seville. I bake sourdough, run "
    "most mornings and I'm learning guitar."
)
HOW = "Be direct, skip the fluff, and give me code in Python when it helps."
# ChatGPT's own wording around the person's texts, as real exports hold it (both eras).
PROFILE_PREAMBLE = (
    "The user provided the following information about themselves. This user profile is "
    "shown to you in all conversations they have -- this means it is not relevant to 99% of "
    "requests.\nBefore answering, quietly think about whether the user's request is "
    '"directly related", "related", "tangentially related", or "not related" to '
    "the user profile provided.\nUser profile:\n"
)
HOW_PREAMBLE = "The user provided the additional info about how they would like you to respond:\n"

# Each conversation: (title, era, start "YYYY-MM-DD HH:MM", turns). A turn is
# (role, text) or a dict for the special cases handled in build().
CONVERSATIONS: list[tuple[str | None, str, str, list[Any]]] = [
    (
        "Sourdough starter not rising",
        "2023",
        "2023-03-04 09:12",
        [
            (
                "user",
                "My sourdough starter stopped rising after I moved it to the fridge for a "
                "week. It smells like nail polish remover. Is it dead?",
            ),
            (
                "assistant",
                "Almost certainly not. That acetone smell means the yeast and bacteria "
                "are hungry and producing ethyl acetate. Take it out, discard all but "
                "about 50 g, feed it 1:1:1 with flour and water at room temperature, "
                "and repeat every 12 hours. It usually bounces back within two or three "
                "feedings.",
            ),
            ("user", "I fed it twice and now it doubled in 6 hours. Can I bake tomorrow?"),
            (
                "assistant",
                "Yes. Doubling within 4–8 hours at room temperature is the sign you "
                "want. Use it at or just before its peak, when the top is domed and "
                "full of bubbles.",
            ),
        ],
    ),
    (
        "Python dict merge",
        "2023",
        "2023-03-09 22:41",
        [
            {"custom_instructions": True},
            (
                "user",
                "what's the cleanest way to merge two dicts in python 3.11 where the second "
                "one wins on conflicts?",
            ),
            (
                "assistant",
                "Use the union operator:\n\n```python\nmerged = defaults | overrides\n"
                "```\n\nIt returns a new dict; `defaults |= overrides` updates in place.",
            ),
            ("user", "and if the values are nested dicts and I want a deep merge?"),
            (
                "assistant",
                "There's nothing built in. A small recursive function does it:\n\n"
                "```python\ndef deep_merge(a: dict, b: dict) -> dict:\n    out = dict(a)\n"
                "    for k, v in b.items():\n        if isinstance(v, dict) and "
                "isinstance(out.get(k), dict):\n            out[k] = deep_merge(out[k], v)"
                "\n        else:\n            out[k] = v\n    return out\n```",
            ),
        ],
    ),
    (
        "Receta de salmorejo",
        "2023",
        "2023-04-16 13:05",
        [
            (
                "user",
                "¿Me das la receta de salmorejo de mi abuela? Bueno, la clásica cordobesa. "
                "Quiero hacerla para mis compañeros de trabajo en Lisboa.",
            ),
            (
                "assistant",
                "Claro. Para 4 personas: 1 kg de tomates maduros, 200 g de pan del día "
                "anterior, 1 diente de ajo, 150 ml de aceite de oliva virgen extra y sal. "
                "Tritura los tomates con el ajo, añade el pan y deja que se empape 10 "
                "minutos, luego emulsiona con el aceite en hilo. Sirve muy frío con "
                "huevo duro picado y jamón.",
            ),
            (
                "user",
                "Perfecto, gracias. Mi abuela le ponía un chorrito de vinagre de Jerez, "
                "¿eso es herejía?",
            ),
            (
                "assistant",
                "Para nada, muchas casas lo hacen. Un chorrito pequeño realza el tomate.",
            ),
        ],
    ),
    (
        "First 10k training plan",
        "2023",
        "2023-05-02 06:30",
        [
            (
                "user",
                "I can run 5k in about 31 minutes. I want to run a 10k in October without "
                "dying. I can train 4 mornings a week. Can you make me a plan?",
            ),
            (
                "assistant",
                "Here's a 20-week plan in three blocks. Weeks 1–6: three easy runs of "
                "30–40 minutes plus one longer run growing from 6 to 8 km. Weeks 7–14: "
                "add one session of intervals (6 × 800 m) and grow the long run to 11 "
                "km. Weeks 15–20: keep the long run at 10–12 km, taper the last 10 "
                "days. Keep easy runs truly easy: you should be able to talk.",
            ),
            ("user", "My left knee hurts a bit going downstairs after long runs. Should I worry?"),
            (
                "assistant",
                "Pain on stairs after long runs often points to patellofemoral stress. "
                "Cut the long run back for a week, add squats and step-downs, and check "
                "your shoes' mileage. If it persists or swells, see a physiotherapist.",
            ),
        ],
    ),
    (
        "Late night thoughts",
        "2023",
        "2023-06-11 01:47",
        [
            (
                "user",
                "can't sleep. do you ever think about how weird it is that I moved to a "
                "country where I didn't speak the language and now I dream in portuguese "
                "sometimes",
            ),
            (
                "assistant",
                "It is remarkable. Dreaming in a new language is often a sign it has "
                "moved from something you translate into something you live in. What "
                "made you choose Lisbon?",
            ),
            (
                "user",
                "a job offer and the light. honestly mostly the light. and it's close "
                "enough to seville that I can visit my grandmother",
            ),
        ],
    ),
    (
        "Postgres index not used",
        "2023",
        "2023-07-20 15:22",
        [
            (
                "user",
                "I have an index on orders(created_at) but EXPLAIN shows a seq scan for "
                "WHERE created_at > now() - interval '7 days'. Table has 40M rows.",
            ),
            (
                "assistant",
                "Check three things: 1) statistics are fresh (`ANALYZE orders`); 2) the "
                "predicate is selective enough — if 7 days is a large share of rows the "
                "planner prefers a seq scan; 3) the column type matches (timestamptz vs "
                "timestamp comparisons can block the index).",
            ),
            (
                "user",
                "it was the stats. ANALYZE fixed it. ugh, autovacuum was disabled on that "
                "table by someone years ago",
            ),
            (
                "assistant",
                "That would do it. Re-enable autovacuum for the table and consider "
                "lowering `autovacuum_analyze_scale_factor` for big, append-heavy tables.",
            ),
        ],
    ),
    (
        None,
        "2023",
        "2023-08-03 19:58",
        [
            ("user", "translate to portuguese: 'I'm sorry I'm late, the tram broke down'"),
            ("assistant", '"Desculpe o atraso, o elétrico avariou."'),
        ],
    ),
    (
        "Guitar chord changes",
        "2023",
        "2023-09-14 21:10",
        [
            (
                "user",
                "I've been learning guitar for 3 weeks. Changing from G to C is so slow "
                "that the song falls apart. Any tricks?",
            ),
            (
                "assistant",
                "Practise the change alone: one minute of G→C→G as slowly as needed, "
                "counting changes, every day. Keep your ring finger anchored where "
                "fingerings allow, and look for the common 'pivot' finger. Speed comes "
                "from repetition, not effort.",
            ),
            ("user", "one minute changes, ok. I got 14 today. my fingertips are destroyed lol"),
        ],
    ),
    (
        "Dog pulls on leash",
        "2023",
        "2023-10-22 08:15",
        [
            (
                "user",
                "Miso (2 year old shiba) pulls like a tractor on walks. Treats don't "
                "interest him outside. Help",
            ),
            (
                "assistant",
                "Shibas are famously independent. Try higher-value food (chicken, "
                "cheese), stop moving whenever the leash goes tight, and reward the "
                "moment it slackens. Short, boring training walks first; exciting "
                "walks later.",
            ),
        ],
    ),
    (
        "Script to rename photos",
        "2023",
        "2023-11-30 23:02",
        [
            (
                "user",
                "write me a python script that renames all jpgs in a folder to their "
                "EXIF date like 2023-11-30_2302.jpg",
            ),
            (
                "assistant",
                "```python\nfrom pathlib import Path\nfrom PIL import Image\n\nfor p in "
                "Path('.').glob('*.jpg'):\n    exif = Image.open(p).getexif()\n    taken "
                "= exif.get(306)  # DateTime\n    if not taken:\n        continue\n    "
                "name = taken.replace(':', '-', 2).replace(' ', '_').replace(':', '')[:15]"
                "\n    p.rename(p.with_name(f'{name}.jpg'))\n```\n\nRun it on a copy first.",
            ),
            (
                "user",
                "two photos taken in the same minute overwrote each other. oops. good thing "
                "I used a copy",
            ),
            ("assistant", "Add a counter when the target exists, e.g. `2023-11-30_2302-2.jpg`."),
        ],
    ),
    (
        "Gift for grandmother",
        "2024",
        "2024-01-06 11:40",
        [
            {"custom_instructions": True},
            (
                "user",
                "My grandmother turns 90 next month. She has everything, hates clutter and "
                "loves flamenco and her garden. Gift ideas?",
            ),
            (
                "assistant",
                "A few clutter-free ideas: tickets to a flamenco show with you as her "
                "date; a recorded playlist of the songs she danced to, played on a "
                "simple speaker; a day where you redo a corner of her garden together; "
                "or a printed book of family photos with her stories written beside "
                "them.",
            ),
            (
                "user",
                "the photo book with her stories. I'll record her telling them when I visit "
                "in february. that's perfect",
            ),
        ],
    ),
    (
        "Docker compose healthcheck",
        "2024",
        "2024-02-13 10:03",
        [
            (
                "user",
                "my api container starts before postgres is ready and crashes. "
                "depends_on doesn't help",
            ),
            (
                "assistant",
                "Use a healthcheck on the database and `condition: service_healthy`:\n\n"
                "```yaml\nservices:\n  db:\n    image: postgres:16\n    healthcheck:\n"
                '      test: ["CMD-SHELL", "pg_isready -U postgres"]\n      interval: '
                "2s\n      retries: 30\n  api:\n    depends_on:\n      db:\n        "
                "condition: service_healthy\n```",
            ),
            (
                "user",
                "works. also adding retry on connect in the app itself, because prod is "
                "not compose",
            ),
            ("assistant", "Good instinct: the app should survive a database restart anyway."),
        ],
    ),
    (
        "Plot my running paces",
        "2024",
        "2024-03-03 07:55",
        [
            (
                "user",
                "Here are my last 8 runs as km:minutes — 5:31, 6:35, 8:52, 5:29, 10:61, "
                "6:34, 12:75, 5:28. Plot pace per run and tell me if I'm getting faster.",
            ),
            {
                "tool_call": "import matplotlib.pyplot as plt\nruns = [(5,31),(6,35),(8,52),(5,29),"
                "(10,61),(6,34),(12,75),(5,28)]\npace = [m/k for k, m in runs]\n"
                "plt.plot(pace, marker='o')\nplt.savefig('pace.png')\nprint(pace)",
                "output": "[6.2, 5.83, 6.5, 5.8, 6.1, 5.67, 6.25, 5.6]",
            },
            (
                "assistant",
                "Your short runs are getting faster (6:12 → 5:36 per km), and your long "
                "runs hold steady around 6:05–6:30 even as they get longer. That's "
                "exactly the pattern you want.",
            ),
        ],
    ),
    (
        "Lisbon weekend for friends",
        "2024",
        "2024-04-19 18:20",
        [
            (
                "user",
                "Friends from Seville visit next weekend. They've been to Lisbon once. "
                "Suggest things that aren't the obvious tourist stuff.",
            ),
            {"browse": "Lisbon events April 2024"},
            (
                "assistant",
                "Try a morning at LX Factory before the crowds, the Gulbenkian garden, a "
                "ferry to Cacilhas for grilled fish with a view back to the city, "
                "sunset at Miradouro da Senhora do Monte, and a fado vadio night in "
                "Mouraria where locals sing.",
            ),
            ("user", "fado vadio is a great idea, they'll love it"),
        ],
    ),
    (
        "Is my code review too harsh",
        "2024",
        "2024-05-08 17:45",
        [
            (
                "user",
                "A junior dev on my team got upset about my code review. I left 23 "
                "comments. Most were small. Was I too harsh?",
            ),
            (
                "assistant",
                "Twenty-three comments can feel like a verdict even when each one is "
                "fair. Separate what must change from what's taste, batch the small "
                "things into one note, and say what's good. A short call often lands "
                "better than a wall of comments.",
            ),
            (
                "user",
                "yeah. I remember how I felt as a junior. I'll talk to him tomorrow and "
                "label nits as nits",
            ),
        ],
    ),
    (
        "What is this plant",
        "2024",
        "2024-06-02 12:30",
        [
            {"image_only": True},
            (
                "assistant",
                "I can't see enough detail to be sure. Could you describe the leaves or "
                "send a closer photo?",
            ),
            {
                "image_with_text": "Closer photo. It's on my balcony and the leaves are turning "
                "yellow from the bottom."
            },
            (
                "assistant",
                "That looks like a pothos. Yellowing lower leaves usually mean "
                "overwatering: let the top few centimetres of soil dry out before "
                "watering again, and make sure the pot drains.",
            ),
        ],
    ),
    (
        "Explain consistent hashing",
        "2024",
        "2024-07-11 14:12",
        [
            (
                "user",
                "Explain consistent hashing like I'm a backend dev who knows hash maps "
                "but never needed sharding.",
            ),
            (
                "assistant",
                "Picture the hash space as a ring. Each server gets a few points on "
                "the ring; each key goes to the first server point clockwise from its "
                "hash. Adding a server only moves the keys between its points and "
                "their predecessors — about 1/N of keys — instead of reshuffling "
                "everything like `hash % N` does. Virtual nodes (many points per "
                "server) even out the load.",
            ),
            ("user", "ok the ring picture finally made it click. thanks"),
        ],
    ),
    (
        "Voice note while walking Miso",
        "2024",
        "2024-08-24 07:20",
        [
            {
                "voice": "hey so I'm walking the dog and I had an idea for the bakery pop-up, what "
                "if we sell bread by subscription to the neighbours, like one loaf every "
                "friday",
                "reply": "That can work well: a small fixed list lets you bake exactly what's "
                "sold. Start with ten neighbours, one kind of loaf, and a simple pickup "
                "time.",
            },
            ("user", "ten neighbours. ok. I'll ask at the building tonight"),
        ],
    ),
    (
        "Japan trip planning",
        "2024",
        "2024-09-15 20:35",
        [
            (
                "user",
                "Planning 2 weeks in Japan next April with my partner. We like food, "
                "walking, small towns, onsen. Not big on nightlife. Rough route?",
            ),
            (
                "assistant",
                "A relaxed route: Tokyo (4 nights) → Matsumoto (2) → Takayama (2) → "
                "Kanazawa (2) → Kyoto (4). Add a ryokan night with onsen in Okuhida "
                "between Matsumoto and Takayama. A 14-day JR pass is borderline; price "
                "the legs individually first.",
            ),
            {
                "edited": "Actually we are 3 people, my sister is coming too",
                "edited_reply": "With three people, consider renting a car for the Alps section.",
            },
            ("user", "Is April too crowded because of cherry blossoms?"),
            (
                "assistant",
                "Early April is peak sakura, so Kyoto and Tokyo will be busy. Book "
                "ryokans now, and visit famous spots at 7 am. Takayama's spring "
                "festival is on 14–15 April if you can time it.",
            ),
        ],
    ),
    (
        "Regex for ISO dates",
        "2024",
        "2024-10-03 16:48",
        [
            ("user", "regex to match ISO 8601 dates with optional time and timezone?"),
            (
                "assistant",
                "For the common forms:\n\n```regex\n^\\d{4}-\\d{2}-\\d{2}"
                "(?:[T ]\\d{2}:\\d{2}(?::\\d{2}(?:\\.\\d+)?)?(?:Z|[+-]\\d{2}:?\\d{2})?)?$"
                "\n```\n\nIt doesn't validate month lengths; parse with "
                "`datetime.fromisoformat` after matching.",
            ),
            {
                "regenerated": "Here's a strict regex covering every ISO 8601 variant, including "
                "week dates and ordinal dates: (a very long pattern)."
            },
            ("user", "the first one is what I need, thanks"),
        ],
    ),
    (
        "Saudades",
        "2024",
        "2024-11-17 23:50",
        [
            (
                "user",
                "Como se diz em português quando sentes falta de alguém mas também "
                "estás grata por ter vivido aquilo?",
            ),
            (
                "assistant",
                'Isso é quase a definição de "saudade": a falta de algo ou alguém, '
                'misturada com o carinho pela memória. Podes dizer "tenho saudades '
                'tuas" ou, mais poético, "guardo-te com saudade".',
            ),
            ("user", "guardo-te com saudade. vou escrever isso no cartão da minha avó"),
        ],
    ),
    (
        "Sourdough schedule with a day job",
        "2024",
        "2024-12-07 08:05",
        [
            (
                "user",
                "I work 9-6. How do I fit a sourdough bake into a weekday without getting up at 5?",
            ),
            (
                "assistant",
                "Shift fermentation to the fridge: mix at 7 pm, stretch and fold a few "
                "times until 10 pm, shape, and cold-retard overnight (and all day if "
                "needed, up to 36 hours). Bake straight from the fridge when you get "
                "home.",
            ),
        ],
    ),
    (
        "Team retro facilitation",
        "2025",
        "2025-01-21 09:30",
        [
            {"custom_instructions": True},
            (
                "user",
                "I'm facilitating our retro after a rough release. People are tired and a "
                "bit defensive. How do I keep it productive?",
            ),
            {"thoughts": "Consider psychological safety, format, time boxes."},
            (
                "assistant",
                "Open by stating the prime directive (everyone did their best with "
                "what they knew), use silent writing first so quieter people are "
                "heard, group themes, and pick at most two actions with owners. Keep "
                "it about the system, not people.",
            ),
            ("user", "silent writing first is smart. last time two people dominated"),
        ],
    ),
    (
        "Async Python timeouts",
        "2025",
        "2025-02-10 11:17",
        [
            (
                "user",
                "how do I put a timeout around a group of asyncio tasks so that if one "
                "hangs, all get cancelled?",
            ),
            ("assistant", "In 3.11+ combine a TaskGroup with `asyncio.timeout`:"),
            (
                "assistant_code",
                "async with asyncio.timeout(10):\n    async with asyncio.TaskGroup() "
                "as tg:\n        for url in urls:\n            "
                "tg.create_task(fetch(url))",
            ),
            ("user", "and the TaskGroup cancels the siblings when the timeout fires?"),
            (
                "assistant",
                "Yes: the timeout cancels the current task, the TaskGroup propagates "
                "cancellation to its children and waits for them, then TimeoutError is "
                "raised outside the block.",
            ),
        ],
    ),
    (
        "Feeling stuck at work",
        "2025",
        "2025-03-02 22:26",
        [
            (
                "user",
                "I've been at the same company for 4 years. I like the people but I'm not "
                "learning anymore. I'm scared to leave because it's comfortable. Thoughts?",
            ),
            (
                "assistant",
                "Comfort and growth pull in different directions, and both are "
                "legitimate. Before deciding, try naming what you want to learn next "
                "and ask whether it exists where you are. If it doesn't, leaving is "
                "less a jump than a step toward something specific.",
            ),
            (
                "user",
                "I want to work on data infrastructure at a bigger scale. we don't have "
                "that here. ok. I'll update my CV this weekend",
            ),
        ],
    ),
    (
        "Paella for 8",
        "2025",
        "2025-04-05 12:12",
        [
            ("user", "Voy a hacer paella para 8 en una paellera de 50 cm. ¿Cuánto arroz y caldo?"),
            (
                "assistant",
                "Para 8: unos 650–700 g de arroz bomba y aproximadamente tres veces "
                "su volumen de caldo, unos 2,2 litros, ajustando según el fuego. No "
                "remuevas después de repartir el arroz y deja que se forme el "
                "socarrat al final.",
            ),
        ],
    ),
    (
        "Japan trip: Takayama food",
        "2025",
        "2025-04-16 19:40",
        [
            {
                "voice": "we're in takayama, what should we eat tonight, we had ramen for lunch",
                "reply": "Try Hida beef: grilled on a hoba leaf with miso, or as sushi at the "
                "morning market stalls tomorrow. For dinner tonight, a small izakaya near "
                "the old town is perfect.",
            },
            ("user", "hoba miso was incredible. my sister wants to move here now"),
        ],
    ),
    (
        "Reasoning about a flaky test",
        "2025",
        "2025-05-27 16:03",
        [
            (
                "user",
                "A test passes locally and fails ~1 in 20 times in CI. It checks that two "
                "events are processed in order. Where do I look?",
            ),
            {"reasoning_recap": "Thought for 12 seconds"},
            (
                "assistant",
                "Ordering flakiness usually comes from concurrency the test doesn't "
                "control: parallel consumers, unordered queries (no ORDER BY), or "
                "timestamps with equal values. Make the ordering explicit in the code "
                "under test, then make the test deterministic rather than retrying it.",
            ),
            ("user", "no ORDER BY. of course. two events in the same millisecond"),
        ],
    ),
    (
        "Guitar: first song",
        "2025",
        "2025-06-30 21:55",
        [
            (
                "user",
                "I can finally play 'Wonderwall' all the way through without stopping. "
                "2 years after starting. What next?",
            ),
            (
                "assistant",
                "Congratulations — that's a real milestone. Next, pick something that "
                "stretches one skill: a fingerpicking song (e.g. 'Blackbird'), a "
                "barre-chord song, or learning the pentatonic scale to improvise.",
            ),
        ],
    ),
    (
        "Interview prep: system design",
        "2025",
        "2025-08-12 07:10",
        [
            (
                "user",
                "I have a system design interview for a data platform role. Practise "
                "with me: design an event ingestion pipeline for 1M events/sec.",
            ),
            (
                "assistant",
                "Let's start with requirements. Who produces the events, what "
                "latency do consumers need, how long do we keep raw data, and do we "
                "need exactly-once semantics anywhere?",
            ),
            (
                "user",
                "Producers are mobile apps, analytics can be 5 min late, keep raw for 30 "
                "days, exactly-once for billing events only.",
            ),
            (
                "assistant",
                "Then: an HTTPS edge that batches into a partitioned log (Kafka), "
                "keyed by user for ordering; a stream job writes compacted Parquet to "
                "object storage every minute; billing events go through an "
                "idempotent consumer with a dedupe key in Postgres. Size partitions "
                "for peak, not average.",
            ),
            ("user", "I got the offer!!! starting in october"),
        ],
    ),
    (
        "Mudança de emprego",
        "2025",
        "2025-09-20 10:00",
        [
            (
                "user",
                "Ajuda-me a escrever um email de despedida para a equipa. Quatro anos, "
                "gosto muito deles.",
            ),
            (
                "assistant",
                'Proposta: "Olá a todos, depois de quatro anos, sexta-feira é o meu '
                "último dia. Aprendi imenso convosco, e levo daqui mais amigos do que "
                "colegas. Obrigada por tudo — e continuem a mandar-me fotos do bolo de "
                'sexta. Um abraço, Inês"',
            ),
            ("user", "perfeito, só mudei o bolo para pastéis de nata"),
        ],
    ),
    (
        "New job: first week",
        "2025",
        "2025-10-09 20:44",
        [
            (
                "user",
                "First week at the new job. Everyone is nice but the codebase is huge and "
                "I feel slow. Normal?",
            ),
            (
                "assistant",
                "Completely normal. Most people take months to feel fluent in a big "
                "codebase. Keep a notes file of what you learn, ask the question "
                "after 20 minutes of being stuck, and ship one tiny change early.",
            ),
        ],
    ),
    (
        "Bread subscription spreadsheet",
        "2025",
        "2025-11-15 09:05",
        [
            (
                "user",
                "The bread subscription has 22 neighbours now! I'm drowning in WhatsApp "
                "messages. Simple way to track orders and payments?",
            ),
            (
                "assistant",
                "A single shared sheet: one row per neighbour, columns for loaf, "
                "weeks paid and a checkbox per Friday. Ask people to write their own "
                "changes by Wednesday night. Close orders at 22 loaves so baking "
                "stays fun.",
            ),
            ("user", "capping it so it stays fun. yes. that's the rule"),
        ],
    ),
    (
        "Run in the rain",
        "2026",
        "2026-01-03 06:45",
        [
            (
                "user",
                "Half marathon in 6 weeks and it's been raining every morning. Treadmill "
                "or just get wet?",
            ),
            (
                "assistant",
                "Get wet for easy runs and the long run — race day could be wet too — "
                "and use the treadmill for intervals if the streets are slippery.",
            ),
        ],
    ),
    (
        "Streaming JSON in Python",
        "2026",
        "2026-01-08 13:30",
        [
            (
                "user",
                "I need to parse a 1 GB JSON array without loading it into memory. "
                "Options in Python?",
            ),
            (
                "assistant",
                "Use ijson with the C backend: `ijson.items(f, 'item')` over the file "
                "opened in binary mode yields one element at a time, so memory stays "
                "flat regardless of file size.",
            ),
            ("user", "flat memory for 1 GB, love it. funny how this is literally my job now"),
        ],
    ),
    (
        "Miso's birthday",
        "2026",
        "2026-01-12 18:02",
        [
            {"image_only": True},
            (
                "user",
                "That's Miso with his birthday cake (dog-safe, peanut butter and carrot). "
                "He's 4 today!",
            ),
            ("assistant", "Happy birthday, Miso! He looks very proud of that cake."),
        ],
    ),
    (
        "Grandmother's stories book",
        "2026",
        "2026-01-18 21:15",
        [
            (
                "user",
                "I finished transcribing my grandmother's stories for the photo book. 34 "
                "stories. How do I order them?",
            ),
            (
                "assistant",
                "Chronologically works, but grouping by theme can be warmer: "
                "childhood, the village, dancing, love, the garden, family. Open with "
                "a story that sounds most like her voice.",
            ),
            (
                "user",
                "opening with the one where she dances at the feria in 1952. she still "
                "tells it with her hands",
            ),
        ],
    ),
    (
        "Resolution check-in",
        "2026",
        "2026-01-25 10:10",
        [
            (
                "user",
                "It's the end of January. My resolutions: run a half marathon, play "
                "guitar 15 min a day, read 12 books, and call my grandmother every Sunday. "
                "Honest check: I'm doing 3 of 4. Guess which one I'm failing.",
            ),
            ("assistant", "My guess is the books — reading is the easiest to crowd out."),
            ("user", "correct. two weeks into a novel I'm not enjoying. allowed to drop it?"),
            (
                "assistant",
                "Absolutely. Dropping a book you're not enjoying is how you make room "
                "for one you will.",
            ),
        ],
    ),
]


def _uid(*parts: object) -> str:
    return str(uuid.uuid5(NS, "/".join(map(str, parts))))


def _ts(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC).timestamp()


class Builder:
    """Builds one conversation's mapping in the shape of its era."""

    def __init__(self, index: int, title: str | None, era: str, start: str) -> None:
        self.index, self.era = index, era
        self.rng = random.Random(index)
        self.t = _ts(start)
        self.id = _uid("conv", index)
        self.conv: dict[str, Any] = {
            "title": title,
            "create_time": self.t,
            "update_time": self.t,
            "mapping": {},
            "moderation_results": [],
            "current_node": None,
            "plugin_ids": None,
            "id": self.id,
        }
        if era != "2023":
            self.conv.update(
                conversation_id=self.id,
                default_model_slug=self._model(),
                gizmo_id=None,
                is_archived=False,
            )
        if era in ("2025", "2026"):
            self.conv.update(conversation_template_id=None, safe_urls=[], disabled_tool_ids=[])
        self.last = self.add(None, None)
        self.last = self.add(self.message("system", "", hidden=True, timed=False), self.last)

    def _model(self) -> str:
        return {"2023": "gpt-4", "2024": "gpt-4o", "2025": "gpt-4o", "2026": "gpt-5"}[self.era]

    def add(self, message: dict[str, Any] | None, parent: str | None) -> str:
        mapping = self.conv["mapping"]
        nid = _uid("node", self.index, len(mapping))
        node: dict[str, Any] = {"id": nid, "message": message, "parent": parent}
        if self.era != "2026":
            node["children"] = []
            if parent is not None:
                mapping[parent]["children"].append(nid)
        mapping[nid] = node
        return nid

    def message(
        self,
        role: str,
        text: str = "",
        *,
        content: dict[str, Any] | None = None,
        hidden: bool = False,
        recipient: str = "all",
        meta: dict[str, Any] | None = None,
        timed: bool = True,
    ) -> dict[str, Any]:
        if timed:
            self.t += self.rng.randint(15, 240)
        metadata: dict[str, Any] = dict(meta or {})
        if hidden:
            metadata["is_visually_hidden_from_conversation"] = True
        if role == "assistant":
            metadata.setdefault("model_slug", self._model())
        msg: dict[str, Any] = {
            "id": _uid("msg", self.index, len(self.conv["mapping"])),
            "author": {"role": role, "name": None, "metadata": {}},
            "create_time": self.t if timed else None,
            "update_time": None,
            "content": content or {"content_type": "text", "parts": [text]},
            "end_turn": True if role == "assistant" else None,
            "metadata": metadata,
            "recipient": recipient,
        }
        if self.era != "2023":
            msg.update(status="finished_successfully", weight=1.0, channel=None)
        return msg

    def push(self, message: dict[str, Any]) -> None:
        self.last = self.add(message, self.last)

    def turn(self, turn: Any) -> None:
        if isinstance(turn, tuple):
            role, text = turn
            if role == "assistant_code":
                self.push(
                    self.message(
                        "assistant",
                        content={"content_type": "code", "language": "python", "text": text},
                    )
                )
            else:
                self.push(self.message(role, text))
            return
        if turn.get("custom_instructions"):
            if self.era == "2023":
                # The rendered text only (no user_context_message_data), as older 2023
                # exports hold it: both of the person's texts fenced in ChatGPT's wording.
                rendered = f"{PROFILE_PREAMBLE}```{ABOUT}```\n{HOW_PREAMBLE}```{HOW}```"
                self.push(
                    self.message(
                        "system",
                        rendered,
                        hidden=True,
                        timed=False,
                        meta={"is_user_system_message": True},
                    )
                )
            else:
                self.push(
                    self.message(
                        "user",
                        hidden=True,
                        timed=False,
                        content={
                            "content_type": "user_editable_context",
                            "user_profile": f"{PROFILE_PREAMBLE}```{ABOUT}```",
                            "user_instructions": f"{HOW_PREAMBLE}```{HOW}```",
                        },
                    )
                )
        elif "tool_call" in turn:
            self.push(
                self.message(
                    "assistant",
                    recipient="python",
                    content={
                        "content_type": "code",
                        "language": "python",
                        "text": turn["tool_call"],
                    },
                )
            )
            self.push(
                self.message(
                    "tool",
                    content={"content_type": "execution_output", "text": turn["output"]},
                    meta={"aggregate_result": {"status": "success"}},
                )
            )
        elif "browse" in turn:
            self.push(self.message("assistant", f'search("{turn["browse"]}")', recipient="browser"))
            self.push(
                self.message(
                    "tool",
                    content={
                        "content_type": "tether_browsing_display",
                        "result": "(results)",
                        "summary": None,
                    },
                )
            )
        elif turn.get("image_only"):
            self.push(
                self.message(
                    "user", content={"content_type": "multimodal_text", "parts": [self._image()]}
                )
            )
        elif "image_with_text" in turn:
            self.push(
                self.message(
                    "user",
                    content={
                        "content_type": "multimodal_text",
                        "parts": [self._image(), turn["image_with_text"]],
                    },
                )
            )
        elif "voice" in turn:
            self.push(
                self.message(
                    "user",
                    content={
                        "content_type": "multimodal_text",
                        "parts": [
                            {
                                "content_type": "audio_transcription",
                                "text": turn["voice"],
                                "direction": "in",
                            },
                            {
                                "content_type": "audio_asset_pointer",
                                "asset_pointer": "sediment://"
                                + _uid("audio", self.index, len(self.conv["mapping"])),
                                "format": "wav",
                            },
                        ],
                    },
                    meta={"voice_mode_message": True},
                )
            )
            self.push(
                self.message(
                    "assistant",
                    content={
                        "content_type": "multimodal_text",
                        "parts": [
                            {
                                "content_type": "audio_transcription",
                                "text": turn["reply"],
                                "direction": "out",
                            }
                        ],
                    },
                )
            )
        elif "thoughts" in turn:
            self.push(
                self.message(
                    "assistant",
                    content={
                        "content_type": "thoughts",
                        "thoughts": [{"summary": "Planning", "content": turn["thoughts"]}],
                    },
                )
            )
        elif "reasoning_recap" in turn:
            self.push(
                self.message(
                    "assistant",
                    content={"content_type": "reasoning_recap", "content": turn["reasoning_recap"]},
                )
            )
        elif "edited" in turn:
            # The person later edited this message: the first version and its answer stay
            # in the mapping as a sibling branch of the next user message, off the thread.
            old = self.add(self.message("user", turn["edited"]), self.last)
            self.add(self.message("assistant", turn["edited_reply"]), old)
        elif "regenerated" in turn:
            # A regenerated answer: a sibling of the kept answer, off the thread.
            parent = self.conv["mapping"][self.last]["parent"]
            self.add(self.message("assistant", turn["regenerated"]), parent)

    def _image(self) -> dict[str, Any]:
        return {
            "content_type": "image_asset_pointer",
            "asset_pointer": "file-service://file-" + _uid("img", self.index)[:8],
            "size_bytes": 182_344,
            "width": 1024,
            "height": 768,
            "metadata": None,
        }

    def done(self) -> dict[str, Any]:
        self.conv["current_node"] = self.last
        self.conv["update_time"] = self.t
        return self.conv


def build_conversations() -> list[dict[str, Any]]:
    """Every conversation, newest first like real exports."""
    out = []
    for index, (title, era, start, turns) in enumerate(CONVERSATIONS):
        b = Builder(index, title, era, start)
        for turn in turns:
            b.turn(turn)
        out.append(b.done())
    out.sort(key=lambda c: -c["create_time"])
    return out


def write(path: Path) -> None:
    """Write the zip: shards of PER_SHARD conversations plus the usual side files."""
    convs = build_conversations()
    members: list[tuple[str, bytes]] = [
        (
            "user.json",
            json.dumps(
                {
                    "id": "user-synthetic-ines",
                    "email": "ines@example.org",
                    "chatgpt_plus_user": True,
                }
            ).encode(),
        ),
        ("message_feedback.json", b"[]"),
        ("shared_conversations.json", b"[]"),
        ("chat.html", b"<!DOCTYPE html><html><body><p>Synthetic sample export.</p></body></html>"),
    ]
    for i in range(0, len(convs), PER_SHARD):
        members.append(
            (
                f"conversations-{i // PER_SHARD:03d}.json",
                json.dumps(
                    convs[i : i + PER_SHARD], ensure_ascii=False, separators=(",", ":")
                ).encode("utf-8"),
            )
        )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 31, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    write(target)
    print(f"wrote {target} ({len(CONVERSATIONS)} conversations)")
