"""OIDC/JWT bearer tokens: real RS256 and ES256 tokens signed with ``cryptography`` keys,
verified against a JWKS served by a local HTTP server (and from a file). A wrong issuer,
audience or signature, an expired or not-yet-valid token are refused, each with its reason
and never the token."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from aiosys.errors import AuthenticationFailed, ConfigError
from aiosys.governance.identity import Identity
from aiosys.governance.identity_config import JwtSettings, jwt_settings
from aiosys.store import open_store

ISSUER = "https://idp.example.test/"
AUDIENCE = "aiosys-api"


def _jwk(key: Any, kid: str, alg: str) -> dict[str, Any]:
    algo = jwt.algorithms.RSAAlgorithm if alg.startswith("RS") else jwt.algorithms.ECAlgorithm
    data: dict[str, Any] = json.loads(algo.to_jwk(key.public_key()))
    return {**data, "kid": kid, "alg": alg, "use": "sig"}


@pytest.fixture(scope="module")
def keys() -> dict[str, Any]:
    return {
        "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ec": ec.generate_private_key(ec.SECP256R1()),
        "other": rsa.generate_private_key(public_exponent=65537, key_size=2048),
    }


@pytest.fixture(scope="module")
def jwks(keys: dict[str, Any]) -> dict[str, Any]:
    return {"keys": [_jwk(keys["rsa"], "r1", "RS256"), _jwk(keys["ec"], "e1", "ES256")]}


@pytest.fixture(scope="module")
def jwks_url(jwks: dict[str, Any]) -> Iterator[str]:
    body = json.dumps(jwks).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    server.shutdown()
    server.server_close()


def token(key: Any, kid: str, alg: str = "RS256", **claims: Any) -> str:
    now = int(time.time())
    payload = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "tenant": "A",
        "roles": ["operator"],
        "iat": now,
        "exp": now + 600,
        **claims,
    }
    payload = {k: v for k, v in payload.items() if v is not None}
    return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid})


@pytest.fixture
def identity(jwks_url: str, tmp_path: Path) -> Identity:
    settings = JwtSettings(issuer=ISSUER, audience=AUDIENCE, jwks_url=jwks_url, leeway=30)
    return Identity(open_store(f"sqlite:///{tmp_path}/j.db"), jwt=settings)


async def test_rs256_and_es256_tokens_map_to_principals(
    identity: Identity, keys: dict[str, Any]
) -> None:
    p = await identity.authenticate(token(keys["rsa"], "r1"))
    assert (p.id, p.tenant, p.kind, p.roles) == ("alice", "A", "user", frozenset({"operator"}))
    assert p.attrs["auth"] == "jwt"
    q = await identity.authenticate(
        "Bearer " + token(keys["ec"], "e1", "ES256", sub="bob", roles="viewer runner")
    )
    assert (q.id, q.roles) == ("bob", frozenset({"viewer", "runner"}))


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"iss": "https://evil.example.test/"}, "wrong issuer"),
        ({"aud": "someone-else"}, "wrong audience"),
        ({"exp": int(time.time()) - 3600}, "has expired"),
        ({"nbf": int(time.time()) + 3600}, "not valid yet"),
        ({"iat": int(time.time()) + 3600}, "issued in the future"),
        ({"exp": None}, "no 'exp' claim"),
        ({"tenant": None}, "has no tenant"),
        ({"tenant": 5}, "'tenant' claim \\(its tenant\\) must be a string, not int"),
    ],
)
async def test_bad_claims_are_refused_with_their_reason(
    identity: Identity, keys: dict[str, Any], claims: dict[str, Any], reason: str
) -> None:
    bad = token(keys["rsa"], "r1", **claims)
    with pytest.raises(AuthenticationFailed, match=reason) as exc:
        await identity.authenticate(bad)
    assert bad not in str(exc.value)


async def test_a_token_signed_by_another_key_is_refused(
    identity: Identity, keys: dict[str, Any]
) -> None:
    forged = token(keys["other"], "r1")  # claims the JWKS key's kid
    with pytest.raises(AuthenticationFailed, match="signature does not verify"):
        await identity.authenticate(forged)
    unknown_kid = token(keys["other"], "nope")
    with pytest.raises(AuthenticationFailed, match="no JWKS key verifies"):
        await identity.authenticate(unknown_kid)


async def test_clock_skew_within_the_leeway_passes(
    identity: Identity, keys: dict[str, Any]
) -> None:
    now = int(time.time())
    # Expired 10 s ago, not valid for 10 s more: within the 30 s leeway both pass.
    p = await identity.authenticate(token(keys["rsa"], "r1", exp=now - 10, nbf=now + 10))
    assert p.id == "alice"


async def test_symmetric_and_none_algorithms_are_refused(
    identity: Identity, keys: dict[str, Any]
) -> None:
    hs = jwt.encode({"sub": "x", "iss": ISSUER, "aud": AUDIENCE}, "k" * 32, algorithm="HS256")
    with pytest.raises(AuthenticationFailed, match="signed with 'HS256'"):
        await identity.authenticate(hs)
    none = jwt.encode({"sub": "x"}, None, algorithm="none")
    with pytest.raises(AuthenticationFailed, match="signed with 'none'"):
        await identity.authenticate(none)
    with pytest.raises(ConfigError, match="asymmetric"):
        JwtSettings(ISSUER, AUDIENCE, jwks_file="x", algorithms=("HS256",))


async def test_a_jwks_file_verifies_tokens(
    tmp_path: Path, jwks: dict[str, Any], keys: dict[str, Any]
) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks))
    settings = JwtSettings(ISSUER, AUDIENCE, jwks_file=str(path))
    ident = Identity(open_store(f"sqlite:///{tmp_path}/f.db"), jwt=settings)
    assert (await ident.authenticate(token(keys["ec"], "e1", "ES256"))).tenant == "A"
    with pytest.raises(AuthenticationFailed, match="no key with kid 'zz'"):
        await ident.authenticate(token(keys["ec"], "zz", "ES256"))


async def test_a_token_without_jwt_settings_is_refused(
    tmp_path: Path, keys: dict[str, Any]
) -> None:
    ident = Identity(open_store(f"sqlite:///{tmp_path}/n.db"), jwt=False)
    with pytest.raises(AuthenticationFailed, match="no JWT settings"):
        await ident.authenticate(token(keys["rsa"], "r1"))


def test_settings_come_from_aiosys_toml_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for var in ("AIOSYS_JWT_ISSUER", "AIOSYS_JWT_AUDIENCE", "AIOSYS_JWT_LEEWAY"):
        monkeypatch.delenv(var, raising=False)
    assert jwt_settings() is None
    (tmp_path / "aiosys.toml").write_text(
        '[identity.jwt]\nissuer = "i"\naudience = "a"\njwks_file = "j.json"\n'
        'tenant_claim = "org_id"\n'
    )
    monkeypatch.setenv("AIOSYS_JWT_LEEWAY", "5")
    s = jwt_settings()
    assert s is not None and (s.issuer, s.tenant_claim, s.leeway) == ("i", "org_id", 5.0)
    (tmp_path / "aiosys.toml").write_text('[identity.jwt]\nissuer = "i"\n')
    with pytest.raises(ConfigError, match="audience") as exc:
        jwt_settings()
    assert "AIOSYS_JWT_AUDIENCE" in str(exc.value)
    assert "__init__" not in str(exc.value) and "positional" not in str(exc.value)
    monkeypatch.delenv("AIOSYS_JWT_LEEWAY")
    base = '[identity.jwt]\nissuer = "i"\naudience = "a"\njwks_file = "j.json"\n'
    for extra, message in (
        ('leeway = "soon"\n', "JWT leeway must be a number of seconds, not 'soon'"),
        ("tenant_claim = 5\n", "JWT setting tenant_claim must be a string, not int"),
        ("algorithms = 5\n", "JWT algorithms must be a list of names, not 5"),
    ):
        (tmp_path / "aiosys.toml").write_text(base + extra)
        with pytest.raises(ConfigError) as exc:
            jwt_settings()
        assert str(exc.value) == message
    (tmp_path / "aiosys.toml").write_text(base + 'algorithms = "ES256, RS256"\n')
    s = jwt_settings()
    assert s is not None and s.algorithms == ("ES256", "RS256")
