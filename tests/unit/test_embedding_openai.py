"""The OpenAI-compatible embedder against a loopback fake of the real wire format:
batching, ordering, retries honouring Retry-After, and errors that never leak the key."""

from __future__ import annotations

import base64
import json
import logging
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import pytest

from pipeline.embedding import (
    Embedder,
    EmbedderError,
    EmbedderUnavailable,
    EmbeddingRequestFailed,
    clear_embedder_cache,
    get_embedder,
)
from pipeline.embedding.openai_embedder import OpenAIEmbedder
from pipeline.settings import Settings
from tests.fake_openai import FakeOpenAI, fake_openai, fake_vector

TEXTS = [
    f"memory {i}: we spoke about {topic}"
    for i, topic in enumerate(
        ["sailing", "Lisbon", "the wedding", "running", "Portuguese", "my sister", "coffee"]
    )
]


class SleepRecorder:
    """Stands in for time.sleep so retries are observable without waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def make(srv: FakeOpenAI, sleep: SleepRecorder, **kw) -> OpenAIEmbedder:
    settings = Settings(
        embedding_provider="openai",
        openai_base_url=srv.base_url,
        openai_api_key=kw.pop("api_key", srv.api_key),
        embedding_model=kw.pop("model", None),
        embedding_dimensions=kw.pop("dimensions", None),
        embedding_concurrency=kw.pop("concurrency", 4),
    )
    return OpenAIEmbedder.from_settings(settings, sleep=sleep, **kw)


def test_rate_limit_is_retried_after_the_requested_wait():
    """Guards pitfall 9 (a rate-limited dependency must not fail the import): a 429 is
    retried after exactly the Retry-After the server asked for, and the user still gets
    every vector, in input order, across several batches even when the server lists
    results out of order."""
    sleep = SleepRecorder()
    with fake_openai(fail_first=1, retry_after=7, reverse_order=True) as srv:
        emb = make(srv, sleep, batch_size=3, concurrency=1)  # which batch gets the 429
        out = emb.embed(TEXTS)
    assert sleep.waits == [7.0]
    want = np.vstack([fake_vector(t, 1536) for t in TEXTS])
    np.testing.assert_allclose(out, want, atol=1e-6)
    assert out.dtype == np.float32 and out.shape == (7, 1536)
    bodies = [r.body for r in srv.embedding_requests]
    assert [len(b["input"]) for b in bodies] == [3, 3, 3, 1]  # first one answered 429
    assert bodies[0] == bodies[1]  # the retried batch is the same batch
    assert {b["model"] for b in bodies} == {"text-embedding-3-small"}
    assert {b["encoding_format"] for b in bodies} == {"base64"}  # as OpenAI's own SDK asks
    assert all("dimensions" not in b for b in bodies)
    assert srv.embedding_requests[0].headers["authorization"] == f"Bearer {srv.api_key}"


def test_batches_are_requested_side_by_side_and_return_in_order():
    """Guards pitfall 9's cousin, an import that takes hours: an API far away is asked
    `concurrency` batches at once, and the vectors still come back in input order."""
    sleep = SleepRecorder()
    with fake_openai(latency_s=0.5) as srv:
        emb = make(srv, sleep, batch_size=2, concurrency=4)
        assert emb.stage_batch_size == 8
        out = emb.embed(TEXTS)
        emb.close()
    want = np.vstack([fake_vector(t, 1536) for t in TEXTS])
    np.testing.assert_allclose(out, want, atol=1e-6)
    assert len(srv.embedding_requests) == 4 and srv.max_in_flight == 4


def test_bad_key_fails_fast_without_leaking_it(caplog: pytest.LogCaptureFixture):
    """Guards pitfall 3 (secret exposure): a rejected key (401) stops at once; neither the
    key nor the API's masked echo of it appears in the exception (stored as the job's
    error_message) or in the logs. The person's message names neither the operator's
    endpoint nor its settings (review of issue 13, F7); the operator's log line does."""
    caplog.set_level(logging.DEBUG)
    wrong = "sk-proj-WRONGkey0123456789abcdefXYZW"
    sleep = SleepRecorder()
    with fake_openai() as srv:
        emb = make(srv, sleep, api_key=wrong)
        with pytest.raises(EmbedderUnavailable) as info:
            emb.embed(["hello"])
    message = str(info.value)
    assert "401" in message and "operator" in message
    assert "OPENAI_API_KEY" not in message and srv.base_url.split("/v1")[0] not in message
    assert "OPENAI_API_KEY" in caplog.text and srv.base_url.split("/v1")[0] in caplog.text
    for leak in (wrong, wrong[-4:], "sk-pro"):
        assert leak not in message
        assert leak not in repr(info.value)
        assert leak not in caplog.text
    assert wrong not in repr(emb)
    assert len(srv.embedding_requests) == 1 and sleep.waits == []


def test_server_errors_retried_then_reported():
    """Guards pitfall 9 (failures retried with backoff, never silent): 5xx answers are
    retried with backoff up to the limit, then the job fails with a sentence saying it
    can be retried later."""
    sleep = SleepRecorder()
    with fake_openai(fail_first=100, fail_status=503, retry_after=None) as srv:
        emb = make(srv, sleep, max_attempts=4)
        with pytest.raises(EmbeddingRequestFailed, match=r"HTTP 503.*4 attempts.*retried") as info:
            emb.embed(["hello"])
    assert srv.base_url.split("/v1")[0] not in str(info.value)  # the host stays in the log
    assert len(srv.embedding_requests) == 4
    assert len(sleep.waits) == 3 and all(w > 0 for w in sleep.waits)


def test_transient_503_then_success():
    """Guards pitfall 9 (brief provider outage): two 500s then success gives the right
    vectors."""
    sleep = SleepRecorder()
    with fake_openai(fail_first=2, fail_status=500) as srv:
        out = make(srv, sleep).embed(["a", "b"])
    np.testing.assert_allclose(out[1], fake_vector("b"), atol=1e-6)
    assert len(srv.embedding_requests) == 3


def test_unreachable_server_is_retried_then_reported():
    """Guards pitfall 9 (network hiccups): connection errors are retried, then reported
    readably."""
    with fake_openai() as srv:
        pass  # stopped: its port now refuses connections
    sleep = SleepRecorder()
    emb = make(srv, sleep, max_attempts=3)
    with pytest.raises(EmbeddingRequestFailed, match="ConnectError"):
        emb.embed(["hello"])
    assert len(sleep.waits) == 2


def test_quota_exhausted_is_not_retried():
    """Guards wasted retries: a 429 insufficient_quota cannot heal by waiting, so it fails
    at once and tells the person to add credit or embed offline."""
    sleep = SleepRecorder()
    with (
        fake_openai(fail_first=1, error_code="insufficient_quota") as srv,
        pytest.raises(EmbedderUnavailable, match=r"quota.*operator.*offline"),
    ):
        make(srv, sleep).embed(["hello"])
    assert sleep.waits == []


def test_configured_dimensions_are_requested_and_returned():
    """Guards the pgvector column contract: EMBEDDING_DIMENSIONS is sent as `dimensions`
    and the returned unit vectors have that size."""
    with fake_openai() as srv:
        emb = make(srv, SleepRecorder(), dimensions=256)
        out = emb.embed(["hello", ""])
    assert emb.dimensions == 256 and out.shape == (2, 256)
    assert srv.embedding_requests[0].body["dimensions"] == 256
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert srv.embedding_requests[0].body["input"][1] == " "  # API rejects empty strings


def test_unknown_model_size_learned_from_response():
    """Guards compatible servers with other models: the vector size comes from the reply
    when neither settings nor the known-model table say it."""
    with fake_openai() as srv:
        emb = make(srv, SleepRecorder(), model="nomic-embed-text")
        assert emb.dimensions == 768
        assert emb.embed(["x"]).shape == (1, 768)


def test_request_refused_reports_api_message():
    """Guards misconfiguration (e.g. `dimensions` on a model without it): the API's own
    explanation reaches the person, without retries."""
    sleep = SleepRecorder()
    with fake_openai() as srv:
        emb = make(srv, sleep, model="text-embedding-ada-002", dimensions=256)
        with pytest.raises(EmbedderError, match=r"400.*does not support specifying dimensions"):
            emb.embed(["hello"])
    assert sleep.waits == []


def test_get_embedder_openai_without_key_says_what_to_set(caplog: pytest.LogCaptureFixture):
    """Guards setup: choosing the openai provider without a key names OPENAI_API_KEY in
    the operator's log, and tells the person only that the operator must add a key."""
    clear_embedder_cache()
    with (
        caplog.at_level(logging.ERROR),
        pytest.raises(EmbedderUnavailable, match="API key") as info,
    ):
        get_embedder(Settings(embedding_provider="openai", openai_api_key=None))
    assert "OPENAI_API_KEY" not in str(info.value) and "OPENAI_API_KEY" in caplog.text


def test_get_embedder_openai_end_to_end():
    """Guards the stage's view: get_embedder(settings) for openai returns a cached
    embedder whose vectors and metadata are what the fake serves."""
    clear_embedder_cache()
    with fake_openai() as srv:
        settings = Settings(
            embedding_provider="openai", openai_base_url=srv.base_url, openai_api_key=srv.api_key
        )
        emb = get_embedder(settings)
        assert emb is get_embedder(settings)
        assert (emb.model, emb.dimensions) == ("text-embedding-3-small", 1536)
        np.testing.assert_allclose(emb.embed(["hi"])[0], fake_vector("hi"), atol=1e-6)
    clear_embedder_cache()


def test_shared_client_is_thread_safe():
    """Guards the stage thread pool: one embedder used from several threads at once
    returns each caller its own vectors, in its own order."""
    from concurrent.futures import ThreadPoolExecutor

    jobs = [[f"thread {k} text {i}" for i in range(5)] for k in range(6)]
    with fake_openai() as srv:
        emb = make(srv, SleepRecorder(), batch_size=2)
        assert isinstance(emb, Embedder)
        with ThreadPoolExecutor(max_workers=6) as pool:
            results = list(pool.map(emb.embed, jobs))
        emb.close()
    for job, got in zip(jobs, results, strict=True):
        np.testing.assert_allclose(got, np.vstack([fake_vector(t) for t in job]), atol=1e-6)
    assert len(srv.embedding_requests) == 6 * 3


def test_retry_after_as_http_date_is_honoured():
    """Guards pitfall 9 with proxies that send Retry-After as an HTTP date: the wait is
    the time until that date (capped at max_wait), not an immediate hammering retry."""
    from email.utils import format_datetime

    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    sleep, capped_sleep = SleepRecorder(), SleepRecorder()
    with fake_openai(fail_first=2, retry_after=later) as srv:
        make(srv, sleep).embed(["hello"])
        srv.fail_next(1, retry_after=later)
        make(srv, capped_sleep, max_wait=5).embed(["hello"])
    assert len(sleep.waits) == 2 and all(20 < w <= 31 for w in sleep.waits)
    assert capped_sleep.waits == [5]


def test_vectors_come_as_base64_a_quarter_of_the_bytes_and_exact():
    """Embedding cost (issue 15's stage is bound by what each request costs here): vectors
    are asked for as base64 little-endian float32, as OpenAI's own SDK does, so a 1536-d
    answer of 96 vectors is ~0.8 MB instead of ~3.3 MB of JSON numbers (read in ~4 ms
    instead of ~50 here), and the values are bit-for-bit the server's float32."""
    with fake_openai() as srv:
        out = make(srv, SleepRecorder()).embed(TEXTS)
    assert {r.body["encoding_format"] for r in srv.embedding_requests} == {"base64"}
    want = np.vstack([fake_vector(t, 1536) for t in TEXTS])
    np.testing.assert_array_equal(out, want / np.linalg.norm(want, axis=1, keepdims=True))


def test_a_server_that_answers_floats_anyway_is_read():
    """An OpenAI-compatible server that ignores encoding_format and sends numbers still
    gives every vector, in order."""
    with fake_openai(base64="ignored", reverse_order=True) as srv:
        out = make(srv, SleepRecorder(), batch_size=3).embed(TEXTS)
    want = np.vstack([fake_vector(t, 1536) for t in TEXTS])
    np.testing.assert_allclose(out, want, atol=1e-6)


@pytest.mark.parametrize("refusal", ["refused", "refused-vllm"])
def test_a_server_that_refuses_base64_is_asked_for_floats_from_then_on(refusal: str):
    """A compatible server that refuses encoding_format=base64 (a 400 naming it, or vLLM's
    "base64 encoding is not currently supported") costs one refused request: the same
    batch is asked again for floats, and so is every later one; the import goes on with
    nothing for the person to see."""
    sleep = SleepRecorder()
    with fake_openai(base64=refusal) as srv:
        out = make(srv, sleep, batch_size=3, concurrency=1).embed(TEXTS)
    formats = [r.body["encoding_format"] for r in srv.embedding_requests]
    assert formats == ["base64", "float", "float", "float"]
    assert sleep.waits == []
    want = np.vstack([fake_vector(t, 1536) for t in TEXTS])
    np.testing.assert_allclose(out, want, atol=1e-6)


def test_a_400_that_is_not_about_base64_reaches_the_person_with_the_servers_words():
    """A refusal that floats do not cure either (here `dimensions` on a model without them)
    is reported with the server's own message, read from vLLM's top-level shape as well as
    OpenAI's, and the next batch asks for base64 again."""
    with fake_openai() as srv:
        emb = make(srv, SleepRecorder(), model="text-embedding-ada-002", dimensions=256)
        with pytest.raises(EmbedderError, match="does not support specifying dimensions"):
            emb.embed(["hello"])
    assert [r.body["encoding_format"] for r in srv.embedding_requests] == ["base64", "float"]
    assert emb._encoding == "base64"
    vllm = httpx.Response(400, json={"object": "error", "message": "input too long", "code": 400})
    with pytest.raises(EmbedderError, match="input too long"):
        emb._raise_for(vllm)


@pytest.mark.parametrize(
    "rows",
    [
        [[float("nan")] * 4],  # NaN (Python's json writes it; a broken server might)
        [[0.0] * 4],  # all zeros: no direction to search by
        [[float("inf"), 1.0, 1.0, 1.0]],
        # float32 sent big-endian: huge or tiny components
        [base64.b64encode(np.full(4, 0.05, dtype=">f4").tobytes()).decode()],
    ],
)
def test_vectors_that_are_not_numbers_are_a_readable_error(rows: list):
    """Vectors no model makes fail the batch with a sentence (they used to reach the
    database as text it cannot read, an internal error, or as zero vectors search never
    finds)."""
    with fake_openai() as srv:
        emb = make(srv, SleepRecorder())
    body = json.dumps({"data": [{"index": 0, "embedding": r} for r in rows]})  # NaN allowed
    bad = httpx.Response(200, content=body.encode())
    with pytest.raises(EmbedderError, match="not numbers"):
        emb._parse(bad, 1)


def test_an_unreadable_base64_vector_is_a_readable_error():
    """A vector that is not base64 of float32 (a broken proxy on the way back) fails the
    batch with a sentence, not a traceback."""
    with fake_openai() as srv:
        emb = make(srv, SleepRecorder())
    for junk in ("not base64!", "AAAA=="):  # not base64; 3 bytes, not whole float32s
        bad = httpx.Response(200, json={"data": [{"index": 0, "embedding": junk}]})
        with pytest.raises(EmbedderError, match="cannot read"):
            emb._parse(bad, 1)
