"""Verify a person's Supabase access token (a JWT) the way Supabase Auth issues them.

Two kinds of signing keys exist on Supabase projects:

- the legacy shared JWT secret: HS256, verified with the secret (``SUPABASE_JWT_SECRET``);
- the newer asymmetric signing keys: ES256 or RS256, verified with the public keys the
  project publishes at ``{SUPABASE_URL}/auth/v1/.well-known/jwks.json`` (``SUPABASE_JWKS_URL``
  overrides), fetched through PyJWT's ``PyJWKClient`` and cached.

The token's own ``alg`` header picks the path; an algorithm with no configured key (or
``none``) is refused. Required: a valid signature, ``aud`` = ``authenticated``, an unexpired
``exp``, a ``sub`` that is a UUID and ``role`` = ``authenticated``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from pipeline.errors import SoulprintError

AUDIENCE = "authenticated"
ASYMMETRIC = ("ES256", "RS256")
JWKS_CACHE_SECONDS = 600  # keys rotate rarely; a new kid forces a refetch anyway
LEEWAY_SECONDS = 30  # clock skew between Supabase Auth and this service


class InvalidToken(SoulprintError):
    """The token cannot be trusted; ``str()`` says why, without echoing the token."""


@dataclass(frozen=True, slots=True)
class Person:
    """Who a verified token belongs to."""

    user_id: uuid.UUID
    claims: dict[str, Any]


class TokenVerifier:
    """``verify(token) -> Person`` or InvalidToken. Thread-safe; the JWKS call blocks, so
    async callers run it in a thread."""

    def __init__(
        self,
        *,
        hs256_secret: str | None = None,
        jwks_url: str | None = None,
        jwks_timeout: float = 5.0,
    ) -> None:
        self._secret = hs256_secret
        self._jwks = (
            jwt.PyJWKClient(
                jwks_url, cache_keys=True, lifespan=JWKS_CACHE_SECONDS, timeout=jwks_timeout
            )
            if jwks_url
            else None
        )

    @property
    def configured(self) -> bool:
        return self._secret is not None or self._jwks is not None

    def verify(self, token: str) -> Person:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken("malformed token") from exc
        alg = header.get("alg")
        if alg == "HS256" and self._secret:
            key: Any = self._secret  # or a public key object of the JWKS (untyped in PyJWT)
        elif alg in ASYMMETRIC and self._jwks is not None:
            try:
                key = self._jwks.get_signing_key_from_jwt(token).key
            # Any PyJWT error: a JWKS with no usable keys raises PyJWKSetError, which is
            # not a PyJWKClientError; the person gets a 401, never a 500.
            except jwt.PyJWTError as exc:
                raise InvalidToken("signing key not found") from exc
        else:
            raise InvalidToken(f"tokens signed with {alg!r} are not accepted here")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=AUDIENCE,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "sub", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("token expired") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken("token rejected") from exc
        if claims.get("role") != AUDIENCE:
            raise InvalidToken("not a signed-in person's token")
        try:
            user_id = uuid.UUID(str(claims["sub"]))
        except ValueError as exc:
            raise InvalidToken("token subject is not a user id") from exc
        return Person(user_id, claims)
