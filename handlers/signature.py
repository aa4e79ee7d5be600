"""Standard Webhooks verification with secret rotation, on top of ``svix.webhooks``.

svix reads both header spellings itself (Svix sends ``svix-*``; pg_net and the relay send
``webhook-*``) and says why a request fails; this module adds only the second secret.
"""

from __future__ import annotations

from collections.abc import Mapping

from svix.webhooks import Webhook, WebhookVerificationError

from pipeline.errors import SoulprintError


class SignatureError(SoulprintError):
    """Why a request is not authentic; the message is safe to return to the sender."""


class Verifier:
    """Accepts a body signed with the current secret or, during rotation, the previous one."""

    def __init__(self, secret: str, previous: str | None = None) -> None:
        self._hooks = [Webhook(s) for s in (secret, previous) if s]

    def verify(self, body: bytes, headers: Mapping[str, str]) -> str:
        """The webhook-id of an authentic request; SignatureError (with svix's reason)
        otherwise."""
        plain = {k.lower(): v for k, v in headers.items()}
        reason = "no matching signature"
        for hook in self._hooks:
            try:
                hook.verify(body, plain)
            except WebhookVerificationError as exc:
                reason = str(exc)
            except ValueError:
                # svix lets binascii.Error (a ValueError) out for a malformed signature.
                reason = "malformed signature header or body"
            else:
                # The id svix verified: it prefers svix-id, as here.
                return plain.get("svix-id") or plain["webhook-id"]
        raise SignatureError(reason.lower())
