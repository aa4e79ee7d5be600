"""The receiver's Standard Webhooks check (seed pitfall 6: forged requests reach the worker),
with svix handling both header spellings: Svix's own (svix-*) and pg_net's/the relay's
(webhook-*)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from svix.webhooks import Webhook

from handlers.signature import SignatureError, Verifier

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OLD = "whsec_" + "C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
BODY = b'{"type": "import.parsing"}'


def signed(secret: str, prefix: str, msg_id: str = "msg_1") -> dict[str, str]:
    now = datetime.now(tz=UTC)
    return {
        f"{prefix}-id": msg_id,
        f"{prefix}-timestamp": str(int(now.timestamp())),
        f"{prefix}-signature": Webhook(secret).sign(msg_id, now, BODY.decode()),
    }


@pytest.mark.parametrize("prefix", ["webhook", "svix", "Svix", "WEBHOOK"])
def test_both_header_spellings_in_any_case_are_verified(prefix: str) -> None:
    assert Verifier(SECRET).verify(BODY, signed(SECRET, prefix)) == "msg_1"


def test_the_previous_secret_still_verifies_during_rotation() -> None:
    assert Verifier(SECRET, OLD).verify(BODY, signed(OLD, "webhook", "msg_2")) == "msg_2"
    with pytest.raises(SignatureError, match="no matching signature"):
        Verifier(SECRET).verify(BODY, signed(OLD, "webhook"))


def test_missing_tampered_and_malformed_requests_say_why() -> None:
    verifier = Verifier(SECRET)
    with pytest.raises(SignatureError, match="missing required headers"):
        verifier.verify(BODY, {})
    with pytest.raises(SignatureError, match="no matching signature"):
        verifier.verify(BODY + b" ", signed(SECRET, "webhook"))
    broken = signed(SECRET, "webhook") | {"webhook-signature": "v1,not-base64!"}
    with pytest.raises(SignatureError):
        verifier.verify(BODY, broken)
