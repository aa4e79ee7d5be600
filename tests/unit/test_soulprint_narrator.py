"""The optional LLM narrator against a fake OpenAI-compatible server over real HTTP.

Guards pitfall: a flaky third-party call that either hangs the import, leaks the API key,
or fails the whole job; here it retries politely, then falls back to the offline text.
"""

from __future__ import annotations

import json
import logging

import pytest
from fake_llm import FakeLLM
from test_soulprint import maya

from pipeline.settings import Settings
from pipeline.soulprint import NarrationError, ProfileBuilder, build_soulprint, narrate

KEY = "sk-test-never-print-me-0123456789"


def llm_settings(base_url: str, **kw: object) -> Settings:
    return Settings(
        llm_provider="openai", llm_base_url=base_url, llm_api_key=KEY, llm_model="gpt-test", **kw
    )


def maya_profile() -> dict:
    builder = ProfileBuilder()
    for c in maya():
        builder.add(c)
    return builder.profile()


def test_no_provider_means_no_narration() -> None:
    assert narrate(maya_profile(), Settings()) is None
    assert narrate(maya_profile(), None) is None


def test_rate_limited_then_answered_honouring_retry_after() -> None:
    profile = maya_profile()
    waits: list[float] = []
    with FakeLLM(fail_times=2, fail_status=429, retry_after="7", api_key=KEY) as llm:
        text = narrate(profile, llm_settings(llm.base_url), sleep=waits.append)
    assert text is not None and text.startswith("# Your soulprint")
    assert waits == [7.0, 7.0]  # the server's Retry-After, not our own backoff
    assert len(llm.requests) == 3
    sent = llm.requests[-1]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["headers"]["Authorization"] == f"Bearer {KEY}"
    body = sent["json"]
    assert body["model"] == "gpt-test"
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    # The structured profile travels, with its quotes; the raw history does not.
    prompt = body["messages"][1]["content"]
    sent_profile = json.loads(prompt.split("\n", 1)[1])
    assert sent_profile == profile
    assert profile["quotes"][0]["text"] in prompt
    assert "Here is the function" not in prompt  # a raw user message never sent
    assert "quantum" not in prompt  # nor anything the assistant said


def test_server_errors_exhaust_retries_with_a_clear_error_and_no_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    waits: list[float] = []
    caplog.set_level(logging.DEBUG)
    with FakeLLM(fail_times=-1, fail_status=500) as llm, pytest.raises(NarrationError) as err:
        narrate(maya_profile(), llm_settings(llm.base_url), sleep=waits.append)
    assert "500" in str(err.value) and "attempts" in str(err.value)
    assert len(llm.requests) == 4 and len(waits) == 3
    assert KEY not in str(err.value) and KEY not in repr(err.value)
    assert KEY not in caplog.text


def test_wrong_key_fails_at_once_without_echoing_it() -> None:
    with FakeLLM(api_key="sk-the-right-one") as llm, pytest.raises(NarrationError) as err:
        narrate(maya_profile(), llm_settings(llm.base_url), sleep=lambda _: None)
    assert "401" in str(err.value) and KEY not in str(err.value)
    assert len(llm.requests) == 1  # a rejected key is not worth retrying


def test_a_long_retry_after_gives_up_at_once_for_the_offline_text() -> None:
    waits: list[float] = []
    with (
        FakeLLM(fail_times=-1, fail_status=429, retry_after="3600") as llm,
        pytest.raises(NarrationError, match="retry after 3600"),
    ):
        narrate(maya_profile(), llm_settings(llm.base_url), sleep=waits.append)
    assert len(llm.requests) == 1 and waits == []


def test_unreachable_server_is_a_narration_error() -> None:
    with FakeLLM() as llm:
        url = llm.base_url
    # The server is gone: connection refused on every attempt.
    with pytest.raises(NarrationError, match="transport"):
        narrate(maya_profile(), llm_settings(url), sleep=lambda _: None)


def test_build_soulprint_uses_the_narrative_and_says_so() -> None:
    with FakeLLM(reply="# Your soulprint\n\nA baker who runs.\n") as llm:
        profile, text = build_soulprint(maya(), llm_settings(llm.base_url))
    assert text == "# Your soulprint\n\nA baker who runs.\n"
    assert profile["narration"] == {"source": "llm", "model": "gpt-test"}


def test_build_soulprint_falls_back_to_the_offline_portrait() -> None:
    with FakeLLM(fail_times=-1, fail_status=503, retry_after="0") as llm:
        profile, text = build_soulprint(maya(), llm_settings(llm.base_url))
    assert profile["narration"]["source"] == "offline"
    assert "503" in profile["narration"]["fallback_reason"]
    assert KEY not in json.dumps(profile)
    _, offline_text = build_soulprint(maya())
    assert text == offline_text
    assert "sourdough" in text


def test_empty_export_never_calls_the_llm() -> None:
    with FakeLLM() as llm:
        profile, text = build_soulprint([], llm_settings(llm.base_url))
    assert llm.requests == []
    assert profile["narration"] == {"source": "offline"}
    assert "isn't enough" in text
