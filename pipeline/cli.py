"""`soulprint-import` entry point: dispatches to pipeline.commands.<name>."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings

from pipeline.errors import SoulprintError

# Each name is a module in pipeline/commands exposing register(subparsers).
# Imported lazily so `parse` never pays for the web stack and the reverse.
COMMANDS = (
    "parse",
    "run",
    "status",
    "cancel",
    "retry",
    "db",
    "migrate",
    "serve",
    "relay",
    "sweep",
    "replay",
    "doctor",
    "search",
    "models",
    "janitor",
)


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="soulprint-import",
        description="Turn a ChatGPT export into searchable memory and a soulprint.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    wanted = argv[0] if argv and argv[0] in COMMANDS else None
    for name in COMMANDS if wanted is None else (wanted,):
        try:
            module = importlib.import_module(f"pipeline.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"pipeline.commands.{name}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # pgserver asks platformdirs for a runtime dir; on servers without XDG_RUNTIME_DIR that
    # warns on every start, which is noise to a person reading progress.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # inside the try: a reader that left shows up here
        return code
    except SoulprintError as exc:
        # Errors raised on purpose carry a sentence (a bad setting names its variable).
        print(f"soulprint-import: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # `status | head`: the reader has gone. Send what is still buffered to /dev/null
        # so the interpreter's final flush does not complain either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a shell reports it


if __name__ == "__main__":
    sys.exit(main())
