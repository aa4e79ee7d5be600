"""A fact the person told in passing, inside a request, is found by a question about it:
`run` (chunk policy "person", real MiniLM embedder) then `search`, end to end."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.embedded import searcher_url
from tests.cli_helpers import cli, cli_env, run_import
from tests.export_factory import make_conversation, make_message, write_zip

FACT = (
    "Can you suggest healthy snacks to pack for the week? I work night shifts as a "
    "paramedic in Bristol. Nothing with nuts please."
)
# Requests about work and life that a question about one's job lands near.
NOISE = (
    ("Can you explain how compound interest works?", "It is interest on interest."),
    ("Write a cover letter for a marketing assistant role.", "Dear hiring manager, ..."),
    ("How do I negotiate a salary for a new position?", "Research the market rate first."),
    ("What does a wedding planner do?", "They manage budget, vendors and the timeline."),
    ("What are the pros and cons of working from home?", "No commute, but isolation."),
    ("Explain the causes of the French Revolution.", "Debt, inequality and bread prices."),
    ("How do I write a resignation letter?", "Keep it short and give your notice."),
    ("What jobs are in demand in 2025?", "Nursing, software and energy technicians."),
    ("My Python code fails with KeyError: 'user_id'. How do I fix it?", "Use dict.get."),
    ("What is a good routine for a productive workday?", "Deep work first, then breaks."),
    ("Can you summarise the history of the Roman Empire?", "From Augustus to 476."),
)


def _conversation(index: int, user: str, answer: str) -> dict:
    messages = [
        make_message("user", user, create_time=1_700_000_000.0 + index * 3600),
        make_message("assistant", answer, create_time=1_700_000_030.0 + index * 3600),
    ]
    return make_conversation(index=index, messages=messages, title=user[:30])


def test_a_job_told_in_passing_is_found_by_asking_about_it(db_url: str, tmp_path: Path) -> None:
    """ "What is my occupation?" finds the message where the person said they work as a
    paramedic while asking about snacks: first, as the sentence that tells it. Embedded
    only as the whole request (CHUNK_POLICY=person-plain, before issue 11's recall work)
    that memory was not first: 11th of 12 by meaning, under requests about jobs in
    general."""
    convs = [_conversation(0, FACT, "Sure: hummus and carrots, boiled eggs, fruit.")]
    convs += [_conversation(i + 1, u, a) for i, (u, a) in enumerate(NOISE)]
    export = write_zip(tmp_path / "export.zip", convs)
    env = cli_env(db_url, tmp_path, SEARCH_DATABASE_URL=searcher_url(db_url))
    code, result = run_import(export, env)
    assert code == 0 and result["stage"] == "complete", result

    out = cli("search", "What is my occupation?", "--json", "--limit", "3", env=env)
    assert out.returncode == 0, out.stderr
    hits = json.loads(out.stdout)
    assert "paramedic" in hits[0]["content"], hits
    # One slot for the memory: the sentence, not also the request it came from.
    assert sum("paramedic" in h["content"] for h in hits) == 1, hits
