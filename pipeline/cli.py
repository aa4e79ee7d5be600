"""`soulprint-import` entry point: dispatches to pipeline.commands.<name>."""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

# Each name is a module in pipeline/commands exposing register(subparsers).
# Imported lazily so `parse` never pays for the web stack and the reverse.
COMMANDS = (
    "parse",
    "run",
    "status",
    "cancel",
    "retry",
    "db",
    "serve",
    "relay",
    "sweep",
    "replay",
    "models",
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
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
