"""Standard Webhooks verification: the reference vector, rotation, and every malformed form."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
import standardwebhooks
import svix
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from hookwatch.hooks.signature import AuthError, SecretFormatError, Verifier, parse_secret, sign

# The vector every Standard Webhooks library tests against.
REF_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
REF_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
REF_TS = 1614265330
REF_BODY = b'{"test": 2432232314}'
REF_SIG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
OTHER_SECRET = "whsec_" + base64.b64encode(b"another-key-of-32-bytes-length!!").decode()


def headers(sig: str = REF_SIG, msg_id: str = REF_ID, ts: str = str(REF_TS)) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": ts, "webhook-signature": sig}


def verify(
    hdrs: dict[str, str],
    body: bytes = REF_BODY,
    secrets: tuple[str, ...] = (REF_SECRET,),
    now: float = REF_TS,
    token: str | None = None,
) -> str:
    """The outcome: 'signed', 'token', or the refusal code."""
    try:
        return Verifier(list(secrets), token, tolerance=300).verify(hdrs, body, now).method
    except AuthError as exc:
        return exc.code


def test_sign_reproduces_reference_vector() -> None:
    assert sign(REF_SECRET, REF_ID, REF_TS, REF_BODY) == REF_SIG


@pytest.mark.parametrize(
    ("case", "hdrs", "body", "secrets", "now", "expected"),
    [
        ("reference vector", headers(), REF_BODY, (REF_SECRET,), REF_TS, "signed"),
        ("rotation: second secret", headers(), REF_BODY, (OTHER_SECRET, REF_SECRET), REF_TS,
         "signed"),
        ("list with one good entry", headers(f"v1,AAAA {REF_SIG} v1,bm9wZQ=="), REF_BODY,
         (REF_SECRET,), REF_TS, "signed"),
        ("v2 entries ignored", headers(f"v2,{REF_SIG[3:]} {REF_SIG}"), REF_BODY, (REF_SECRET,),
         REF_TS, "signed"),
        ("only a v2 entry", headers(f"v2,{REF_SIG[3:]}"), REF_BODY, (REF_SECRET,), REF_TS,
         "malformed_signature"),
        ("no comma", headers("v1" + REF_SIG[3:]), REF_BODY, (REF_SECRET,), REF_TS,
         "malformed_signature"),
        ("bad base64", headers("v1,not*base64!"), REF_BODY, (REF_SECRET,), REF_TS,
         "malformed_signature"),
        ("empty signature", headers(""), REF_BODY, (REF_SECRET,), REF_TS, "malformed_signature"),
        ("non-integer timestamp", headers(ts="1614265330.5"), REF_BODY, (REF_SECRET,), REF_TS,
         "malformed_timestamp"),
        ("timestamp words", headers(ts="yesterday"), REF_BODY, (REF_SECRET,), REF_TS,
         "malformed_timestamp"),
        ("empty id", headers(msg_id=""), REF_BODY, (REF_SECRET,), REF_TS, "malformed_webhook_id"),
        ("stale", headers(), REF_BODY, (REF_SECRET,), REF_TS + 301, "stale_timestamp"),
        ("edge of tolerance", headers(), REF_BODY, (REF_SECRET,), REF_TS + 300, "signed"),
        ("future", headers(), REF_BODY, (REF_SECRET,), REF_TS - 301, "future_timestamp"),
        ("wrong secret", headers(), REF_BODY, (OTHER_SECRET,), REF_TS, "invalid_signature"),
        ("body changed after signing", headers(), b'{"test": 2432232315}', (REF_SECRET,), REF_TS,
         "invalid_signature"),
        ("id changed after signing", headers(msg_id="msg_other"), REF_BODY, (REF_SECRET,), REF_TS,
         "invalid_signature"),
        ("no credentials at all", {}, REF_BODY, (REF_SECRET,), REF_TS, "missing_credentials"),
        ("nothing configured", headers(), REF_BODY, (), REF_TS, "not_configured"),
    ],
)
def test_signature_table(
    case: str,
    hdrs: dict[str, str],
    body: bytes,
    secrets: tuple[str, ...],
    now: float,
    expected: str,
) -> None:
    assert verify(hdrs, body, secrets, now) == expected, case


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_each_missing_header_is_refused(missing: str) -> None:
    hdrs = headers()
    del hdrs[missing]
    assert verify(hdrs) == "missing_signature_header"


def test_body_signed_by_standardwebhooks_library_verifies() -> None:
    when = datetime.fromtimestamp(REF_TS + 10, UTC)
    body = b'{"id": "abc", "status": "succeeded"}'
    sig = standardwebhooks.Webhook(REF_SECRET).sign("msg_lib", when, body.decode())
    assert verify(headers(sig, "msg_lib", str(REF_TS + 10)), body) == "signed"


def test_body_signed_by_svix_library_verifies_under_svix_headers() -> None:
    when = datetime.fromtimestamp(REF_TS, UTC)
    body = b'{"id": "abc", "status": "failed"}'
    sig = svix.Webhook(REF_SECRET).sign("msg_svix", when, body.decode())
    hdrs = {"svix-id": "msg_svix", "svix-timestamp": str(REF_TS), "svix-signature": sig}
    assert verify(hdrs, body) == "signed"


def _ed25519_pair() -> tuple[Ed25519PrivateKey, str]:
    private = Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return private, "whpk_" + base64.b64encode(public).decode()


def test_ed25519_v1a_signature_verifies_with_whpk_key() -> None:
    private, public_secret = _ed25519_pair()
    content = f"{REF_ID}.{REF_TS}.".encode() + REF_BODY
    sig = "v1a," + base64.b64encode(private.sign(content)).decode()
    assert verify(headers(sig), secrets=(public_secret,)) == "signed"
    # The same signature over a changed body fails.
    assert verify(headers(sig), b"{}", secrets=(public_secret,)) == "invalid_signature"


def test_key_for_another_purpose_is_refused() -> None:
    """An HMAC made with the ed25519 public key's bytes, or a v1a entry checked as v1, fails."""
    private, public_secret = _ed25519_pair()
    public_as_hmac = "whsec_" + public_secret[5:]
    forged = sign(public_as_hmac, REF_ID, REF_TS, REF_BODY)
    assert verify(headers(forged), secrets=(public_secret,)) == "invalid_signature"
    content = f"{REF_ID}.{REF_TS}.".encode() + REF_BODY
    ed_sig = base64.b64encode(private.sign(content)).decode()
    assert verify(headers("v1," + ed_sig), secrets=(public_secret, REF_SECRET)) == (
        "invalid_signature"
    )


def test_token_path() -> None:
    assert verify({"authorization": "Bearer s3cret"}, token="s3cret") == "token"
    assert verify({"authorization": "bearer s3cret"}, token="s3cret") == "token"
    assert verify({"authorization": "Bearer wrong"}, token="s3cret") == "invalid_token"
    assert verify({"authorization": "Basic czNjcmV0"}, token="s3cret") == "malformed_authorization"
    assert verify({"authorization": "Bearer s3cret"}, secrets=(REF_SECRET,)) == (
        "token_not_accepted"
    )


def test_signature_headers_are_not_bypassed_by_a_token() -> None:
    hdrs = {**headers("v1,AAAA"), "authorization": "Bearer s3cret"}
    assert verify(hdrs, token="s3cret") == "invalid_signature"


@pytest.mark.parametrize("secret", ["whsec_***Zq9", "plainXk9zqWv", "whpk_AAAA", "whsec_"])
def test_bad_secret_formats_are_refused_without_echoing_them(secret: str) -> None:
    with pytest.raises(SecretFormatError) as info:
        parse_secret(secret)
    if len(secret) > 6:
        assert secret[6:] not in str(info.value)
