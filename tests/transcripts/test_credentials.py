"""Signed transcripts: issue, reuse, verify online and offline, every failure reason, keys, revocation."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.db import utcnow
from app.transcripts import credential, keys
from app.transcripts.models import IssuedCredential, SigningKey
from tests.transcripts.conftest import TERM2, YEAR, credited_stay, get, post


def transcript(client, account, pupil, year=YEAR):
    res = get(client, account, f"/api/v1/students/{pupil.id}/transcript?school_year={year}")
    assert res.status_code == 200, res.json
    return res.json


def verify(client, token):
    res = client.post("/api/v1/credentials/verify", json={"credential": token})
    assert res.status_code == 200, res.json
    return res.json


def flip(token: str, index: int) -> str:
    """The token with one character changed (to another base64url character)."""
    char = token[index]
    return token[:index] + ("B" if char == "A" else "A") + token[index + 1:]


def test_transcript_credential_verifies_and_carries_the_totals(client, school):
    data = transcript(client, school["parent"], school["ming"])
    assert (data["total"], data["required"], data["met"]) == ("7.30", "8.00", False)
    cred = data["credential"]
    assert cred["status"] == "active" and cred["format"] == "vc+jwt"
    assert cred["verify_url"] == f"https://ledger.example.test/verify/{cred['id']}"
    result = verify(client, cred["jwt"])
    assert result["valid"] is True and result["reason"] is None and result["message"]
    claims = result["claims"]
    subject = claims["credentialSubject"]
    assert subject["name"] == "王小明"
    assert subject["creditSummary"]["total"] == "7.30" and subject["creditSummary"]["required"] == "8.00"
    assert subject["creditSummary"]["byKind"] == data["by_kind"] == {
        "competition": "3.00", "lecture": "1.00", "visit": "1.50", "workshop": "1.80"}
    assert subject["creditSummary"]["byTerm"] == data["by_term"] == {"1": "5.50", "2": "1.80"}
    assert subject["creditSummary"]["ledgerHead"] == data["entries"][-1]["hash"]
    assert claims["issuer"]["name"] == "深圳市福田区实验小学"


def test_credential_has_the_open_badges_shape(client, school):
    cred = transcript(client, school["student"], school["ming"])["credential"]
    header = jwt.get_unverified_header(cred["jwt"])
    assert header == {"alg": "EdDSA", "kid": cred["kid"], "typ": "JWT"}
    claims = jwt.decode(cred["jwt"], options={"verify_signature": False})
    assert claims["@context"][0] == "https://www.w3.org/ns/credentials/v2"
    assert "purl.imsglobal.org/spec/ob/v3p0" in claims["@context"][1]
    assert claims["type"] == ["VerifiableCredential", "OpenBadgeCredential"]
    assert claims["id"] == claims["jti"] == cred["verify_url"]
    assert claims["iss"] == claims["issuer"]["id"] and claims["issuer"]["type"] == ["Profile"]
    subject = claims["credentialSubject"]
    assert claims["sub"] == subject["id"] and subject["id"].startswith("urn:uuid:")
    assert str(school["ming"].id) not in subject["id"].removeprefix("urn:uuid:").split("-")
    assert subject["type"] == ["AchievementSubject"] and subject["achievement"]["type"] == ["Achievement"]
    assert subject["creditsEarned"] == 7.3 and subject["achievement"]["creditsAvailable"] == 8.0
    assert subject["identifier"][0] == {"type": "IdentityObject", "identityType": "name", "hashed": False,
                                        "identityHash": "王小明"}
    assert claims["credentialStatus"] == {"id": cred["status_url"], "type": "1EdTechRevocationList"}
    assert claims["validFrom"].endswith("Z") and claims["exp"] > claims["nbf"]
    assert "student_number" not in json.dumps(claims) and "2025001" not in json.dumps(claims)
    # The same pupil keeps the same opaque subject id in every credential; another pupil has another.
    other = transcript(client, school["teacher"], school["hua"])["credential"]
    assert jwt.decode(other["jwt"], options={"verify_signature": False})["sub"] != subject["id"]


def test_credential_is_reused_until_the_record_changes(client, school, db_session):
    first = transcript(client, school["student"], school["ming"])["credential"]
    again = transcript(client, school["teacher"], school["ming"])["credential"]
    assert again["id"] == first["id"] and again["jwt"] == first["jwt"]
    credited_stay(school["ming"], school["workshop"], TERM2 + timedelta(days=2), 90)
    newer = transcript(client, school["student"], school["ming"])
    assert newer["credential"]["id"] != first["id"] and newer["total"] == "9.10"
    # The older snapshot stays valid (it was true when signed); the school revokes it if need be.
    assert verify(client, first["jwt"])["valid"] is True
    assert db_session.query(IssuedCredential).filter_by(student_id=school["ming"].id).count() == 2


@pytest.mark.parametrize("part", ["payload", "signature", "signature_last"])
def test_one_changed_character_breaks_the_signature(client, school, part):
    token = transcript(client, school["student"], school["ming"])["credential"]["jwt"]
    header_end, payload_end = token.index("."), token.rindex(".")
    index = {"payload": (header_end + payload_end) // 2, "signature": (payload_end + len(token)) // 2,
             "signature_last": len(token) - 1}[part]
    result = verify(client, flip(token, index))
    assert (result["valid"], result["reason"], result["claims"]) == (False, "bad_signature", None)
    assert result["message"]


def test_a_changed_header_is_malformed_or_unverifiable(client, school):
    token = transcript(client, school["student"], school["ming"])["credential"]["jwt"]
    result = verify(client, flip(token, 5))
    assert result["valid"] is False and result["reason"] in ("malformed", "bad_signature")


def test_a_key_that_is_not_in_the_jwks_is_unknown(client, school):
    token = transcript(client, school["student"], school["ming"])["credential"]["jwt"]
    claims = jwt.decode(token, options={"verify_signature": False})
    stranger = Ed25519PrivateKey.generate()
    forged = jwt.encode(claims, stranger, algorithm="EdDSA",
                        headers={"kid": keys.public_jwk(stranger.public_key())["kid"], "typ": "JWT"})
    assert verify(client, forged)["reason"] == "unknown_key"
    no_kid = jwt.encode(claims, stranger, algorithm="EdDSA")
    assert verify(client, no_kid)["reason"] == "unknown_key"
    # A stranger's key announced under our kid is a bad signature.
    posing = jwt.encode(claims, stranger, algorithm="EdDSA", headers={"kid": jwt.get_unverified_header(token)["kid"]})
    assert verify(client, posing)["reason"] == "bad_signature"


def _resign(token: str, **changes) -> str:
    claims = {**jwt.decode(token, options={"verify_signature": False}), **changes}
    signing = keys.current_key()
    return jwt.encode(claims, keys.private_key(signing), algorithm="EdDSA", headers={"kid": signing.kid, "typ": "JWT"})


def test_expired_and_not_yet_valid(client, school):
    token = transcript(client, school["student"], school["ming"])["credential"]["jwt"]
    now = int(utcnow().timestamp())
    expired = verify(client, _resign(token, exp=now - 3600))
    assert (expired["valid"], expired["reason"]) == (False, "expired")
    assert expired["claims"]["credentialSubject"]["name"] == "王小明"  # authentic, only out of date
    assert verify(client, _resign(token, nbf=now + 3600))["reason"] == "not_yet_valid"
    assert credential.verify_token(token, now=utcnow() + timedelta(days=731)).reason == "expired"


def test_malformed_tokens(client, school):
    token = transcript(client, school["student"], school["ming"])["credential"]["jwt"]
    claims = jwt.decode(token, options={"verify_signature": False})
    for junk in ("garbage", "a.b.c", "a.b", token + ".x", "é.é.é",
                 jwt.encode(claims, "secret-secret-secret-secret-1234", algorithm="HS256"),
                 jwt.encode(claims, None, algorithm="none")):
        result = verify(client, junk)
        assert (result["valid"], result["reason"]) == (False, "malformed"), junk
    assert client.post("/api/v1/credentials/verify", json={}).status_code == 422
    assert client.post("/api/v1/credentials/verify", json={"credential": 42}).status_code == 422
    missing_claims = {k: v for k, v in claims.items() if k != "credentialSubject"}
    assert verify(client, _sign(missing_claims))["reason"] == "malformed"


def _sign(claims: dict) -> str:
    signing = keys.current_key()
    return jwt.encode(claims, keys.private_key(signing), algorithm="EdDSA", headers={"kid": signing.kid})


def test_revocation(client, school):
    cred = transcript(client, school["parent"], school["ming"])["credential"]
    url = f"/api/v1/credentials/{cred['id']}/revoke"
    assert post(client, school["teacher"], url, {"reason": "录入错误"}).status_code == 403
    assert post(client, school["other_admin"], url, {"reason": "录入错误"}).status_code == 404
    assert post(client, school["admin"], url, {}).status_code == 422
    res = post(client, school["admin"], url, {"reason": "学分记录有误，已重新签发"})
    assert res.status_code == 200 and res.json["status"] == "revoked" and res.json["revoked_at"]
    result = verify(client, cred["jwt"])
    assert (result["valid"], result["reason"]) == (False, "revoked")
    status = client.get(f"/api/v1/credentials/{cred['id']}/status").json
    assert status["status"] == "revoked"
    assert status["revokedCredentials"] == [{"id": cred["verify_url"], "revocationReason": "学分记录有误，已重新签发"}]
    assert post(client, school["admin"], url, {"reason": "again"}).json["revocation_reason"] == "学分记录有误，已重新签发"
    # Reading the transcript again issues a fresh credential in place of the revoked one.
    fresh = transcript(client, school["parent"], school["ming"])["credential"]
    assert fresh["id"] != cred["id"] and verify(client, fresh["jwt"])["valid"] is True
    assert client.get("/api/v1/credentials/nope/status").status_code == 404


def test_unknown_credential_and_status_of_an_active_one(client, school):
    cred = transcript(client, school["parent"], school["ming"])["credential"]
    status = client.get(f"/api/v1/credentials/{cred['id']}/status").json
    assert status["status"] == "active" and status["revokedCredentials"] == []
    token = _resign(cred["jwt"], jti="https://ledger.example.test/verify/not-issued")
    assert verify(client, token)["reason"] == "unknown_credential"


def test_jwks_publishes_every_key_and_rotation_keeps_old_credentials_valid(app, client, school, db_session):
    old = transcript(client, school["student"], school["ming"])["credential"]
    before = client.get("/.well-known/jwks.json")
    assert before.status_code == 200 and before.mimetype == "application/jwk-set+json"
    assert "max-age" in before.headers["Cache-Control"]
    jwk = next(k for k in before.json["keys"] if k["kid"] == old["kid"])
    assert set(jwk) == {"kty", "crv", "x", "kid", "alg", "use"} and (jwk["kty"], jwk["crv"]) == ("OKP", "Ed25519")
    result = app.test_cli_runner().invoke(args=["keys", "rotate"])
    assert result.exit_code == 0 and "signing with" in result.output and old["kid"] in result.output
    after = client.get("/.well-known/jwks.json").json
    kids = [k["kid"] for k in after["keys"]]
    assert old["kid"] in kids and len(kids) == len(before.json["keys"]) + 1
    assert verify(client, old["jwt"])["valid"] is True
    new = transcript(client, school["student"], school["ming"])["credential"]
    assert new["kid"] != old["kid"] and new["kid"] == kids[0] and verify(client, new["jwt"])["valid"] is True
    assert db_session.get(SigningKey, old["kid"]).retired_at is not None
    listing = app.test_cli_runner().invoke(args=["keys", "list"])
    assert old["kid"] in listing.output and "retired" in listing.output


def test_private_keys_are_encrypted_at_rest(app, client, school, db_session):
    kid = transcript(client, school["student"], school["ming"])["credential"]["kid"]
    row = db_session.get(SigningKey, kid)
    assert row.private_pem.startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    with pytest.raises(TypeError):
        serialization.load_pem_private_key(row.private_pem.encode(), None)
    with app.test_request_context():
        loaded = serialization.load_pem_private_key(row.private_pem.encode(), keys._password())
    assert keys.public_jwk(loaded.public_key())["kid"] == kid


OFFLINE_SNIPPET = textwrap.dedent("""
    import json, sys
    import jwt  # PyJWT (with cryptography): nothing else, no network, no access to the server

    jwks = json.load(open(sys.argv[1]))           # saved once from /.well-known/jwks.json
    token = open(sys.argv[2]).read().strip()      # the credential (the transcript's "jwt")

    kid = jwt.get_unverified_header(token)["kid"]
    jwk = next(k for k in jwks["keys"] if k["kid"] == kid)
    claims = jwt.decode(token, jwt.PyJWK(jwk), algorithms=["EdDSA"])  # checks signature, nbf and exp
    summary = claims["credentialSubject"]["creditSummary"]
    print(claims["credentialSubject"]["name"], summary["schoolYear"], summary["total"], summary["required"])
""")


def test_offline_verification_with_nothing_but_the_jwks(client, school, tmp_path):
    token = transcript(client, school["student"], school["ming"])["credential"]["jwt"]
    (tmp_path / "jwks.json").write_text(json.dumps(client.get("/.well-known/jwks.json").json))
    (tmp_path / "verify.py").write_text(OFFLINE_SNIPPET)

    def run(text):
        (tmp_path / "token.txt").write_text(text)
        return subprocess.run([sys.executable, str(tmp_path / "verify.py"), str(tmp_path / "jwks.json"),
                               str(tmp_path / "token.txt")], capture_output=True, text=True, cwd=tmp_path,
                              timeout=60)

    ok = run(token)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.split() == ["王小明", YEAR, "7.30", "8.00"]
    tampered = run(flip(token, (token.index(".") + token.rindex(".")) // 2))
    assert tampered.returncode != 0 and "InvalidSignatureError" in tampered.stderr
    # The server's own verifier, given only the JWKS, agrees.
    jwks = json.loads((tmp_path / "jwks.json").read_text())
    assert credential.verify_token(token, jwks=jwks, check_status=False).valid is True
    assert credential.verify_token(token, jwks={"keys": []}, check_status=False).reason == "unknown_key"


def test_verify_page(client, school):
    cred = transcript(client, school["parent"], school["ming"])["credential"]
    page = client.get(f"/verify/{cred['id']}")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "验证通过" in html and "王小明" in html and "7.30" in html and "深圳市福田区实验小学" in html
    assert "2025001" not in html  # nothing the credential does not carry
    assert page.headers["X-Robots-Tag"].startswith("noindex") and page.headers["Cache-Control"] == "no-store"
    by_token = client.get(f"/verify/{cred['jwt']}").get_data(as_text=True)
    assert "验证通过" in by_token
    tampered = client.get(f"/verify/{flip(cred['jwt'], len(cred['jwt']) - 5)}").get_data(as_text=True)
    assert "验证未通过" in tampered and "王小明" not in tampered and "签名校验失败" in tampered
    missing = client.get("/verify/does-not-exist")
    assert missing.status_code == 404 and "未找到" in missing.get_data(as_text=True)
    post(client, school["admin"], f"/api/v1/credentials/{cred['id']}/revoke", {"reason": "保护隐私"})
    revoked = client.get(f"/verify/{cred['id']}").get_data(as_text=True)
    assert "已被学校撤销" in revoked and "王小明" not in revoked


def test_subject_ids_are_opaque_and_stable(app, school):
    with app.test_request_context():
        first = credential.subject_id(school["ming"].id)
        assert first == credential.subject_id(school["ming"].id) != credential.subject_id(school["hua"].id)
