"""Identity settings: the API keys' hashing secret and the OIDC/JWT bearer token settings.

**Key secret.** API keys are stored as HMAC-SHA256 of the key under a server secret, so a
copy of the database alone cannot test guesses of a key offline, nor be replayed as one.
Taken from, in order: ``AIOSYS_KEY_SECRET`` (at least 32 characters); ``key_secret_file``
under ``[identity]`` in ./aiosys.toml (a file readable by its owner only); for a SQLite
store, the file ``key_secret`` beside the database (``.aiosys/key_secret`` in the embedded
default), created with mode 0600 on first use. A server store (PostgreSQL) has no default:
a secret on one host's disk would make keys verify on that host only, so the operator must
configure one shared by every host (``ConfigError`` until then).

**JWT.** ``[identity.jwt]`` in ./aiosys.toml, each key overridden by an environment
variable: ``issuer`` (``AIOSYS_JWT_ISSUER``), ``audience`` (``AIOSYS_JWT_AUDIENCE``),
``jwks_url`` (``AIOSYS_JWT_JWKS_URL``) or ``jwks_file`` (``AIOSYS_JWT_JWKS_FILE``),
``tenant_claim`` (``AIOSYS_JWT_TENANT_CLAIM``, default ``tenant``), ``roles_claim``
(``AIOSYS_JWT_ROLES_CLAIM``, default ``roles``), ``leeway`` seconds of clock skew allowed on
``exp``, ``nbf`` and ``iat`` (``AIOSYS_JWT_LEEWAY``, default 60) and ``algorithms``
(default RS256, ES256; only asymmetric ones). No issuer and no JWKS: no JWT settings.
"""

from __future__ import annotations

import os
import secrets
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError

MIN_SECRET = 32
SECRET_FILE = "key_secret"
ASYMMETRIC = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


def _toml_identity() -> dict[str, Any]:
    path = Path("aiosys.toml")
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as f:
            section = tomllib.load(f).get("identity", {})
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"aiosys.toml is not valid TOML: {exc}") from None
    if not isinstance(section, dict):
        raise ConfigError("[identity] in aiosys.toml must be a table")
    return section


def key_secret(store_url: str) -> bytes:
    """The secret API keys are hashed under, for the store at ``store_url`` (see the
    module's doc for where it comes from). ``ConfigError`` when none is configured for a
    server store, or the configured one is too short or unreadable."""
    env = os.environ.get("AIOSYS_KEY_SECRET")
    if env:
        if len(env) < MIN_SECRET:
            raise ConfigError(
                f"AIOSYS_KEY_SECRET is {len(env)} characters long: use at least {MIN_SECRET} "
                '(e.g. python -c "import secrets; print(secrets.token_hex(32))")'
            )
        return env.encode()
    configured = _toml_identity().get("key_secret_file")
    if configured:
        return _read_secret(Path(str(configured)), "key_secret_file in aiosys.toml")
    if store_url.startswith("sqlite:///"):
        return _embedded_secret(Path(store_url.removeprefix("sqlite:///")).parent / SECRET_FILE)
    raise ConfigError(
        "API keys need a server secret for this store: set AIOSYS_KEY_SECRET (32+ "
        "characters) or key_secret_file under [identity] in aiosys.toml, the same on every "
        "host that serves it"
    )


def _read_secret(path: Path, what: str) -> bytes:
    try:
        mode = path.stat().st_mode
        data = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the key secret {path} ({what}): {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"the key secret {path} is readable by others (mode {stat.S_IMODE(mode):o}): "
            f"chmod 600 {path}"
        )
    if len(data) < MIN_SECRET:
        raise ConfigError(f"the key secret {path} holds {len(data)} bytes: use {MIN_SECRET}+")
    return data


def _embedded_secret(path: Path) -> bytes:
    """The embedded default's secret, created 0600 on first use (``O_EXCL``: of two
    processes creating it at once, one writes and both read the same)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_secret(path, "the embedded default's")
    except OSError as exc:
        raise ConfigError(f"cannot create the key secret {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))
    return _read_secret(path, "the embedded default's")


@dataclass(frozen=True)
class JwtSettings:
    """How bearer tokens are verified and mapped to a principal (see the module's doc)."""

    issuer: str
    audience: str
    jwks_url: str | None = None
    jwks_file: str | None = None
    tenant_claim: str = "tenant"
    roles_claim: str = "roles"
    leeway: float = 60.0
    algorithms: tuple[str, ...] = ("RS256", "ES256")

    def __post_init__(self) -> None:
        if not self.issuer or not self.audience:
            raise ConfigError("JWT settings need an issuer and an audience")
        if (self.jwks_url is None) == (self.jwks_file is None):
            raise ConfigError("JWT settings need exactly one of jwks_url and jwks_file")
        bad = [a for a in self.algorithms if a not in ASYMMETRIC]
        if bad or not self.algorithms:
            raise ConfigError(
                f"JWT algorithms must be asymmetric ({', '.join(sorted(ASYMMETRIC))}), "
                f"not {', '.join(bad) or 'none'}"
            )
        if self.leeway < 0:
            raise ConfigError(f"JWT leeway must be 0 or more seconds, not {self.leeway}")


_ENV = {
    "issuer": "AIOSYS_JWT_ISSUER",
    "audience": "AIOSYS_JWT_AUDIENCE",
    "jwks_url": "AIOSYS_JWT_JWKS_URL",
    "jwks_file": "AIOSYS_JWT_JWKS_FILE",
    "tenant_claim": "AIOSYS_JWT_TENANT_CLAIM",
    "roles_claim": "AIOSYS_JWT_ROLES_CLAIM",
    "leeway": "AIOSYS_JWT_LEEWAY",
}


def jwt_settings() -> JwtSettings | None:
    """The configured JWT settings, or None when there are none. ``ConfigError`` for
    settings that are incomplete or wrong."""
    section = _toml_identity().get("jwt", {})
    if not isinstance(section, dict):
        raise ConfigError("[identity.jwt] in aiosys.toml must be a table")
    values: dict[str, Any] = dict(section)
    for key, var in _ENV.items():
        if os.environ.get(var):
            values[key] = os.environ[var]
    if not values:
        return None
    unknown = set(values) - set(JwtSettings.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"unknown JWT settings: {', '.join(sorted(unknown))}")
    # Checked here, one setting at a time, so an error names the setting and where it is
    # set, never the dataclass's constructor.
    missing = [k for k in ("issuer", "audience") if not values.get(k)]
    if missing:
        where = " and ".join(f"{k} ([identity.jwt] in aiosys.toml or {_ENV[k]})" for k in missing)
        raise ConfigError(f"JWT settings need an issuer and an audience: set {where}")
    for key in ("issuer", "audience", "jwks_url", "jwks_file", "tenant_claim", "roles_claim"):
        if key in values and not isinstance(values[key], str):
            raise ConfigError(
                f"JWT setting {key} must be a string, not {type(values[key]).__name__}"
            )
    if "leeway" in values:
        try:
            values["leeway"] = float(values["leeway"])
        except (TypeError, ValueError):
            raise ConfigError(
                f"JWT leeway must be a number of seconds, not {values['leeway']!r}"
            ) from None
    if "algorithms" in values:
        algs = values["algorithms"]
        if isinstance(algs, str):
            algs = algs.replace(",", " ").split()
        if not isinstance(algs, list | tuple) or not all(isinstance(a, str) for a in algs):
            raise ConfigError(f"JWT algorithms must be a list of names, not {algs!r}")
        values["algorithms"] = tuple(algs)
    return JwtSettings(**values)
