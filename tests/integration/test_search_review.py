"""Fixes from the fresh-eyes review of search (issue 11) and the ONNX embedder (issue 13),
over real HTTP on loopback with real tokens and the real local embedder."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from pipeline.embedding.families import comparable, model_family
from pipeline.search import ModelMismatch, Target, embed_query
from tests.dbutil import create_user
from tests.search_helpers import completed_import
from tests.search_service import ALICE, Jwks, search, token


@pytest.mark.parametrize(
    "recorded",
    [
        "sentence-transformers/all-MiniLM-L6-v2",
        "all-MiniLM-L6-v2/onnx-float32",
        "all-MiniLM-L6-v2/onnx-int8",
    ],
)
def test_imports_of_any_minilm_precision_stay_searchable(db_url, start_service, embedder, recorded):
    """Imports embedded before the ONNX switch (recorded as sentence-transformers' name) or
    under the other MINILM_PRECISION are searched, not refused with a 409: all of them are
    MiniLM vectors in one 384-d space (review of issue 13)."""
    alice = create_user(db_url)
    vectors = embedder.embed(list(ALICE.values()))
    completed_import(
        db_url,
        alice,
        [
            (cid, text, list(map(float, vec)))
            for (cid, text), vec in zip(ALICE.items(), vectors, strict=True)
        ],
        model=recorded,
        dim=384,
    )
    svc = start_service()
    r = search(svc, token(alice), {"query": "what is my dog called?", "limit": 3})
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["conversation_id"] == "dog"


def test_a_different_model_is_refused_naming_the_setting_to_change(embedder):
    """An OpenAI import searched with MiniLM (or another OpenAI model/dimension) is refused
    with the settings that fix it, never EMBEDDING_MODEL for a MiniLM precision."""
    openai_import = Target(None, "text-embedding-3-small", 1536)  # type: ignore[arg-type]
    with pytest.raises(ModelMismatch) as err:
        embed_query(embedder, openai_import, "x")
    assert "EMBEDDING_PROVIDER=openai" in str(err.value)
    assert "EMBEDDING_MODEL=text-embedding-3-small" in str(err.value)
    assert not comparable("text-embedding-3-small", 256, "text-embedding-3-small", 1536)
    assert not comparable("text-embedding-3-small", 1536, "text-embedding-3-large", 1536)
    assert model_family("sentence-transformers/all-MiniLM-L6-v2") == model_family(
        "all-MiniLM-L6-v2/onnx-int8"
    )


def test_an_empty_jwks_refuses_asymmetric_tokens_with_401(db_url, start_service):
    """A project whose JWKS has no keys yet ({"keys": []}) answers an ES256 token with 401,
    not a 500 (PyJWT raises PyJWKSetError there, not PyJWKClientError)."""
    alice = create_user(db_url)
    jwks = Jwks([])
    try:
        svc = start_service(supabase_jwt_secret=None, supabase_url=jwks.url)
        key = ec.generate_private_key(ec.SECP256R1())
        r = search(svc, token(alice, key=key, alg="ES256", kid="ec-1"), {"query": "x"})
        assert r.status_code == 401, r.text
        assert r.json()["error"] == "invalid_token"
    finally:
        jwks.close()
