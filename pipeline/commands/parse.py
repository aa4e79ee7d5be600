"""`soulprint-import parse PATH`: read an export and count what an import would store.

Exit 0 whenever PATH is an export (a broken file included: ``truncated`` says so),
exit 2 with one line on stderr when it is unreadable or not an export.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

from pipeline.exports.chunker import chunk_conversation
from pipeline.exports.reader import NotAnExportError, open_export
from pipeline.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("parse", help="read an export and print what it holds (no database)")
    p.add_argument("path", type=Path, help="export .zip, conversations.json, shard or directory")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--max-message-chars",
        type=int,
        default=None,
        help="cut longer messages (default: MAX_MESSAGE_CHARS or 200000)",
    )
    p.add_argument(
        "--chunk-chars",
        type=int,
        default=None,
        help="chunk target size (default: CHUNK_TARGET_CHARS or 1000)",
    )
    p.set_defaults(func=run)


def summarize(
    path: Path, *, max_message_chars: int, chunk_chars: int, chunk_policy: str = "person"
) -> dict[str, Any]:
    """Read the whole export once; raises NotAnExportError like open_export."""
    reader = open_export(path, max_message_chars=max_message_chars)
    chunks = documents = 0
    for conv in reader:
        chunks += len(chunk_conversation(conv, chunk_chars, policy=chunk_policy))
        documents += len(conv.documents)
    s = reader.stats
    notes = reader.notes
    return {
        "path": str(path),
        "conversations": s.conversations,
        "skipped": s.skipped,
        "messages": s.messages,
        "user_messages": s.user_messages,
        "assistant_messages": s.assistant_messages,
        "chunks": chunks,
        "excluded": s.excluded,
        "canvas_documents": documents,
        "custom_instructions": notes.count("about_user", "about_model"),
        "memory_notes": notes.count("memory_note"),
        "cut_messages": s.cut_messages,
        "truncated": s.truncated,
        "error": s.error,
    }


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    try:
        summary = summarize(
            args.path,
            max_message_chars=args.max_message_chars or settings.max_message_chars,
            chunk_chars=args.chunk_chars or settings.chunk_target_chars,
            chunk_policy=settings.chunk_policy,
        )
    except NotAnExportError as exc:
        print(f"soulprint-import: {exc}", file=sys.stderr)
        return 2
    # Nothing readable to import: `run` ends such an export `failed` (exit 1), so does this.
    status = 0 if summary["conversations"] else 1
    if status:
        print(
            f"soulprint-import: {summary['path']}: no conversation could be read from it, "
            "so an import of it would fail",
            file=sys.stderr,
        )
    if args.json:
        sys.stdout.write(orjson.dumps(summary).decode() + "\n")
        return status
    print(
        f"{summary['path']}: {summary['conversations']:,} conversations "
        f"({summary['skipped']:,} skipped), {summary['messages']:,} messages "
        f"({summary['user_messages']:,} yours, {summary['assistant_messages']:,} from the "
        f"assistant), {summary['chunks']:,} memory chunks"
    )
    if summary["excluded"]:
        n = summary["excluded"]
        print(
            f"  {n:,} conversation{'s' if n != 1 else ''} you asked ChatGPT not to "
            "remember left out"
        )
    if summary["custom_instructions"] or summary["memory_notes"] or summary["canvas_documents"]:
        print(
            f"  {summary['custom_instructions']:,} custom-instruction texts, "
            f"{summary['memory_notes']:,} memory notes, "
            f"{summary['canvas_documents']:,} canvas documents"
        )
    if summary["cut_messages"]:
        print(f"  {summary['cut_messages']:,} very long messages were cut")
    if summary["truncated"]:
        print(f"  the file is broken; everything before the break was read: {summary['error']}")
    return status
