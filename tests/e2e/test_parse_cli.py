"""`soulprint-import parse PATH [--json]`: what a person or a script sees."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from export_factory import dumps, make_conversation, make_export, make_message, write_zip

from pipeline.cli import main

ROOT = Path(__file__).resolve().parents[2]


def parse_json(path: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    assert main(["parse", str(path), "--json"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1  # one JSON object on one line
    return json.loads(out)


def test_json_summary_counts_follow_the_contract(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Guards pitfall 4 (format variations) and 5 (progress counts): the JSON summary
    reports conversations, skipped, messages by role and chunks exactly."""
    convs: list = make_export(4, 3, era="mixed", custom_instructions=True)
    convs.append("not a conversation")
    convs.append(
        make_conversation(
            messages=[
                make_message("user", "run this"),
                make_message("assistant", "print(1)", content_type="code", recipient="python"),
                make_message("tool", content={"content_type": "execution_output", "text": "1"}),
                make_message("assistant", "It printed 1."),
            ],
            index=9,
        )
    )
    summary = parse_json(write_zip(tmp_path / "e.zip", convs, split=True), capsys)
    assert summary["conversations"] == 5 and summary["skipped"] == 1
    assert summary["messages"] == 14
    assert (summary["user_messages"], summary["assistant_messages"]) == (9, 5)
    assert summary["chunks"] >= 5
    assert summary["truncated"] is False and summary["error"] is None
    assert summary["cut_messages"] == 0


def test_truncated_file_exits_zero_with_truncated_true(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Guards pitfall 4 (incomplete exports): a broken file is still parsed up to the
    break; exit 0, truncated true and the error in the summary."""
    data = dumps(make_export(5, 2))
    path = tmp_path / "conversations.json"
    path.write_bytes(data[: int(len(data) * 0.7)])
    summary = parse_json(path, capsys)
    assert summary["truncated"] is True and summary["error"]
    assert 0 < summary["conversations"] < 5


@pytest.mark.parametrize("content", [None, b"just text", b'{"a": 1}'])
def test_not_an_export_exits_2_with_one_line_on_stderr(
    tmp_path: Path, content: bytes | None
) -> None:
    """Guards pitfall 4 (clear errors): a missing path or a file that is not an export
    exits 2 with exactly one line on stderr and nothing on stdout."""
    path = tmp_path / "upload.bin"
    if content is not None:
        path.write_bytes(content)
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "parse", str(path), "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and str(path) in proc.stderr


def test_human_summary_without_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Guards pitfall 5 (progress dead zone, readable feedback): without --json a short
    sentence with the counts is printed."""
    assert main(["parse", str(write_zip(tmp_path / "e.zip", make_export(2, 3)))]) == 0
    out = capsys.readouterr().out
    assert "2 conversations" in out and "6 messages" in out and "chunks" in out


def test_sample_export_in_the_repo_parses(capsys: pytest.CaptureFixture[str]) -> None:
    """Guards pitfall 4 (format variations): the shipped examples/sample-export.zip (the
    README's first command) mixes eras and edge cases and parses cleanly."""
    summary = parse_json(ROOT / "examples" / "sample-export.zip", capsys)
    # Counted by hand from examples/make_sample_export.py: custom instructions, tool
    # calls/output, thoughts, the image-only messages and the off-thread edit and
    # regeneration are not counted; voice messages and the image with a caption are.
    assert (summary["conversations"], summary["skipped"]) == (38, 0)
    assert (summary["user_messages"], summary["assistant_messages"]) == (67, 51)
    assert summary["messages"] == 118 and summary["truncated"] is False
