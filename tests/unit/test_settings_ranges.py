"""Settings out of range or off the list are refused at start, naming the variable
(fresh-eyes review, finding 9), instead of hanging or failing deep inside an import."""

from __future__ import annotations

import typing

import pytest

from pipeline.cli import main
from pipeline.exports.chunker import POLICIES
from pipeline.settings import ChunkPolicy, Settings, SettingsError

_BAD = {
    "LEASE_SECONDS": "0",  # a lease that is over before it starts
    "STAGE_POOL_SIZE": "0",  # no worker: every import waits for ever
    "MAX_ATTEMPTS": "0",  # fails before the first attempt
    "CHUNK_TARGET_CHARS": "10",  # chunks smaller than a sentence
    "MAX_MESSAGE_CHARS": "0",  # every message cut to nothing
    "EMBEDDING_CONCURRENCY": "0",
    "STAGE_STALL_SECONDS": "-5",
    "RETRY_BACKOFF_SECONDS": "-1",
    "EMBEDDING_PROVIDER": "foo",  # failed the import at embedding, after parsing it all
    "CHUNK_POLICY": "sentences",
}


@pytest.mark.parametrize(("name", "value"), sorted(_BAD.items()))
def test_a_setting_out_of_range_is_refused_naming_it(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Guards the UX pitfall 'generic error messages' and pitfall 9 (stuck imports): a
    value of the right type but out of range (LEASE_SECONDS=0, STAGE_POOL_SIZE=0, an
    unknown EMBEDDING_PROVIDER, ...) used to be accepted and break imports later."""
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        Settings.from_env()
    assert str(info.value).startswith(f"{name}={value}: ")


def test_the_cli_says_which_setting_is_out_of_range(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A command started with a bad value exits 2 with one line naming the variable."""
    monkeypatch.setenv("STAGE_POOL_SIZE", "0")
    assert main(["parse", "whatever.zip"]) == 2
    err = capsys.readouterr().err
    assert "STAGE_POOL_SIZE=0" in err and "Traceback" not in err


def test_choices_ignore_case_and_match_the_code() -> None:
    """'OpenAI' is 'openai'; the chunk policies settings accept are the chunker's."""
    assert Settings(embedding_provider="OpenAI").embedding_provider == "openai"
    assert set(typing.get_args(typing.get_args(ChunkPolicy)[0])) == set(POLICIES)
