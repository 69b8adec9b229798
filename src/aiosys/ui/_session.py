"""The console's session: one signed cookie, and who it says the visitor is.

The cookie (``aiosys_console``) holds a JSON object signed and timestamped with
itsdangerous (HMAC-SHA256, as Flask's and Starlette's sessions are): ``c`` the CSRF token
every POST form carries back, and once logged in ``t`` when, and ``k`` the API key's public
id (the key itself is never kept) or, for a bearer token (JWT), ``j`` the principal it named
and ``x`` when the token expires. A login lasts the session's lifetime (8 hours by default);
a cookie not rewritten for that long, or with a bad signature, reads as a new, anonymous
session. The cookie is ``HttpOnly``, ``SameSite=Lax``, and
``Secure`` when the console is served over HTTPS (or told to be).

Who the visitor is, asked on every request (``Sessions.principal``): with no identity
configured (no API key in the store, no JWT settings) the embedded default's local principal,
as in the CLI; otherwise the key's principal read afresh from the store (a key revoked or
expired since the login ends the session; a role granted or withdrawn applies at once), or
the token's until it expires; else nobody (log in).

The signing secret: ``secret`` given to ``mount_console``, else ``AIOSYS_CONSOLE_SECRET``
(32+ characters), else derived (HKDF-SHA256) from the store's API-key secret
(``identity_config.key_secret``), so every host serving one store accepts the same cookies.
A store without one (a PostgreSQL store with no identity configured) gets a random secret
for this process: there is nobody to log in, and the CSRF tokens need no more.
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

from ..app import App
from ..errors import ConfigError
from ..governance.identity_config import MIN_SECRET, key_secret
from ..kernel import LOCAL, Principal

log = logging.getLogger("aiosys.ui")

COOKIE = "aiosys_console"
SALT = "aiosys.console.session"
DEFAULT_TTL = 8 * 3600.0


@dataclass(slots=True)
class Session:
    """What the cookie says: ``csrf`` token, the logged-in key id or token principal, and
    a one-shot ``flash`` message (``(kind, text)``) for the next page. ``changed``: the
    cookie must be written with the response."""

    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    key_id: str | None = None
    token: dict[str, Any] | None = None  # a JWT's principal: id, tenant, kind, roles
    token_expires: float | None = None
    logged_at: float | None = None  # when the login was made (epoch seconds)
    flash: tuple[str, str] | None = None
    changed: bool = False

    @property
    def logged_in(self) -> bool:
        return self.key_id is not None or self.token is not None

    def dump(self) -> dict[str, Any]:
        data: dict[str, Any] = {"c": self.csrf}
        if self.key_id is not None:
            data["k"] = self.key_id
        if self.token is not None:
            data["j"], data["x"] = self.token, self.token_expires
        if self.logged_at is not None:
            data["t"] = self.logged_at
        if self.flash is not None:
            data["f"] = list(self.flash)
        return data

    @classmethod
    def load(cls, data: Any) -> Session:
        """From a verified cookie's object; a malformed one (a signed cookie of another
        version) reads as a new session."""
        if not isinstance(data, dict) or not isinstance(data.get("c"), str):
            return cls(changed=True)
        flash = data.get("f")
        token = data.get("j")
        return cls(
            csrf=data["c"],
            key_id=data["k"] if isinstance(data.get("k"), str) else None,
            token=token if isinstance(token, dict) else None,
            token_expires=_number(data.get("x")),
            logged_at=_number(data.get("t")),
            flash=(str(flash[0]), str(flash[1])) if isinstance(flash, list) and flash else None,
        )

    def log_in(self, principal: Principal, at: float) -> None:
        """Bind the session to ``principal`` (from ``Identity.authenticate``), with a new
        CSRF token: a token seen before the login (by whoever planted it) is worth nothing
        after."""
        self.csrf = secrets.token_urlsafe(32)
        self.key_id = self.token = self.token_expires = None
        self.logged_at = at
        attrs = principal.attrs
        if attrs.get("auth") == "api_key":
            self.key_id = str(attrs["key_id"])
        else:
            self.token = {
                "id": principal.id,
                "tenant": principal.tenant,
                "kind": principal.kind,
                "roles": sorted(principal.roles),
            }
            claims = attrs.get("claims")
            exp = claims.get("exp") if isinstance(claims, dict) else None
            self.token_expires = float(exp) if isinstance(exp, int | float) else None
        self.changed = True

    def log_out(self) -> None:
        self.csrf = secrets.token_urlsafe(32)
        self.key_id = self.token = self.token_expires = self.logged_at = None
        self.changed = True

    def say(self, kind: str, text: str) -> None:
        """A message for the next page shown (``ok`` or ``error``)."""
        self.flash = (kind, text)
        self.changed = True

    def take_flash(self) -> tuple[str, str] | None:
        flash, self.flash = self.flash, None
        if flash is not None:
            self.changed = True
        return flash


class Sessions:
    """Reads and writes the session cookie of one console, and resolves its principal."""

    def __init__(
        self,
        app: App,
        *,
        secret: str | bytes | None = None,
        ttl: float = DEFAULT_TTL,
        secure: bool | None = None,
        path: str = "/",
    ) -> None:
        self.app = app
        self.ttl = ttl
        self.secure = secure
        self.path = path or "/"
        self._secret = _text_secret(secret, "mount_console(secret=...)") if secret else None
        self._signer: URLSafeTimedSerializer | None = None

    @property
    def signer(self) -> URLSafeTimedSerializer:
        if self._signer is None:
            secret = self._secret or _resolve_secret(self.app)
            self._signer = URLSafeTimedSerializer(secret, salt=SALT)
        return self._signer

    def read(self, request: Request) -> Session:
        text = request.cookies.get(COOKIE)
        if not text:
            return Session(changed=True)
        try:
            data = self.signer.loads(text, max_age=int(self.ttl))
        except BadSignature:  # tampered, or older than ttl (SignatureExpired)
            return Session(changed=True)
        return Session.load(data)

    def write(self, request: Request, response: Response, session: Session) -> None:
        secure = self.secure if self.secure is not None else request.url.scheme == "https"
        response.set_cookie(
            COOKIE,
            self.signer.dumps(session.dump()),
            max_age=int(self.ttl),
            path=self.path,
            secure=secure,
            httponly=True,
            samesite="lax",
        )

    async def principal(self, session: Session) -> Principal | None:
        """Who the session is (module docstring): the local principal without identity,
        the logged-in key's or token's principal, else None."""
        identity = self.app.identity
        if not await identity.configured():
            return LOCAL
        now = identity.keys.clock()
        if session.logged_at is None or now >= session.logged_at + self.ttl:
            return None  # a login lasts ttl seconds, however often the cookie was rewritten
        if session.key_id is not None:
            keys = identity.keys
            info = await keys.get(session.key_id)
            if info is None or info.status(now) != "active":
                return None
            return Principal(
                id=info.principal,
                tenant=info.tenant,
                kind=info.kind,
                roles=frozenset(info.roles),
                attrs={"auth": "api_key", "key_id": info.id},
            )
        token = session.token
        if token is None:
            return None
        if session.token_expires is not None and now >= session.token_expires:
            return None
        return Principal(
            id=str(token["id"]),
            tenant=str(token["tenant"]),
            kind=str(token.get("kind", "user")),
            roles=frozenset(token.get("roles", ())),
            attrs={"auth": "jwt"},
        )


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _text_secret(value: str | bytes, what: str) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    if len(raw) < MIN_SECRET:
        raise ConfigError(f"{what} is {len(raw)} characters long: use at least {MIN_SECRET}")
    return raw


def _resolve_secret(app: App) -> bytes:
    env = os.environ.get("AIOSYS_CONSOLE_SECRET")
    if env:
        return _text_secret(env, "AIOSYS_CONSOLE_SECRET")
    try:
        base = key_secret(app.store.url)
    except ConfigError:
        log.warning(
            "the console signs its sessions with a secret of this process (no API-key "
            "secret is configured for this store): sessions end when it stops; set "
            "AIOSYS_CONSOLE_SECRET to share them between processes"
        )
        return secrets.token_bytes(32)
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=SALT.encode())
    return hkdf.derive(base)


__all__ = ["COOKIE", "DEFAULT_TTL", "Session", "Sessions"]
