"""Standard Webhooks verification with secret rotation, on top of ``svix.webhooks``."""

from __future__ import annotations

from collections.abc import Mapping

from svix.webhooks import Webhook, WebhookVerificationError

# svix accepts both spellings; Svix itself sends svix-*, pg_net and the relay send webhook-*.
_NAMES = ("id", "timestamp", "signature")


class SignatureError(Exception):
    """Why a request is not authentic; the message is safe to return to the sender."""


def webhook_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The three signature headers under their Standard Webhooks names."""
    out = {}
    for name in _NAMES:
        value = headers.get(f"webhook-{name}") or headers.get(f"svix-{name}")
        if value:
            out[f"webhook-{name}"] = value
    return out


class Verifier:
    """Accepts a body signed with the current secret or, during rotation, the previous one."""

    def __init__(self, secret: str, previous: str | None = None) -> None:
        self._hooks = [Webhook(s) for s in (secret, previous) if s]

    def verify(self, body: bytes, headers: Mapping[str, str]) -> str:
        """Return the webhook-id of an authentic request, else raise SignatureError."""
        wanted = webhook_headers(headers)
        if len(wanted) != len(_NAMES):
            raise SignatureError("missing webhook-id, webhook-timestamp or webhook-signature")
        reason = "no matching signature"
        for hook in self._hooks:
            try:
                hook.verify(body, wanted)
                return wanted["webhook-id"]
            except WebhookVerificationError as exc:
                reason = str(exc)
                # Timestamp errors do not depend on the secret: trying the next one won't help.
                if "timestamp" in reason or "Headers" in reason:
                    break
            except ValueError:
                # svix raises bare ValueError/binascii.Error on a malformed header or body.
                reason = "malformed signature header or body"
                break
        raise SignatureError(reason.lower())
