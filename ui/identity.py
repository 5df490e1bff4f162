"""Who a request comes from: the one place the web app decides it, for every sign-in it supports.

- ``local``: no sign-in; every request is the one local user (allowed on a loopback address only).
- ``password``: Gradio's sign-in form checks the users file; its cookie names the user.
- ``proxy``: a reverse proxy doing the organisation's single sign-on puts the user's name in a header;
  the header is believed only when the request comes from one of the configured proxy addresses (anyone
  else could send it too).
- ``huggingface``: "Sign in with Hugging Face" on a Space (Gradio's OAuth session).
- ``anonymous``: no sign-in; each browser gets a random visitor cookie and a private, temporary workspace.

Handlers, the file route and the request guard all ask ``Identity.user(request)``; workspaces are keyed to
what it returns, never to Gradio's session hash.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import secrets
from http.cookies import SimpleCookie

from assistant.accounts import NAME
from assistant.settings import Settings
from assistant.workspaces import LOCAL_USER

VISITOR_COOKIE = "assistant-visitor"
VISITOR_PREFIX = "visitor-"
_UNSAFE = re.compile(r"[^a-z0-9._-]+")


def workspace_name(name: str) -> str | None:
    """A signed-in name as a workspace key: lower case, and where the name has characters a folder or a
    Chroma collection cannot (``alice@hospital.org``), a readable slug with a hash of the whole name, so
    that two names never share a workspace."""
    clean = (name or "").strip().lower()
    if not clean:
        return None
    if NAME.fullmatch(clean):
        return clean
    slug = _UNSAFE.sub("-", clean).strip("-._")[:40] or "user"
    return f"{slug}-{hashlib.sha256(clean.encode()).hexdigest()[:10]}"


class ProxyUser:
    """The user a trusted reverse proxy names in a header; None from any other address."""

    def __init__(self, header: str, trusted: list[str]):
        self.header = header
        self.networks = [ipaddress.ip_network(t, strict=False) for t in trusted]

    def trusted(self, host: str | None) -> bool:
        try:
            address = ipaddress.ip_address(host or "")
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    def __call__(self, request) -> str | None:
        client = getattr(request, "client", None)
        if not self.trusted(getattr(client, "host", None)):
            return None
        return workspace_name(request.headers.get(self.header, ""))


class Visitors:
    """Anonymous mode: a visitor is known by a random cookie; the workspace key is a hash of it (a log or
    a folder name never shows the cookie itself)."""

    @staticmethod
    def new_token() -> str:
        return secrets.token_urlsafe(32)

    @staticmethod
    def name(token: str) -> str:
        return VISITOR_PREFIX + hashlib.sha256(token.encode()).hexdigest()[:24]

    def __call__(self, request) -> str | None:
        token = _cookie(request, VISITOR_COOKIE)
        return self.name(token) if token and len(token) >= 32 else None


class Identity:
    def __init__(self, settings: Settings):
        a = settings.auth
        self.mode = a.mode
        self.proxy = ProxyUser(a.proxy_header, a.trusted_proxies) if a.mode == "proxy" else None
        self.visitors = Visitors() if a.mode == "anonymous" else None

    @property
    def dependency(self):
        """For Gradio's ``auth_dependency``: where the user comes from outside Gradio's own sign-in form
        (every Gradio route then refuses a request it returns None for)."""
        return self.proxy or self.visitors

    @property
    def signed_in(self) -> bool:
        """Whether users are told apart (every mode but local)."""
        return self.mode != "local"

    def user(self, request) -> str | None:
        """The workspace key of whoever sent the request; None: nobody the app knows."""
        if self.mode == "local":
            return LOCAL_USER
        raw = getattr(request, "request", None) or request  # a gr.Request wraps Starlette's request
        if self.mode == "password":
            name = getattr(request, "username", None) or _password_user(raw)
            return workspace_name(name) if name else None
        if self.mode == "huggingface":
            session = raw.scope.get("session") or {}
            info = (session.get("oauth_info") or {}).get("userinfo") or {}
            return workspace_name(info.get("preferred_username", ""))
        return self.dependency(raw)


def _password_user(request) -> str | None:
    """The name Gradio's sign-in cookie stands for (the app keeps the tokens it handed out)."""
    app = request.scope.get("app")
    tokens, cookie_id = getattr(app, "tokens", None), getattr(app, "cookie_id", None)
    if tokens is None or cookie_id is None:
        return None
    token = request.cookies.get(f"access-token-{cookie_id}") or request.cookies.get(
        f"access-token-unsecure-{cookie_id}")
    return tokens.get(token)


def _cookie(request, name: str) -> str | None:
    cookies = getattr(request, "cookies", None)
    if cookies is not None:
        return cookies.get(name)
    header = dict(request.get("headers", [])).get(b"cookie", b"").decode("latin-1")
    jar = SimpleCookie()
    jar.load(header)
    return jar[name].value if name in jar else None
