"""Who may sign in: a users file of argon2id password hashes (argon2-cffi), managed with
``python -m assistant users``, and a guard against guessing.

The file is JSON, written whole to a temporary file and renamed (a crash never leaves half of it), readable
by its owner only (0600; its folder 0700 when it creates it), and read again at every sign-in (and by the
workspaces at every request), so a user added or removed with the CLI counts at once, without restarting
the app. Passwords never reach a log or the file; an unknown name costs a sign-in as long as a known one
(a hash is verified either way)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from assistant.settings import Settings

from assistant.errors import ConfigurationError, InputError

log = logging.getLogger(__name__)
NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
MIN_PASSWORD = 10


@dataclass(frozen=True)
class Account:
    name: str
    admin: bool
    created: float


def normalise_name(name: str) -> str:
    """User names are case-insensitive: ``Alice`` and ``alice`` are one user."""
    clean = (name or "").strip().lower()
    if not NAME.fullmatch(clean):
        raise InputError(f"'{name}' cannot be a user name: use 1 to 64 letters, digits, '.', '_' or '-', "
                         "starting with a letter or digit")
    return clean


class UsersFile:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._hasher = None

    # -- what the CLI does ----------------------------------------------------------------------

    def add(self, name: str, password: str, *, admin: bool = False) -> Account:
        name = normalise_name(name)
        with self._editing() as users:
            if name in users:
                raise InputError(f"There is already a user '{name}' (to change the password: users passwd {name})")
            users[name] = {"hash": self._hash(password), "admin": admin, "created": time.time()}
        return Account(name, admin, users[name]["created"])

    def set_password(self, name: str, password: str) -> None:
        name = normalise_name(name)
        with self._editing() as users:
            self._known(users, name)["hash"] = self._hash(password)

    def remove(self, name: str) -> None:
        name = normalise_name(name)
        with self._editing() as users:
            self._known(users, name)
            del users[name]

    def exists(self, name: str) -> bool:
        """Whether ``name`` is (still) a user: asked at every request, so a removed user gets nothing more."""
        return name in self._read()

    def is_admin(self, name: str) -> bool:
        """Whether ``name`` may change the shared library (``users add --admin``); asked at every write."""
        return bool(self._read().get(name, {}).get("admin"))

    def accounts(self) -> list[Account]:
        return [Account(n, bool(u.get("admin")), float(u.get("created", 0))) for n, u in sorted(self._read().items())]

    # -- what sign-in does ----------------------------------------------------------------------

    def verify(self, name: str, password: str) -> bool:
        """True when ``password`` is this user's. The same work is done for an unknown name."""
        from argon2.exceptions import InvalidHashError, VerificationError

        try:
            name = normalise_name(name)
        except InputError:
            name = ""
        entry = self._read().get(name)
        stored = entry["hash"] if entry else self._dummy()
        try:
            self.hasher.verify(stored, password or "")
        except (VerificationError, InvalidHashError):
            return False
        return entry is not None

    # -- the file -------------------------------------------------------------------------------

    @property
    def hasher(self):
        if self._hasher is None:
            from argon2 import PasswordHasher

            self._hasher = PasswordHasher()  # argon2id, RFC 9106's low-memory profile
        return self._hasher

    def _hash(self, password: str) -> str:
        if len(password or "") < MIN_PASSWORD:
            raise InputError(f"A password needs at least {MIN_PASSWORD} characters")
        return self.hasher.hash(password)

    def _dummy(self) -> str:
        if not hasattr(self, "_dummy_hash"):
            self._dummy_hash = self.hasher.hash(os.urandom(16).hex())
        return self._dummy_hash

    @staticmethod
    def _known(users: dict, name: str) -> dict:
        if name not in users:
            raise InputError(f"There is no user '{name}'")
        return users[name]

    def _read(self) -> dict[str, dict]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise InputError(f"The users file {self.path.name} cannot be read ({type(exc).__name__}); "
                             "restore it from a backup") from exc
        return dict(data.get("users", {}))

    @contextlib.contextmanager
    def _editing(self):
        """The users, to change: read and written back under a file lock (the CLI may run twice at once)."""
        from filelock import FileLock

        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with FileLock(str(self.path) + ".lock", timeout=30), self._lock:
            users = self._read()
            yield users
            self._write(users)

    def _write(self, users: dict) -> None:
        partial = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump({"version": 1, "users": users}, out, indent=1, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, self.path)


class SignInGuard:
    """At most ``max_failures`` failed sign-ins per user name within ``window`` seconds; past that the name
    is refused, right password or not, until its oldest failure leaves the window. Counting by name (the
    sign-in form gives no address) stops guessing one account's password; it cannot be used to find which
    names exist, since unknown names are counted the same."""

    def __init__(self, max_failures: int = 5, window: float = 900.0, clock: Callable[[], float] = time.monotonic):
        self.max_failures = max_failures
        self.window = window
        self.clock = clock
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def attempt(self, name: str) -> bool:
        """Whether a sign-in for ``name`` may be tried now. An allowed attempt counts as a failure until
        ``succeeded`` says otherwise, so attempts in parallel cannot pass the limit."""
        with self._lock:
            times = self._recent(name)
            if len(times) >= self.max_failures:
                return False
            times.append(self.clock())
            return True

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._failures.pop(name, None)

    def _recent(self, name: str) -> deque[float]:
        times = self._failures[name]
        while times and times[0] <= self.clock() - self.window:
            times.popleft()
        for other in [n for n, t in self._failures.items() if not t and n != name]:
            del self._failures[other]  # names whose failures have all expired
        return times


class PasswordSignIn:
    """The sign-in check the web app calls with a name and a password (Gradio's ``launch(auth=...)``)."""

    def __init__(self, users: UsersFile, guard: SignInGuard, *, at_once: int = 2):
        self.users = users
        self.guard = guard
        self._slots = threading.BoundedSemaphore(at_once)  # each check takes 64 MiB: a flood must queue

    def __call__(self, name: str, password: str) -> bool:
        key = (name or "").strip().lower()[:64]
        if not self.guard.attempt(key):
            log.warning("sign-in refused for %s: too many failed attempts, try again later", self._who(key))
            return False
        with self._slots:
            ok = self.users.verify(name, password)
        if ok:
            self.guard.succeeded(key)
            log.info("signed in: %s", key)
            return True
        log.warning("failed sign-in for %s", self._who(key))
        return False

    def _who(self, key: str) -> str:
        """A known user's name; never what was typed otherwise (it may be a password in the wrong box)."""
        return repr(key) if self.users.exists(key) else "an unknown name"


def sign_in_for(settings: Settings, audit=None):
    """The web app's sign-in check for these settings (an ``async`` function of name and password: the
    argon2 verification, ~0.1 s and 64 MiB by design, runs in a worker thread, never on the server's event
    loop); None in local mode (no sign-in). Password mode with no users yet cannot start: nobody could
    sign in."""
    if settings.auth.mode != "password":
        return None
    users = UsersFile(settings.users_file)
    try:
        known = users.accounts()
    except InputError as exc:
        raise ConfigurationError(str(exc)) from None
    if not known:
        raise ConfigurationError("ASSISTANT_AUTH__MODE=password, but there are no users yet: add one with "
                                 "`python -m assistant users add NAME` (with the same ASSISTANT_DATA_DIR, or "
                                 "ASSISTANT_AUTH__USERS_FILE).")
    check = PasswordSignIn(users, SignInGuard(settings.auth.max_failures, settings.auth.lockout_minutes * 60))

    def checked(name: str, password: str) -> bool:
        ok = check(name, password)
        if audit is not None:  # the name as typed, never the password
            audit.record(name, "sign-in", outcome="ok" if ok else "refused")
        return ok

    async def sign_in(name: str, password: str) -> bool:  # a real coroutine function: Gradio awaits it
        return await asyncio.to_thread(checked, name, password)

    sign_in.check = check
    return sign_in
