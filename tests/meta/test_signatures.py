import base64
import hashlib
import hmac
import json

import pytest

from meta.signatures import (
    SignedRequestError,
    make_signed_request,
    parse_signed_request,
    sign_body,
    verify_signature,
)

BODY = b'{"object":"instagram","entry":[{"id":"17841430541631416","time":1776339591}]}'
SECRET = "app-secret"
OTHER_SECRET = "instagram-app-secret"


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_sign_body_is_hex_hmac_sha256_with_prefix():
    expected = hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    assert sign_body(BODY, SECRET) == f"sha256={expected}"


def test_verify_accepts_matching_signature():
    assert verify_signature(BODY, sign_body(BODY, SECRET), [SECRET])


def test_verify_accepts_upper_case_hex():
    header = "sha256=" + sign_body(BODY, SECRET).removeprefix("sha256=").upper()
    assert verify_signature(BODY, header, [SECRET])


def test_verify_accepts_any_of_several_secrets():
    header = sign_body(BODY, OTHER_SECRET)
    assert verify_signature(BODY, header, ["", SECRET, OTHER_SECRET])


def test_verify_rejects_wrong_secret():
    assert not verify_signature(BODY, sign_body(BODY, "wrong"), [SECRET, OTHER_SECRET])


def test_verify_rejects_changed_body():
    header = sign_body(BODY, SECRET)
    assert not verify_signature(BODY + b" ", header, [SECRET])


def test_verify_uses_raw_bytes_not_reserialised_json():
    # Same JSON, different bytes: the signature covers the bytes Meta sent.
    reserialised = json.dumps(json.loads(BODY)).encode()
    assert reserialised != BODY
    assert not verify_signature(reserialised, sign_body(BODY, SECRET), [SECRET])


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "sha256=",
        "sha1=" + "0" * 40,
        "sha256=not-hex",
        "sha256=abc",  # odd length
        "nonsense",
        "sha256=" + "0" * 64,
    ],
)
def test_verify_rejects_missing_or_malformed_header(header):
    assert not verify_signature(BODY, header, [SECRET])


@pytest.mark.parametrize("secrets", [[], [""], ("", "")])
def test_verify_rejects_when_no_secret_configured(secrets):
    # An empty secret must not turn into "HMAC with empty key" that an attacker could compute.
    header = sign_body(BODY, "")
    assert not verify_signature(BODY, header, secrets)


def test_verify_accepts_a_generator_of_secrets():
    header = sign_body(BODY, SECRET)
    assert verify_signature(BODY, header, (s for s in [OTHER_SECRET, SECRET]))


# -- signed_request ---------------------------------------------------------------------------

PAYLOAD = {"algorithm": "HMAC-SHA256", "user_id": "1234567890", "issued_at": 1776339591}


def test_signed_request_round_trip():
    signed = make_signed_request(PAYLOAD, SECRET)
    assert parse_signed_request(signed, SECRET) == PAYLOAD


def test_make_signed_request_adds_algorithm():
    signed = make_signed_request({"user_id": "1"}, SECRET)
    assert parse_signed_request(signed, SECRET)["algorithm"] == "HMAC-SHA256"


def test_parse_signed_request_built_by_hand_like_meta():
    # Built independently of make_signed_request: signature over the base64url payload text.
    encoded_payload = b64url(json.dumps(PAYLOAD).encode())
    sig = hmac.new(SECRET.encode(), encoded_payload.encode(), hashlib.sha256).digest()
    signed = f"{b64url(sig)}.{encoded_payload}"
    assert parse_signed_request(signed, SECRET)["user_id"] == "1234567890"


def test_parse_signed_request_accepts_padding():
    encoded_payload = base64.urlsafe_b64encode(json.dumps(PAYLOAD).encode()).decode()
    sig = hmac.new(SECRET.encode(), encoded_payload.encode(), hashlib.sha256).digest()
    signed = f"{base64.urlsafe_b64encode(sig).decode()}.{encoded_payload}"
    assert parse_signed_request(signed, SECRET) == PAYLOAD


def test_parse_signed_request_rejects_wrong_secret():
    signed = make_signed_request(PAYLOAD, "other")
    with pytest.raises(SignedRequestError, match="signature does not match"):
        parse_signed_request(signed, SECRET)


def test_parse_signed_request_rejects_tampered_payload():
    sig, _ = make_signed_request(PAYLOAD, SECRET).split(".")
    forged = b64url(json.dumps({**PAYLOAD, "user_id": "999"}).encode())
    with pytest.raises(SignedRequestError, match="signature does not match"):
        parse_signed_request(f"{sig}.{forged}", SECRET)


def test_parse_signed_request_rejects_other_algorithm():
    payload = {**PAYLOAD, "algorithm": "HMAC-SHA1"}
    encoded_payload = b64url(json.dumps(payload).encode())
    sig = hmac.new(SECRET.encode(), encoded_payload.encode(), hashlib.sha256).digest()
    with pytest.raises(SignedRequestError, match="algorithm"):
        parse_signed_request(f"{b64url(sig)}.{encoded_payload}", SECRET)


def test_parse_signed_request_rejects_missing_algorithm():
    encoded_payload = b64url(json.dumps({"user_id": "1"}).encode())
    sig = hmac.new(SECRET.encode(), encoded_payload.encode(), hashlib.sha256).digest()
    with pytest.raises(SignedRequestError, match="algorithm"):
        parse_signed_request(f"{b64url(sig)}.{encoded_payload}", SECRET)


@pytest.mark.parametrize(
    ("signed", "match"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("no-dot-here", "form"),
        (".payload", "form"),
        ("sig.", "form"),
        ("!!!.@@@", "base64url"),
        (f"{b64url(b'x' * 32)}.{b64url(b'not json')}", "JSON"),
        (f"{b64url(b'x' * 32)}.{b64url(b'[1, 2]')}", "JSON object"),
    ],
)
def test_parse_signed_request_rejects_malformed(signed, match):
    with pytest.raises(SignedRequestError, match=match):
        parse_signed_request(signed, SECRET)


def test_parse_signed_request_requires_a_secret():
    with pytest.raises(SignedRequestError, match="secret"):
        parse_signed_request(make_signed_request(PAYLOAD, ""), "")


def test_signed_request_error_is_a_value_error():
    assert issubclass(SignedRequestError, ValueError)


# -- signed_request with several secrets (Meta app and Instagram app) -------------------------


def test_parse_signed_request_accepts_any_of_several_secrets():
    signed = make_signed_request(PAYLOAD, OTHER_SECRET)
    assert parse_signed_request(signed, [SECRET, OTHER_SECRET]) == PAYLOAD
    assert parse_signed_request(signed, ("", OTHER_SECRET)) == PAYLOAD


def test_parse_signed_request_accepts_a_generator_of_secrets():
    signed = make_signed_request(PAYLOAD, SECRET)
    assert parse_signed_request(signed, (s for s in [OTHER_SECRET, SECRET])) == PAYLOAD


def test_parse_signed_request_rejects_when_no_listed_secret_matches():
    signed = make_signed_request(PAYLOAD, "third")
    with pytest.raises(SignedRequestError, match="signature does not match"):
        parse_signed_request(signed, [SECRET, OTHER_SECRET])


@pytest.mark.parametrize("secrets", [[], [""], ("", "")])
def test_parse_signed_request_needs_a_non_empty_secret(secrets):
    # Empty secrets are skipped: an HMAC keyed with "" is something anyone can compute.
    with pytest.raises(SignedRequestError, match="No app secret"):
        parse_signed_request(make_signed_request(PAYLOAD, ""), secrets)


def test_parse_signed_request_keeps_extra_payload_fields():
    payload = {**PAYLOAD, "profile_id": "17841400000000001", "nested": {"a": [1, 2]}}
    assert parse_signed_request(make_signed_request(payload, SECRET), SECRET) == payload


def test_parse_signed_request_rejects_signature_of_wrong_length():
    _, encoded_payload = make_signed_request(PAYLOAD, SECRET).split(".")
    with pytest.raises(SignedRequestError, match="signature does not match"):
        parse_signed_request(f"{b64url(b'short')}.{encoded_payload}", SECRET)


def test_parse_signed_request_strips_surrounding_whitespace():
    signed = make_signed_request(PAYLOAD, SECRET)
    assert parse_signed_request(f"  {signed}\n", SECRET) == PAYLOAD


def test_parse_signed_request_rejects_non_string():
    with pytest.raises(SignedRequestError, match="empty"):
        parse_signed_request(None, SECRET)  # type: ignore[arg-type]


def test_signed_request_freshness_is_checked_when_asked():
    fresh = make_signed_request({"user_id": "1", "issued_at": 1_000_000}, SECRET)
    assert parse_signed_request(fresh, SECRET, max_age_seconds=300, now=1_000_299)["user_id"] == "1"
    with pytest.raises(SignedRequestError, match="issued 301 s ago"):
        parse_signed_request(fresh, SECRET, max_age_seconds=300, now=1_000_301)
    with pytest.raises(SignedRequestError, match="in the future"):
        parse_signed_request(fresh, SECRET, max_age_seconds=300, now=1_000_000 - 61)
    timeless = make_signed_request({"user_id": "1"}, SECRET)
    with pytest.raises(SignedRequestError, match="no issued_at"):
        parse_signed_request(timeless, SECRET, max_age_seconds=300)
    assert parse_signed_request(timeless, SECRET)["user_id"] == "1"  # without the check
