"""Webhook authentication: Standard Webhooks v1 (HMAC) and v1a (ed25519), or a bearer token.

Spec: https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md
The signed content is "{webhook-id}.{webhook-timestamp}.{raw body}"; the header holds a
space-separated list of "version,base64" entries, of which any one may match.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # loaded for a whpk_ key only: 8.5 MB resident that HMAC secrets never need
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

_TIMESTAMP = re.compile(r"^[0-9]{1,15}$")
_MSG_ID = re.compile(r"^[\x21-\x7e]{1,255}$")
# Svix sends the same scheme under svix-* names; accept both.
_ID_HEADERS = ("webhook-id", "svix-id")
_TS_HEADERS = ("webhook-timestamp", "svix-timestamp")
_SIG_HEADERS = ("webhook-signature", "svix-signature")


class AuthError(Exception):
    """A refused request: code for machines, detail for people. Never holds a secret."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


class SecretFormatError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Authenticated:
    method: str  # "signed" | "token"
    webhook_id: str | None = None
    timestamp: int | None = None


@dataclass(frozen=True, slots=True)
class Credentials:
    """What check_headers accepted: a settled token, or a signature still to match the body."""

    done: Authenticated | None
    msg_id: str = ""
    timestamp: str = ""
    entries: tuple[tuple[str, bytes], ...] = ()  # (version, raw signature), well-formed only


def _b64(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


def parse_secret(secret: str) -> tuple[str, bytes | Ed25519PublicKey]:
    """('hmac', key) for whsec_, ('ed25519', key) for whpk_. Errors never echo the secret."""
    try:
        if secret.startswith("whpk_"):
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

            return "ed25519", Ed25519PublicKey.from_public_bytes(_b64(secret[5:]))
        if secret.startswith("whsec_"):
            key = _b64(secret[6:])
            if not key:
                raise SecretFormatError("a whsec_ secret has an empty key")
            return "hmac", key
    except (binascii.Error, ValueError) as exc:
        raise SecretFormatError(
            f"a {secret[:5]}… secret is not valid base64 key material ({type(exc).__name__})"
        ) from None
    raise SecretFormatError("a webhook secret must start with whsec_ (HMAC) or whpk_ (ed25519)")


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """A v1 signature header value, as Replicate makes it (used by simulate and tests)."""
    kind, key = parse_secret(secret)
    if kind != "hmac" or not isinstance(key, bytes):
        raise SecretFormatError("only whsec_ secrets can sign")
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


class Verifier:
    def __init__(
        self, secrets: Sequence[str], token: str | None, tolerance: int = 300
    ) -> None:
        self._hmac_keys: list[bytes] = []
        self._ed_keys: list[Ed25519PublicKey] = []
        for secret in secrets:
            _kind, key = parse_secret(secret)
            if isinstance(key, bytes):
                self._hmac_keys.append(key)
            else:
                self._ed_keys.append(key)
        self._token = token.encode() if token else None
        self._tolerance = tolerance

    @property
    def configured(self) -> bool:
        return bool(self._hmac_keys or self._ed_keys or self._token)

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> Authenticated:
        return self.verify_body(self.check_headers(headers, now), body)

    def check_headers(self, headers: Mapping[str, str], now: float) -> Credentials:
        """Everything that can be checked before the body arrives: credentials present and
        well-formed, the timestamp within tolerance, a bearer token matching. The receiver
        refuses these at once, without reading (or buffering) a byte of the body."""
        if not self.configured:
            raise AuthError(
                "not_configured",
                "hookwatch has no webhook secret or ingest token configured, so it accepts no "
                "webhook; set HOOKWATCH_WEBHOOK_SECRETS or HOOKWATCH_INGEST_TOKEN",
            )
        if any(h in headers for h in _SIG_HEADERS + _ID_HEADERS + _TS_HEADERS):
            return self._check_signature_headers(headers, now)
        authorization = headers.get("authorization")
        if authorization is not None:
            return Credentials(self._verify_token(authorization))
        raise AuthError(
            "missing_credentials",
            "no webhook-signature headers and no Authorization bearer token",
        )

    def verify_body(self, credentials: Credentials, body: bytes) -> Authenticated:
        """The rest: the signature over the body (a token was settled by check_headers)."""
        if credentials.done is not None:
            return credentials.done
        msg_id, timestamp = credentials.msg_id, credentials.timestamp
        content = f"{msg_id}.{timestamp}.".encode() + body
        matched = False
        expected = [hmac.digest(k, content, "sha256") for k in self._hmac_keys]  # one-shot: C only
        for version, raw in credentials.entries:
            if version == "v1":
                for digest in expected:
                    matched |= hmac.compare_digest(raw, digest)
            elif self._ed_keys:
                matched |= _ed25519_matches(self._ed_keys, raw, content)
        if matched:
            return Authenticated("signed", webhook_id=msg_id, timestamp=int(timestamp))
        raise AuthError("invalid_signature", "no signature matches any configured secret")

    def _verify_token(self, authorization: str) -> Authenticated:
        if self._token is None:
            raise AuthError("token_not_accepted", "bearer tokens are not configured; sign it")
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise AuthError("malformed_authorization", "Authorization must be 'Bearer <token>'")
        if not hmac.compare_digest(value.strip().encode(), self._token):
            raise AuthError("invalid_token", "the bearer token does not match")
        return Authenticated("token")

    def _check_signature_headers(self, headers: Mapping[str, str], now: float) -> Credentials:
        msg_id = _first(headers, _ID_HEADERS)
        timestamp = _first(headers, _TS_HEADERS)
        signature = _first(headers, _SIG_HEADERS)
        if msg_id is None or timestamp is None or signature is None:
            raise AuthError(
                "missing_signature_header",
                "webhook-id, webhook-timestamp and webhook-signature are all required",
            )
        if not _MSG_ID.match(msg_id):
            raise AuthError("malformed_webhook_id", "webhook-id must be 1-255 printable characters")
        if not _TIMESTAMP.match(timestamp):
            raise AuthError("malformed_timestamp", "webhook-timestamp must be integer seconds")
        ts = int(timestamp)
        if ts < now - self._tolerance:
            raise AuthError("stale_timestamp", "webhook-timestamp is too far in the past")
        if ts > now + self._tolerance:
            raise AuthError("future_timestamp", "webhook-timestamp is too far in the future")
        if not (self._hmac_keys or self._ed_keys):
            raise AuthError("signature_not_accepted", "no webhook secrets are configured")
        entries: list[tuple[str, bytes]] = []
        for entry in signature.split(" "):
            version, comma, encoded = entry.partition(",")
            if not comma or version not in ("v1", "v1a"):
                continue
            try:
                entries.append((version, _b64(encoded)))
            except (binascii.Error, ValueError):
                continue
        if not entries:
            raise AuthError(
                "malformed_signature", "webhook-signature holds no well-formed v1 or v1a entry"
            )
        return Credentials(None, msg_id, timestamp, tuple(entries))


def _ed25519_matches(keys: Sequence[Ed25519PublicKey], raw: bytes, content: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature

    matched = False
    for key in keys:
        try:
            key.verify(raw, content)
            matched = True
        except InvalidSignature:
            pass
    return matched


def _first(headers: Mapping[str, str], names: Sequence[str]) -> str | None:
    for name in names:
        value = headers.get(name)
        if value is not None:
            return value
    return None
