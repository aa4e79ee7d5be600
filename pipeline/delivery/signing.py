"""Standard Webhooks signing, by svix's own ``Webhook.sign``."""

from __future__ import annotations

from datetime import UTC, datetime

from svix.webhooks import Webhook


def sign_headers(secret: str | Webhook, msg_id: str, body: str) -> dict[str, str]:
    """Standard Webhooks headers for ``body``, signed now (``webhook-id``, ``-timestamp`` in
    unix seconds, ``-signature`` as ``v1,<base64>``)."""
    hook = secret if isinstance(secret, Webhook) else Webhook(secret)
    now = datetime.now(UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": hook.sign(msg_id=msg_id, timestamp=now, data=body),
        "content-type": "application/json",
    }
