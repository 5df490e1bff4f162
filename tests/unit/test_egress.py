"""The outbound restriction of medical mode, without installing it (an audit hook cannot be removed): the
guard called as the interpreter would call it, the settings' check of the servers it must reach, and the
parse worker's own refusal of the network."""

import socket

import pytest

from assistant.egress import EgressRefused, Guard, is_local, outside
from assistant.errors import ConfigurationError
from assistant.settings import Settings
from retrieval.worker import _no_network


@pytest.fixture
def tcp():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        yield s


def refused(guard, event, *args) -> bool:
    try:
        guard(event, args)
        return False
    except EgressRefused:
        return True


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1", "0.0.0.0",
                                  "LOCALHOST.", "app.localhost"])
def test_loopback_is_local(host):
    assert is_local(host)


@pytest.mark.parametrize("host", ["10.0.0.1", "example.org", "192.168.1.5", "::ffff:10.0.0.1", "localhost.example"])
def test_anything_else_is_not(host):
    assert not is_local(host)


def test_connections_to_loopback_and_allowed_hosts_pass(tcp):
    guard = Guard(["10.1.2.3", "10.9.0.0/16"])
    for address in [("127.0.0.1", 80), ("localhost", 80), ("10.1.2.3", 8000), ("10.9.200.1", 1)]:
        assert not refused(guard, "socket.connect", tcp, address)
    assert refused(guard, "socket.connect", tcp, ("10.1.2.4", 8000))
    assert refused(guard, "socket.sendto", tcp, ("8.8.8.8", 53))
    assert guard.refused == 2


def test_unix_sockets_and_events_of_no_interest_pass():
    guard = Guard([])
    with socket.socket(socket.AF_UNIX) as unix:
        assert not refused(guard, "socket.connect", unix, "/run/some.sock")
    assert not refused(guard, "open", "/etc/hosts", "r", 0)
    assert not refused(guard, "socket.getaddrinfo", None, 7860, 0, 0, 0)  # a passive lookup (binding)


def test_name_lookups_pass_for_allowed_names_only():
    guard = Guard(["VLLM.internal"])
    assert not refused(guard, "socket.getaddrinfo", "vllm.internal", 8000, 0, 0, 0)
    assert not refused(guard, "socket.getaddrinfo", b"localhost", 80, 0, 0, 0)
    assert refused(guard, "socket.getaddrinfo", "example.org", 443, 0, 0, 0)
    assert refused(guard, "socket.gethostbyname", "example.org")
    assert refused(guard, "socket.getnameinfo", ("8.8.8.8", 53), 0)


def test_an_address_an_allowed_name_resolves_to_passes(tcp, monkeypatch):
    answers = {"vllm.internal": "10.4.4.4"}
    monkeypatch.setattr(socket, "getaddrinfo",
                        lambda name, port: [(socket.AF_INET, 1, 6, "", (answers[name], 0))])
    guard = Guard(["vllm.internal"])
    assert not refused(guard, "socket.connect", tcp, ("10.4.4.4", 8000))
    answers["vllm.internal"] = "10.4.4.5"  # the DNS answer changed: followed on the next miss
    assert not refused(guard, "socket.connect", tcp, ("10.4.4.5", 8000))
    assert refused(guard, "socket.connect", tcp, ("10.4.4.4", 8000))


def test_the_refusal_is_logged_with_the_host_only(tcp, caplog):
    assert refused(Guard([]), "socket.connect", tcp, ("10.255.255.1", 9))
    assert "refused a connection to 10.255.255.1 port 9" in caplog.text


@pytest.mark.parametrize("url, allowed, expected", [
    ("http://127.0.0.1:8000/v1", [], None), ("http://localhost:11434/v1", [], None), ("http://[::1]:8000", [], None),
    ("http://vllm.internal:8000/v1", ["vllm.internal"], None), ("http://10.0.0.7:8000", ["10.0.0.0/24"], None),
    ("https://api.openai.com/v1", ["vllm.internal"], "api.openai.com"), ("http://10.0.0.7:8000", [], "10.0.0.7"),
    ("not a url", [], "not a url"), ("", [], ""),
])
def test_outside(url, allowed, expected):
    assert outside(url, allowed) == expected


def medical(**sections):
    return Settings(medical={"enabled": True, **sections.pop("medical", {})}, **sections)


def test_medical_mode_accepts_servers_on_loopback_and_allowed_hosts():
    medical(model={"backend": "openai", "endpoint": "http://127.0.0.1:8000/v1"},
            retrieval={"chroma_url": "http://localhost:8001"})
    medical(model={"backend": "openai", "endpoint": "http://vllm.internal:8000/v1"},
            retrieval={"chroma_url": "http://chroma.internal:8000"},
            medical={"allowed_hosts": ["vllm.internal", "chroma.internal"]})


@pytest.mark.parametrize("sections, variable", [
    ({"model": {"backend": "openai", "endpoint": "https://api.openai.com/v1"}}, "ASSISTANT_MODEL__ENDPOINT"),
    ({"retrieval": {"chroma_url": "http://chroma.example.com:8000"}}, "ASSISTANT_RETRIEVAL__CHROMA_URL"),
    ({"model": {"backend": "openai", "endpoint": "http://10.0.0.9/v1"}, "medical": {"allowed_hosts": ["10.0.0.8"]}},
     "ASSISTANT_MODEL__ENDPOINT"),
])
def test_medical_mode_refuses_servers_elsewhere_naming_the_variable(sections, variable):
    with pytest.raises(ConfigurationError) as refusal:
        medical(**sections)
    assert str(refusal.value).startswith(f"{variable}=")
    assert "ASSISTANT_MEDICAL__ALLOWED_HOSTS" in str(refusal.value)


def test_only_medical_mode_and_only_the_servers_in_use_are_checked():
    Settings(model={"backend": "openai", "endpoint": "https://api.openai.com/v1"})
    medical(model={"backend": "transformers", "endpoint": "https://api.openai.com/v1"})


def test_the_parse_worker_refuses_the_network_in_any_mode(tcp):
    with pytest.raises(PermissionError):
        _no_network("socket.connect", (tcp, ("127.0.0.1", 80)))
    with pytest.raises(PermissionError):
        _no_network("socket.getaddrinfo", ("example.org", 80, 0, 0, 0))
    with socket.socket(socket.AF_UNIX) as unix:
        _no_network("socket.connect", (unix, "/run/some.sock"))
    _no_network("open", ("/etc/hosts", "r", 0))
