"""Texts the int8 build runs through the float32 model to measure activation ranges.

What matters is which hidden channels run large (BERT has a few "outlier" dimensions,
15x the median, on every kind of text), not the topics: a small mix of chat-like prose,
lists, code, numbers and other scripts is enough, and keeping it here makes the build
deterministic and offline. The reference sentences of the parity test are deliberately
not among them, so that test checks text the calibration never saw.
"""

from __future__ import annotations

CALIBRATION_TEXTS: tuple[str, ...] = (
    "Can you help me plan a week of dinners? I'm vegetarian, my partner isn't, and we "
    "both get home late on Tuesdays and Thursdays, so those nights need to be quick.",
    "Sure! Here's a plan that shares most ingredients. Monday: chickpea curry with rice "
    "(make extra). Tuesday: leftover curry in wraps. Wednesday: roasted vegetables with "
    "halloumi; add chicken thighs on a separate tray. Thursday: 15-minute pesto pasta.",
    "I've been feeling stuck at work lately. My manager keeps moving deadlines and I "
    "don't know whether to push back or just absorb it. I started there in March 2021.",
    "It sounds exhausting to keep adjusting. A few options: ask for a short weekly "
    "check-in about priorities, write down what slipped and why, and decide which "
    "battles matter most to you before the next review in October.",
    "def merge(a: list[int], b: list[int]) -> list[int]:\n    out = []\n    i = j = 0\n"
    "    while i < len(a) and j < len(b):\n        if a[i] <= b[j]:\n            "
    "out.append(a[i]); i += 1\n        else:\n            out.append(b[j]); j += 1\n"
    "    return out + a[i:] + b[j:]",
    "Why does my SQL query return duplicates? SELECT u.id, o.total FROM users u JOIN "
    "orders o ON o.user_id = u.id WHERE o.created_at > '2024-01-01' ORDER BY o.total DESC;",
    "Budget for the trip: flights 2 x 489 EUR, hotel 6 nights at 112 EUR, rail pass "
    "235 EUR, food about 45 EUR a day each. Total roughly 2,700 EUR, 15% over our plan.",
    "Write a short poem about the sea at night, the lighthouse blinking, and my "
    "grandfather who used to fish there every summer until 1998.",
    "Ich möchte mein Deutsch verbessern. Kannst du mir drei Sätze über das Wetter in "
    "Berlin schreiben und die Grammatik erklären?",
    "Je cherche un cadeau pour l'anniversaire de ma sœur : elle aime la randonnée, les "
    "romans policiers et le thé japonais.",
    "今日はとても疲れました。明日は早く起きて、公園を散歩したいです。",
    "Summarize this: The meeting covered Q3 results (revenue up 12%, churn flat), the "
    "hiring freeze, and the new onboarding flow. Action items: Ana drafts the FAQ by "
    "Friday; Tom checks the analytics events; everyone reviews the roadmap doc.",
    "lol ok that's hilarious 😂 but seriously, what should I text him back?? I don't "
    "want to sound too eager... maybe just 'sounds fun, see you at 8'?",
    "Symptoms: headache for three days, worse in the morning, no fever. I drink a lot "
    "of coffee and sleep about five hours. Should I see a doctor or wait it out?",
    "Explain the difference between a process and a thread, with an example of when "
    "you would use each, and what a race condition is.",
    "My goals for this year: run a half marathon, read 24 books, learn basic "
    "Portuguese, call my parents every Sunday, and save for a new bike.",
)
