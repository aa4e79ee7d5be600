"""The offline model's one-time graph build when the machine gets in its way (review of
issue 13): a full disk, a build killed for memory or hung, a killed worker, a CPU quota,
and the operator being told before an import has to pay for the build."""

from __future__ import annotations

import json
import logging
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from pipeline.embedding import EmbedderUnavailable, onnx_cache
from pipeline.embedding.minilm import (
    MiniLMEmbedder,
    default_cache_dir,
    find_model_dir,
    usable_cpus,
)
from pipeline.embedding.readiness import graph_state, missing_graph_warning
from pipeline.settings import Settings
from tests.cli_helpers import LATEST_JOB, SAMPLE, cli, cli_env, wait_for

# The float graph the build writes first is ~90 MB: a 20 MB file-size limit makes that
# write fail with EFBIG, the way a full disk fails it with ENOSPC.
_FILE_LIMIT = 20 * 1024 * 1024


def _small_files() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (_FILE_LIMIT, _FILE_LIMIT))


def test_full_disk_fails_the_job_with_its_cause_and_retry_completes(
    db_url: str, tmp_path: Path
) -> None:
    """Guards pitfall 9 (status update failures leave the user stuck) and pitfall 6
    (resource exhaustion): a graph build that runs out of disk fails the import with a
    message about space, not "files look damaged, reinstall" (which would not help), names
    no worker path, and `retry` completes once there is room. `run` says before the pause
    that it is building the model."""
    env = cli_env(db_url, tmp_path / "data", SOULPRINT_MODEL_CACHE_DIR=str(tmp_path / "models"))
    out = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "run", str(SAMPLE)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        preexec_fn=_small_files,
    )
    assert out.returncode == 1, out.stderr[-3000:]
    assert out.stderr.count("Building the embedding model (one time") == 1
    job = wait_for(db_url, LATEST_JOB, lambda r: r["stage"] == "failed")
    message = job["error_message"]
    assert "space" in message and "retry" in message, message
    assert "damaged" not in message and "einstall" not in message
    assert str(tmp_path) not in message
    assert job["error_code"] == "embedder_unavailable"

    retried = cli("retry", str(job["id"]), "--json", env=env, timeout=600)
    assert retried.returncode == 0, retried.stderr[-3000:]
    assert json.loads(retried.stdout)["stage"] == "complete"
    state = graph_state(Settings().model_copy(update={"model_cache_dir": tmp_path / "models"}))
    assert state is not None and state.ready
    assert not list((tmp_path / "models").glob(".build-*"))  # each failed build cleaned up


def _add_child_limit(monkeypatch: pytest.MonkeyPatch, limit: int, value: int) -> None:
    setup = onnx_cache._child_setup

    def limited() -> None:
        setup()
        resource.setrlimit(limit, (value, value))

    monkeypatch.setattr(onnx_cache, "_child_setup", limited)


def test_build_killed_for_memory_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Guards pitfall 6 (memory exhaustion): a build the kernel kills (the OOM killer on a
    512 MB instance; here a CPU-time limit's SIGXCPU, the same death by signal) is reported
    as killed, pointing to `models build` at deploy time, not as damaged files."""
    _add_child_limit(monkeypatch, resource.RLIMIT_CPU, 1)
    with pytest.raises(EmbedderUnavailable) as info:
        MiniLMEmbedder(cache_dir=tmp_path).embed(["hello"])
    message = str(info.value)
    assert "memory" in message and "soulprint-import models build" in message, message
    assert "damaged" not in message and str(tmp_path) not in message


def test_hung_build_is_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Guards pitfall 9 (stuck work): a build that does not finish is stopped after
    BUILD_TIMEOUT_SECONDS instead of holding the embedder (and the import) forever."""
    monkeypatch.setattr(onnx_cache, "BUILD_TIMEOUT_SECONDS", 0.5)
    start = time.monotonic()
    with pytest.raises(EmbedderUnavailable, match="did not finish in time"):
        MiniLMEmbedder(cache_dir=tmp_path).embed(["hello"])
    assert time.monotonic() - start < 30
    assert not list(tmp_path.glob(".build-*"))


def test_build_child_dies_with_its_parent(tmp_path: Path):
    """Guards pitfall 6 (memory exhaustion): when the worker is killed (OOM, deploy), its
    build child does not run on as an orphan holding ~450 MB."""
    code = (
        "import sys; from pathlib import Path; from pipeline.embedding import onnx_cache; "
        "onnx_cache.build_in_child(Path(sys.argv[1]), 'int8', 256, Path(sys.argv[2]))"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", code, str(find_model_dir()), str(tmp_path / "model.onnx")]
    )
    try:
        deadline = time.monotonic() + 60
        children: list[psutil.Process] = []
        while not children and time.monotonic() < deadline:
            children = psutil.Process(parent.pid).children()
            time.sleep(0.05)
        assert children, "the build child never started"
        parent.kill()
        parent.wait(10)
        _gone, alive = psutil.wait_procs(children, timeout=10)
        assert alive == [], "the build child outlived its parent"
    finally:
        parent.kill()
    assert not (tmp_path / "model.onnx").exists()


def test_leftovers_of_killed_builds_are_removed(tmp_path: Path):
    """Guards pitfall 6 (disk exhaustion): each killed build leaves a ~60 MB `.build-*`
    directory; the next build removes those nothing has written to for minutes, and
    leaves a build in progress alone."""
    old = tmp_path / ".build-old"
    (old / "sub").mkdir(parents=True)
    (old / "sub" / "model.onnx").write_bytes(b"x" * 1000)
    stale = time.time() - onnx_cache.DEBRIS_AGE_SECONDS - 60
    for p in (old / "sub" / "model.onnx", old / "sub", old):
        os.utime(p, (stale, stale))
    busy = tmp_path / ".build-busy"
    busy.mkdir()
    os.utime(busy, (stale, stale))
    (busy / "model.onnx").write_bytes(b"being written")  # fresh: a build in progress
    graph = tmp_path / "all-MiniLM-L6-v2-x-b2-int8.onnx"
    graph.write_bytes(b"kept")

    assert onnx_cache.remove_debris(tmp_path) == [old]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".build-busy", graph.name]


@pytest.mark.parametrize(
    ("files", "cpus"),
    [
        ({"cpu.max": "50000 100000\n"}, 1),  # cgroup v2, half a CPU
        ({"cpu.max": "max 100000\n"}, None),  # v2, no quota: the affinity decides
        ({"cpu/cpu.cfs_quota_us": "100000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 1),  # v1
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({}, None),  # no cgroup files at all
    ],
)
def test_thread_pool_follows_a_cgroup_cpu_quota(
    tmp_path: Path, files: dict[str, str], cpus: int | None, monkeypatch: pytest.MonkeyPatch
):
    """Guards the 0.5-CPU instance (a CFS quota, not an affinity mask): the pool gets one
    worker there, not one per host CPU taking turns on half a core."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert usable_cpus(tmp_path) == (cpus if cpus is not None else 4)


def test_missing_graph_is_reported_before_an_import_pays_for_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    """Guards pitfall 6 (memory exhaustion): with no prebuilt graph for the configured
    precision, `serve` warns once at start-up and names `models build`; with one, or with
    another provider, it says nothing."""
    from pipeline.commands.serve import _warn_if_model_unbuilt

    empty = Settings().model_copy(update={"model_cache_dir": tmp_path / "none"})
    with caplog.at_level(logging.WARNING):
        _warn_if_model_unbuilt(empty)
    [record] = caplog.records
    assert "soulprint-import models build" in record.getMessage()

    # The test session's cache (SOULPRINT_MODEL_CACHE_DIR, tests/conftest.py), built once.
    shared = Settings(model_cache_dir=default_cache_dir())
    MiniLMEmbedder(cache_dir=shared.model_cache_dir).warm_up()
    assert missing_graph_warning(shared) is None
    openai = empty.model_copy(update={"embedding_provider": "openai"})
    assert missing_graph_warning(openai) is None


def test_recorded_name_carries_the_builder_and_stays_one_family():
    """Guards mixed vectors in one import: graphs of two builder versions make different
    int8 vectors, so the recorded name (which batch claims match exactly) carries the
    builder version, while search still treats every MiniLM spelling as one space."""
    from pipeline.embedding.families import comparable

    name = MiniLMEmbedder(cache_dir=Path("/nonexistent")).model
    assert name == f"all-MiniLM-L6-v2/onnx-int8-b{onnx_cache.BUILDER_VERSION}"
    for older in ("all-MiniLM-L6-v2/onnx-int8", "sentence-transformers/all-MiniLM-L6-v2"):
        assert comparable(name, 384, older, 384)
