"""Medical mode's outbound restriction: the process connects to this machine (loopback, unix sockets) and to
the hosts named in ``ASSISTANT_MEDICAL__ALLOWED_HOSTS``, nowhere else.

Two layers. ``outside`` lets the settings refuse an endpoint or Chroma server elsewhere at startup, with a
message. ``install`` adds a process-wide audit hook (``sys.addaudithook``) that refuses, with
``EgressRefused``, every connection and name lookup made through Python's ``socket`` module to any other
address, whichever library makes it, and logs the host and port it refused (never what would have been
sent). An audit hook cannot be removed: it stays until the process ends. It does not see sockets opened by
native code that bypasses Python's ``socket`` module (libcurl, gRPC's C core, libxml2's own fetches), nor
other processes: it is a guard against the Python libraries' own calls home, not a firewall.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import sys
import threading
from collections.abc import Iterable
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
_ADDRESS_EVENTS = frozenset({"socket.connect", "socket.sendto"})
_NAME_EVENTS = frozenset({"socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr"})
_EVENTS = _ADDRESS_EVENTS | _NAME_EVENTS | {"socket.getnameinfo"}
_INET = (socket.AF_INET, socket.AF_INET6)


class EgressRefused(PermissionError):
    """A connection or name lookup the outbound restriction refused (an ``OSError``, as network failures are)."""


def host_of(url: str) -> str:
    """The host a URL names, lower case ('' when it names none)."""
    try:
        return (urlsplit(url if "//" in url else f"//{url}").hostname or "").lower()
    except ValueError:
        return ""


def _ip(host: str):
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])  # an IPv6 zone (fe80::1%eth0) is not part of it
    except ValueError:
        return None


def is_local(host: str) -> bool:
    """Loopback, by name or address (0.0.0.0 and :: too: connecting to them reaches this machine only)."""
    host = host.lower().rstrip(".")
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    ip = _ip(host)
    if ip is not None and getattr(ip, "ipv4_mapped", None):
        ip = ip.ipv4_mapped
    return ip is not None and (ip.is_loopback or ip.is_unspecified)


def outside(url: str, allowed_hosts: Iterable[str]) -> str | None:
    """The host of ``url`` when it is neither loopback nor allowed ('' when the URL names no host); else None."""
    host = host_of(url)
    if host and (is_local(host) or Guard(allowed_hosts).permits_name(host)):
        return None
    return host


class Guard:
    """The audit hook. Names are checked as names; an address is allowed when it is local, one of the allowed
    hosts' literal addresses or networks, or what an allowed name resolves to (resolved again on a miss, so a
    changed DNS answer is followed)."""

    def __init__(self, allowed_hosts: Iterable[str]):
        self.names: set[str] = set()
        self.networks: list = []
        for entry in (h.strip().lower().rstrip(".") for h in allowed_hosts):
            try:
                self.networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                if entry:
                    self.names.add(entry)
        self.resolved: set = set()
        self.refused = 0
        self._busy = threading.local()  # our own lookups and log lines must not re-enter the hook

    def permits_name(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        if is_local(host) or host in self.names:
            return True
        ip = _ip(host)
        return ip is not None and self.permits_ip(ip)

    def permits_ip(self, ip) -> bool:
        if getattr(ip, "ipv4_mapped", None):
            ip = ip.ipv4_mapped
        if ip.is_loopback or ip.is_unspecified or any(ip in n for n in self.networks):
            return True
        if ip not in self.resolved and self.names:
            self.resolved = self._resolve()
        return ip in self.resolved

    def _resolve(self) -> set:
        found = set()
        for name in self.names:
            try:
                found |= {_ip(info[4][0]) for info in socket.getaddrinfo(name, None)}
            except OSError:
                continue
        return found - {None}

    def __call__(self, event: str, args: tuple) -> None:
        if event not in _EVENTS or getattr(self._busy, "on", False):
            return
        self._busy.on = True
        try:
            target = self._target(event, args)
            if target is not None and not self.permits_name(target[0]):
                self._refuse(event, *target)
        finally:
            self._busy.on = False

    @staticmethod
    def _target(event: str, args: tuple):
        """(host, port) the event would reach, or None when it reaches no network (unix sockets, local lookups)."""
        if event in _ADDRESS_EVENTS:
            sock, address = args[0], args[-1]
            if getattr(sock, "family", None) not in _INET or not isinstance(address, tuple):
                return None
            return _text(address[0]), address[1]
        if event == "socket.getnameinfo":
            return _text(args[0][0]), args[0][1]
        host = args[0]
        return None if host is None else (_text(host), args[1] if event == "socket.getaddrinfo" else None)

    def _refuse(self, event: str, host: str, port) -> None:
        self.refused += 1
        where = f"{host} port {port}" if port not in (None, 0) else host
        what = "a connection to" if event in _ADDRESS_EVENTS else "a name lookup of"
        log.warning("medical mode: refused %s %s (not loopback, not in ASSISTANT_MEDICAL__ALLOWED_HOSTS)", what, where)
        raise EgressRefused(f"medical mode: outbound connections to {where} are refused "
                            "(ASSISTANT_MEDICAL__ALLOWED_HOSTS)")


def _text(host) -> str:
    return host.decode("ascii", "replace") if isinstance(host, (bytes, bytearray)) else str(host)


_installed: Guard | None = None
_install_lock = threading.Lock()


def install(allowed_hosts: Iterable[str]) -> Guard:
    """Add the guard to this process, once (a second call returns the first guard: hooks cannot be removed)."""
    global _installed
    with _install_lock:
        if _installed is None:
            _installed = Guard(allowed_hosts)
            sys.addaudithook(_installed)
            log.info("medical mode: outbound connections limited to loopback and %s",
                     ", ".join(sorted(_installed.names | {str(n) for n in _installed.networks})) or "nothing else")
        return _installed


def installed() -> Guard | None:
    return _installed
