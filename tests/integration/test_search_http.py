"""POST /v1/search over real HTTP on loopback: real signed tokens (HS256 with the legacy
secret; ES256 and RS256 through a JWKS served on loopback), the real local embedder, the
receiver connected as the least-privilege worker role and searching as the search role
(import_searcher), RLS deciding what comes back."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.dbutil import create_user
from tests.search_service import (
    ALICE,
    BOB,
    Jwks,
    import_texts,
    jwk_of,
    search,
    token,
)


def test_a_person_searches_their_own_memory_with_their_token(db_url, start_service, embedder):
    """The app's read path end to end: the person's HS256 access token, the query embedded
    with the import's model, results from their current import only (RLS through the
    search role's connection, never service_role nor the worker: pitfall 3)."""
    alice, bob = create_user(db_url), create_user(db_url)
    import_texts(db_url, embedder, alice, ALICE)
    import_texts(db_url, embedder, bob, BOB)
    svc = start_service()
    r = search(svc, token(alice), {"query": "what is my dog called?", "limit": 3})
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["model"] == embedder.model
    ids = [hit["conversation_id"] for hit in data["results"]]
    assert ids[0] == "dog" and set(ids) <= set(ALICE)
    top = data["results"][0]
    assert {
        "content",
        "conversation_title",
        "score",
        "vector_rank",
        "lexical_rank",
        "first_message_at",
    } <= set(top)
    r = search(svc, token(bob), {"query": "what is my dog called?"})
    assert [h["conversation_id"] for h in r.json()["results"]] == ["bob-dog"]


def test_tokens_that_are_not_a_signed_in_person_are_refused(db_url, start_service):
    """401 for no token, garbage, another secret, an expired token, a token for another
    audience, an unsigned ('none') token and the anon key's role: only a valid session
    token of a person can read memory (pitfall: unauthenticated service endpoints)."""
    alice = create_user(db_url)
    svc = start_service()
    now = int(time.time())
    bad = [
        None,
        "not-a-jwt",
        token(alice, key="another-secret-that-is-also-32-characters-long"),
        token(alice, exp=now - 120),
        token(alice, aud="someone-else"),
        jwt.encode(
            {"sub": str(alice), "aud": "authenticated", "role": "authenticated", "exp": now + 60},
            None,
            algorithm="none",
        ),
        token(alice, role="anon"),
        token(alice, sub="not-a-uuid"),
    ]
    for tok in bad:
        r = search(svc, tok, {"query": "anything"})
        assert r.status_code == 401, (tok, r.text)
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert r.json()["error"] == "invalid_token"


def test_asymmetric_signing_keys_through_the_projects_jwks(db_url, start_service, embedder):
    """Projects on the newer signing keys: ES256 and RS256 tokens verified with the public
    keys from {SUPABASE_URL}/auth/v1/.well-known/jwks.json, fetched once and cached; a
    token signed by a key that is not in the JWKS is refused."""
    alice = create_user(db_url)
    import_texts(db_url, embedder, alice, ALICE)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwks = Jwks(
        [
            jwk_of(ec_key.public_key(), "ec-1", "ES256"),
            jwk_of(rsa_key.public_key(), "rsa-1", "RS256"),
        ]
    )
    try:
        svc = start_service(supabase_jwt_secret=None, supabase_url=jwks.url)
        for tok in (
            token(alice, key=ec_key, alg="ES256", kid="ec-1"),
            token(alice, key=rsa_key, alg="RS256", kid="rsa-1"),
            token(alice, key=ec_key, alg="ES256", kid="ec-1"),
        ):
            r = search(svc, tok, {"query": "where am I travelling?", "limit": 2})
            assert r.status_code == 200, r.text
            assert r.json()["results"][0]["conversation_id"] == "trip"
        assert jwks.fetches == 1
        stranger = ec.generate_private_key(ec.SECP256R1())
        r = search(svc, token(alice, key=stranger, alg="ES256", kid="ec-1"), {"query": "x"})
        assert r.status_code == 401
        # Without the legacy secret configured, an HS256 token has no key to check it by.
        assert search(svc, token(alice), {"query": "x"}).status_code == 401
    finally:
        jwks.close()


def test_rate_limit_is_per_person(db_url, start_service, embedder):
    """Over the per-person limit: 429 with Retry-After; another person is not affected
    (pitfall: one client exhausting a shared CPU-bound embedder)."""
    alice, bob = create_user(db_url), create_user(db_url)
    import_texts(db_url, embedder, alice, ALICE)
    import_texts(db_url, embedder, bob, BOB)
    svc = start_service(search_rate_per_minute=2)
    codes = [search(svc, token(alice), {"query": "dog"}).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    r = search(svc, token(alice), {"query": "dog"})
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert search(svc, token(bob), {"query": "dog"}).status_code == 200


def test_bodies_are_capped_and_checked(db_url, start_service, embedder):
    """413 above the body cap (declared or streamed), 400 for bad JSON, an empty query or
    a limit out of range, 404 for a person with no completed import yet."""
    alice, nobody = create_user(db_url), create_user(db_url)
    import_texts(db_url, embedder, alice, ALICE)
    svc = start_service(search_max_body_bytes=1024)
    tok = token(alice)
    assert search(svc, tok, raw=b'{"query": "' + b"a" * 2000 + b'"}').status_code == 413

    def stream() -> Iterator[bytes]:
        yield b'{"query": "'
        for _ in range(20):
            yield b"b" * 100
        yield b'"}'

    r = httpx.post(
        svc.url + "/v1/search",
        content=stream(),
        headers={"Authorization": f"Bearer {tok}"},
        timeout=30,
    )
    assert r.status_code == 413
    assert search(svc, tok, raw=b"{not json").status_code == 400
    assert search(svc, tok, {"query": "  "}).status_code == 400
    assert search(svc, tok, {"query": "dog", "limit": 0}).status_code == 400
    assert search(svc, tok, {"query": "dog", "limit": "5"}).status_code == 400
    r = search(svc, token(nobody), {"query": "dog"})
    assert r.status_code == 404 and r.json()["error"] == "no_import"


def test_without_a_search_database_url_search_is_off_not_run_as_the_worker(
    db_url, start_service, embedder
):
    """Pitfall 3 / issue 8 F5: a service given only the worker's DATABASE_URL does not fall
    back to it to act as a person (the worker may not become `authenticated`); it answers
    503 naming SEARCH_DATABASE_URL, while the webhook side keeps working."""
    alice = create_user(db_url)
    import_texts(db_url, embedder, alice, ALICE)
    svc = start_service(search=False)
    r = search(svc, token(alice), {"query": "what is my dog called?"})
    assert r.status_code == 503, r.text
    assert r.json()["error"] == "not_configured"
    assert "SEARCH_DATABASE_URL" in r.json()["message"]
    assert httpx.get(svc.url + "/healthz", timeout=10).status_code == 200
