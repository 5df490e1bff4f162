"""What the web server adds around the Gradio app: files served only to their owner, and a guard on every
request (host names, origins, upload limits, security headers, what Gradio's own file route may serve).

Both live inside Gradio's FastAPI app (``launch(app_kwargs=...)``), so Gradio's sign-in (its cookie, the
proxy header, the OAuth session) is known to them through ``Identity``.

Gradio keeps uploads in one cache for everyone, serves any file in it to whoever has the URL, fetches
``http://`` URLs on the server's behalf and lets a session's results be read by whoever presents its session
hash. Here:

- ``/gradio_api/file=`` serves only the app's own assets, files the app itself shows to everyone (the
  examples) and the requesting user's own uploads (until the app moves them into the workspace); URLs are
  never fetched.
- A session hash belongs to the user who first used it; anyone else presenting it is refused.
- ``/files/kb/<name>`` (thumbnails) and ``/files/chat/<conversation>/<image>`` (a conversation's images)
  are looked up in the requesting user's workspace: another user's file is "not found", like a missing one.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route

from assistant.errors import AssistantError
from assistant.settings import Settings
from assistant.workspaces import Workspaces
from ui.identity import VISITOR_COOKIE, Identity, Visitors

log = logging.getLogger(__name__)
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp",
               ".gif": "image/gif", ".bmp": "image/bmp", ".tif": "image/tiff", ".tiff": "image/tiff"}
PRIVATE = {"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"}
MAX_SESSIONS = 100_000
MAX_JSON_BODY = 4 << 20  # a queue request's JSON (files arrive by /upload, not inline)


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_NAMES or host.startswith("127.")


def security_headers(settings: Settings) -> list[tuple[bytes, bytes]]:
    """Sent with every response. The page may be framed by Hugging Face only when it runs on a Space."""
    frame = "https://huggingface.co https://*.hf.space" if os.environ.get("SPACE_ID") else "'none'"
    csp = ("default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; "
           "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; media-src 'self' data: blob:; "
           "font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; object-src 'none'; "
           f"base-uri 'self'; form-action 'self'; frame-ancestors {frame}")
    headers = [(b"content-security-policy", csp.encode()), (b"x-content-type-options", b"nosniff"),
               (b"referrer-policy", b"same-origin")]
    if not os.environ.get("SPACE_ID"):
        headers.append((b"x-frame-options", b"DENY"))
    return headers


def allowed_hosts(settings: Settings) -> set[str]:
    hosts = set(LOOPBACK_NAMES) | {h.lower() for h in settings.ui.allowed_hosts}
    if settings.ui.host not in ("0.0.0.0", "::", ""):
        hosts.add(settings.ui.host.lower())
    if os.environ.get("SPACE_HOST"):  # Hugging Face names the Space's host for it
        hosts.add(os.environ["SPACE_HOST"].lower())
    return hosts


class Guard:
    """ASGI middleware: every request to the app passes through its ``Gate`` first."""

    def __init__(self, app, gate: Gate):
        self.app, self.gate = app, gate

    async def __call__(self, scope, receive, send):
        await self.gate(self.app, scope, receive, send)


class Gate:
    """What the guard knows and decides (one per server; the middleware is built by Starlette)."""

    def __init__(self, *, settings: Settings, identity: Identity, workspaces: Workspaces,
                 assets: list[Path]):
        self.identity = identity
        self.workspaces = workspaces
        self.hosts = allowed_hosts(settings)
        self.headers = security_headers(settings)
        self.max_upload = int(settings.ui.max_upload_mb * 2**20)
        self.quota = int(settings.ui.quota_mb * 2**20)
        self.public_files: set[str] = set()  # filled in once the app's config is built (its examples)
        self.assets = [a.resolve() for a in assets]
        self.visitors = identity.visitors
        self._uploads: dict[str, set[str]] = {}  # user -> Gradio cache paths of their uploads
        self._sessions: OrderedDict[str, str] = OrderedDict()  # session hash -> user
        self._lock = threading.Lock()

    async def __call__(self, app, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        host = _host_name(headers.get(b"host", b"").decode("latin-1"))
        if host not in self.hosts:
            return await _refuse(scope, send, 421, f"This server does not answer to the host name {host!r}.")
        issued = None
        if self.visitors is not None and not _cookie_present(headers, VISITOR_COOKIE):
            issued = Visitors.new_token()  # the visitor's first request: it knows them from now on
            scope["headers"] = [*scope.get("headers", []), (b"cookie", f"{VISITOR_COOKIE}={issued}".encode())]
        send = self._with_headers(send, issued, scope)
        if scope["type"] == "websocket":
            return await app(scope, receive, send)
        method, path = scope["method"], scope["path"]
        if method not in ("GET", "HEAD", "OPTIONS") and not _same_origin(headers, host):
            return await _refuse(scope, send, 403, "Requests from other sites are refused.")
        request = Request(scope)
        user = self.identity.user(request)
        if path.startswith(("/gradio_api/file=", "/gradio_api/file/", "/file=")):
            return await self._file(app, scope, receive, send, path, user)
        if path.startswith("/gradio_api/deep_link"):
            return await _refuse(scope, send, 404, "Not found.")
        if method == "POST" and path.rstrip("/") == "/gradio_api/upload":
            return await self._upload(app, scope, receive, send, headers, user)
        session, receive = await self._session_hash(scope, receive, path, headers)
        if session and user and not self._claim(session, user):
            log.warning("refused a session hash presented by a user it does not belong to")
            return await _refuse(scope, send, 403, "This session belongs to someone else.")
        return await app(scope, receive, send)

    # -- responses ------------------------------------------------------------------------------

    def _with_headers(self, send, issued: str | None, scope):
        secure = scope.get("scheme") in ("https", "wss")

        async def sending(message):
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in self.headers if k not in names]
                if issued:
                    cookie = (f"{VISITOR_COOKIE}={issued}; Path=/; HttpOnly; SameSite=Lax; Max-Age=31536000"
                              + ("; Secure" if secure else ""))
                    extra.append((b"set-cookie", cookie.encode()))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        return sending

    # -- Gradio's file route --------------------------------------------------------------------

    async def _file(self, app, scope, receive, send, path: str, user: str | None):
        target = unquote(path.split("file=", 1)[1] if "file=" in path else path.split("/file/", 1)[1])
        if "://" in target or target.startswith("//"):
            return await _refuse(scope, send, 403, "This server does not fetch URLs.")
        resolved = _resolved(target)
        if resolved is None or not self._may_serve(resolved, user):
            return await _refuse(scope, send, 404, "Not found.")
        return await app(scope, receive, send)

    def _may_serve(self, resolved: str, user: str | None) -> bool:
        if resolved in self.public_files or any(Path(resolved).is_relative_to(a) for a in self.assets):
            return True
        with self._lock:
            return user is not None and resolved in self._uploads.get(user, ())

    # -- uploads --------------------------------------------------------------------------------

    async def _upload(self, app, scope, receive, send, headers: dict, user: str | None):
        if user is None:
            return await app(scope, receive, send)  # Gradio refuses it: nobody signed in
        length = headers.get(b"content-length")
        if length is None or not length.isdigit():
            return await _refuse(scope, send, 411, "An upload must say its length.")
        size = int(length)
        if size > self.max_upload:
            return await _refuse(scope, send, 413, f"The upload is {size / 2**20:.0f} MB; at most "
                                 f"{self.max_upload / 2**20:.0f} MB are accepted at once.")
        try:
            used = self.workspaces.of(user).size() if self.workspaces.signed_in else 0
        except AssistantError as exc:
            return await _refuse(scope, send, 403, str(exc))
        if used + size > self.quota:
            return await _refuse(scope, send, 413, f"Your workspace is full ({used / 2**20:.0f} of "
                                 f"{self.quota / 2**20:.0f} MB): delete documents or conversations first.")
        body = bytearray()

        async def capture(message):  # the reply lists the cache paths of the files: they are this user's
            if message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
                if not message.get("more_body"):
                    self._remember_uploads(user, bytes(body))
            await send(message)

        return await app(scope, _limited(receive, size), capture)

    def _remember_uploads(self, user: str, body: bytes) -> None:
        try:
            paths = json.loads(body)
        except ValueError:
            return
        if isinstance(paths, list):
            resolved = {r for p in paths if isinstance(p, str) and (r := _resolved(p))}
            with self._lock:
                self._uploads.setdefault(user, set()).update(resolved)

    def forget_upload(self, user: str, path: str) -> None:
        """The upload left the cache (moved into the workspace, or ingested)."""
        resolved = _resolved(path)
        with self._lock:
            self._uploads.get(user, set()).discard(resolved)

    def forget_user(self, user: str) -> None:
        with self._lock:
            self._uploads.pop(user, None)
            for session in [s for s, u in self._sessions.items() if u == user]:
                del self._sessions[session]

    # -- session hashes -------------------------------------------------------------------------

    async def _session_hash(self, scope, receive, path: str, headers: dict):
        """The session hash a request names (query, path or JSON body), and a ``receive`` that still
        delivers the body."""
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if "session_hash" in query:
            return query["session_hash"][0], receive
        if path.startswith("/gradio_api/heartbeat/"):
            return path.rsplit("/", 1)[-1], receive
        if scope["method"] != "POST" or b"json" not in headers.get(b"content-type", b""):
            return None, receive
        body, more = bytearray(), True
        while more and len(body) <= MAX_JSON_BODY:
            message = await receive()
            body.extend(message.get("body", b""))
            more = message.get("more_body", False)
        if more:  # larger than any queue request: let Gradio see it whole, without a session check
            return None, _replay(bytes(body), receive, more=True)
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            data = {}
        session = data.get("session_hash") if isinstance(data, dict) else None
        return (session if isinstance(session, str) else None), _replay(bytes(body), receive)

    def _claim(self, session: str, user: str) -> bool:
        with self._lock:
            owner = self._sessions.get(session)
            if owner is None:
                self._sessions[session] = user
                if len(self._sessions) > MAX_SESSIONS:
                    self._sessions.popitem(last=False)
                return True
            self._sessions.move_to_end(session)
            return owner == user


def file_routes(workspaces: Workspaces, identity: Identity) -> list[Route]:
    """The owner-checked file routes (thumbnails, conversations' images)."""

    def workspace(request: Request):
        user = identity.user(request)
        if user is None:
            return None
        try:
            return workspaces.of(user)
        except AssistantError:
            return None

    def thumbnail(request: Request) -> Response:
        ws = workspace(request)
        path = ws.thumbnail(request.path_params["name"]) if ws else None
        return _image(path)

    def chat_image(request: Request) -> Response:
        ws = workspace(request)
        try:
            path = ws.conversations.image_path(request.path_params["conversation"],
                                               request.path_params["ref"]) if ws else None
        except AssistantError:
            path = None
        return _image(path)

    def export(request: Request) -> Response:
        ws = workspace(request)
        conversation, kind = request.path_params["conversation"], request.path_params["kind"]
        if ws is None or kind not in ("md", "json", "zip"):
            return PlainTextResponse("Not found.", 404, headers=PRIVATE)
        try:
            if kind == "md":
                body, media = ws.conversations.export_markdown(conversation).encode(), "text/markdown"
            elif kind == "json":
                data = ws.conversations.export_json(conversation)
                body, media = json.dumps(data, ensure_ascii=False, indent=1).encode(), "application/json"
            else:
                ws.scratch.mkdir(parents=True, exist_ok=True, mode=0o700)
                archive = ws.conversations.export_archive(conversation, ws.scratch / f"{conversation}.zip")
                body, media = archive.read_bytes(), "application/zip"
                archive.unlink(missing_ok=True)
        except AssistantError:
            return PlainTextResponse("Not found.", 404, headers=PRIVATE)
        name = f"conversation-{conversation}.{kind}"
        return Response(body, media_type=media, headers={
            **PRIVATE, "Content-Disposition": f'attachment; filename="{name}"'})

    return [Route("/files/kb/{name}", thumbnail), Route("/files/chat/{conversation}/{ref}", chat_image),
            Route("/files/export/{conversation}.{kind}", export)]


def _image(path: Path | None) -> Response:
    if path is None or path.suffix.lower() not in IMAGE_TYPES:
        return PlainTextResponse("Not found.", 404, headers=PRIVATE)
    return FileResponse(path, media_type=IMAGE_TYPES[path.suffix.lower()], headers=PRIVATE)


def public_files(config: dict, cache_dir: str) -> set[str]:
    """Cache paths the app's own page shows to everyone (its examples): every ``path`` in its config that
    lies in Gradio's cache."""
    found: set[str] = set()
    cache = Path(cache_dir).resolve()

    def walk(value):
        if isinstance(value, dict):
            path = value.get("path")
            if isinstance(path, str) and (r := _resolved(path)) and Path(r).is_relative_to(cache):
                found.add(r)
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(config)
    return found


def _resolved(path: str) -> str | None:
    try:
        return str(Path(path).resolve())
    except (OSError, ValueError, RuntimeError):
        return None


def _host_name(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):  # [::1]:7860
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _same_origin(headers: dict, host: str) -> bool:
    """A browser names the page a write comes from; a request from another site's page is refused. API
    clients (no ``Origin``, no ``Sec-Fetch-Site``) are not browsers and pass."""
    origin = headers.get(b"origin", b"").decode("latin-1")
    if origin:
        return origin != "null" and _host_name(urlsplit(origin).netloc) == host
    return headers.get(b"sec-fetch-site", b"same-origin") in (b"same-origin", b"none")


def _cookie_present(headers: dict, name: str) -> bool:
    return f"{name}=".encode() in headers.get(b"cookie", b"")


def _limited(receive, size: int):
    """The body as sent, but never more than it said it was (an upload that lies about its length)."""
    seen = 0

    async def receiving():
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > size:
            raise ValueError("the upload is larger than it said")
        return message

    return receiving


def _replay(body: bytes, receive, *, more: bool = False):
    sent = False

    async def receiving():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": more}
        return await receive()

    return receiving


async def _refuse(scope, send, status: int, text: str):
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    body = text.encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": body})
