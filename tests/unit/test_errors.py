"""One root for the project's errors (issue 10): every exception a module of pipeline/ or
handlers/ defines is a SoulprintError, so `except SoulprintError` at a command's edge catches
each error raised on purpose (with its sentence) and nothing that is a bug."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import handlers
import pipeline
from pipeline.errors import SoulprintError

# Not errors for a person: a packaging bug found at import, and private control flow.
EXEMPT = {"pipeline.queries.QueryFileError"}


def test_every_error_class_has_the_one_root() -> None:
    seen = []
    for package in (pipeline, handlers):
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            module = importlib.import_module(info.name)
            for name, cls in inspect.getmembers(module, inspect.isclass):
                if cls.__module__ != module.__name__ or not issubclass(cls, BaseException):
                    continue
                if name.startswith("_") or f"{cls.__module__}.{name}" in EXEMPT:
                    continue
                seen.append(cls)
    assert len(seen) > 15  # the walk saw the errors
    assert [c for c in seen if not issubclass(c, SoulprintError)] == []
