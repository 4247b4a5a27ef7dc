"""Standard Webhooks signatures (https://www.standardwebhooks.com/), in one place. Headers are
parsed strictly here rather than by the package's `Webhook.verify()`: docs/security.md says why."""

import base64
import hashlib
import hmac
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"

# Bounds on attacker-controlled headers, so a request costs at most a few HMACs.
_MAX_ID_LENGTH = 255
_MAX_SIGNATURES = 10
_ID_PATTERN = re.compile(rf"[\x21-\x7e]{{1,{_MAX_ID_LENGTH}}}")  # printable ASCII, no spaces
_TIMESTAMP_PATTERN = re.compile(r"[0-9]{1,12}")
# Canonical base64 of 32 bytes: the last digit's unused bits are zero, so a signature
# has exactly one accepted spelling.
_SIGNATURE_PATTERN = re.compile(r"v1,[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=")


class SignatureError(Exception):
    """The request is not signed by a holder of one of our secrets (reason in the message)."""


@dataclass(frozen=True)
class VerifiedMessage:
    id: str
    timestamp: int
    # fingerprint() of the secret that verified it: the first of ours that matched.
    secret_fingerprint: str


def fingerprint(secret: str) -> str:
    """A short, stable name for a secret that reveals nothing usable: 8 hex digits of its SHA-256."""
    return hashlib.sha256(secret.encode()).hexdigest()[:8]


def sign(*, secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value for `body` (UTF-8 JSON)."""
    when = datetime.fromtimestamp(timestamp, tz=UTC)
    return Webhook(secret).sign(msg_id=msg_id, timestamp=when, data=body.decode("utf-8"))


def signed_headers(*, secret: str, msg_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """All three Standard Webhooks headers for a body, signed now unless told otherwise."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        ID_HEADER: msg_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret=secret, msg_id=msg_id, timestamp=timestamp, body=body),
    }


def verify(
    *,
    body: bytes,
    headers: Mapping[str, str],
    secrets: Sequence[str],
    tolerance_seconds: int,
    now: float | None = None,
) -> VerifiedMessage:
    """Check a webhook's signature against the raw body (`headers` by lower-case name), or raise."""
    msg_id = headers.get(ID_HEADER, "")
    timestamp = headers.get(TIMESTAMP_HEADER, "")
    signature_header = headers.get(SIGNATURE_HEADER, "")
    if not (msg_id and timestamp and signature_header):
        raise SignatureError("missing webhook-id, webhook-timestamp or webhook-signature header")
    if not _ID_PATTERN.fullmatch(msg_id):
        raise SignatureError("malformed webhook-id header")
    if not _TIMESTAMP_PATTERN.fullmatch(timestamp):
        raise SignatureError("malformed webhook-timestamp header")
    now = time.time() if now is None else now
    # Outside the window: a replay of an old message (or a badly wrong sender clock).
    if abs(now - int(timestamp)) > tolerance_seconds:
        raise SignatureError("webhook-timestamp outside the tolerance")

    # Other versions and malformed entries are skipped, as the spec says. The base64 being
    # canonical, comparing the (ASCII) text compares the bytes.
    entries = signature_header.split(" ")[:_MAX_SIGNATURES]
    offered = [entry for entry in entries if _SIGNATURE_PATTERN.fullmatch(entry)]
    if not offered:
        raise SignatureError("no v1 signature in webhook-signature header")
    try:
        body.decode("utf-8")  # the package signs text; JSON is UTF-8
    except UnicodeDecodeError:
        raise SignatureError("body is not UTF-8") from None

    matched: str | None = None
    for secret in secrets:
        expected = sign(secret=secret, msg_id=msg_id, timestamp=int(timestamp), body=body)
        for candidate in offered:
            # Every comparison is made. The first matching secret in the configured order (the
            # newest first) is named, so a sender signing with old and new counts for the new.
            if hmac.compare_digest(expected, candidate) and matched is None:
                matched = secret
    if matched is None:
        raise SignatureError("no matching signature")
    return VerifiedMessage(id=msg_id, timestamp=int(timestamp), secret_fingerprint=fingerprint(matched))


def is_valid_secret(secret: str) -> bool:
    """A `whsec_` secret whose remainder is base64 of at least 24 bytes (the spec's minimum)."""
    if not secret.startswith("whsec_"):
        return False
    encoded = secret.removeprefix("whsec_")
    try:
        # The package accepts unpadded base64 too.
        return len(base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)) >= 24
    except ValueError:  # binascii.Error is one
        return False


def generate_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()
