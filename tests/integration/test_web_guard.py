"""The request guard and the sign-in modes on a real server: host names, other sites' uploads, upload size
and quota, security headers, the bind check, the trusted proxy header, anonymous visitors."""

from __future__ import annotations

import httpx
import pytest

from assistant.errors import ConfigurationError
from assistant.pipeline import AnswerPipeline
from tests.helpers.fakes import ScriptedModel
from tests.helpers.server import app_settings, scripted_workspaces, serve

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("guard")
    settings = app_settings(tmp, ui={"max_upload_mb": 1})
    with serve(AnswerPipeline(ScriptedModel(), None), settings) as url:
        yield url


def test_every_response_carries_the_security_headers(local):
    reply = httpx.get(local)
    assert reply.status_code == 200
    assert "frame-ancestors 'none'" in reply.headers["content-security-policy"]
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert reply.headers["referrer-policy"] == "same-origin" and reply.headers["x-frame-options"] == "DENY"


def test_unknown_host_names_are_refused(local):
    assert httpx.get(local, headers={"Host": "attacker.example"}).status_code == 421  # DNS rebinding
    assert httpx.get(local, headers={"Host": "localhost:7860"}).status_code == 200


def test_uploads_from_another_site_are_refused(local):
    files = {"files": ("a.txt", b"hello", "text/plain")}
    other = httpx.post(f"{local}gradio_api/upload", files=files, headers={"Origin": "https://evil.example"})
    assert other.status_code == 403
    cross = httpx.post(f"{local}gradio_api/upload", files=files, headers={"Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403
    own = httpx.post(f"{local}gradio_api/upload", files=files, headers={"Origin": local.rstrip("/")})
    assert own.status_code == 200


def test_an_upload_over_the_limit_is_refused_before_it_is_stored(local):
    big = b"x" * (2 << 20)
    reply = httpx.post(f"{local}gradio_api/upload", files={"files": ("big.bin", big)})
    assert reply.status_code == 413 and "at most 1 MB" in reply.text


def test_local_mode_refuses_an_address_others_can_reach(tmp_path):
    from ui.app import check_binding

    with pytest.raises(ConfigurationError, match="no sign-in"):
        check_binding(app_settings(tmp_path, ui={"host": "0.0.0.0"}))
    check_binding(app_settings(tmp_path, ui={"host": "0.0.0.0"}, auth={"mode": "anonymous"}))
    check_binding(app_settings(tmp_path, ui={"host": "0.0.0.0", "trust_network": True}))  # Docker, see README
    check_binding(app_settings(tmp_path))


def test_the_proxy_header_is_believed_only_from_a_trusted_proxy(tmp_path):
    settings = app_settings(tmp_path, auth={"mode": "proxy", "trusted_proxies": ["127.0.0.1"]})
    workspaces = scripted_workspaces(settings, ScriptedModel())
    with serve(workspaces, settings) as url:
        assert httpx.get(f"{url}gradio_api/info").status_code == 401  # no header: nobody
        headers = {"X-Forwarded-User": "Alice@Hospital.org"}
        assert httpx.get(f"{url}gradio_api/info", headers=headers).status_code == 200
    untrusted = app_settings(tmp_path, auth={"mode": "proxy", "trusted_proxies": ["10.0.0.5"]})
    with serve(scripted_workspaces(untrusted, ScriptedModel()), untrusted) as url:
        assert httpx.get(f"{url}gradio_api/info", headers=headers).status_code == 401


def test_anonymous_visitors_get_private_temporary_workspaces(tmp_path):
    settings = app_settings(tmp_path, auth={"mode": "anonymous"})
    workspaces = scripted_workspaces(settings, ScriptedModel())
    with serve(workspaces, settings) as url:
        first, second = httpx.Client(base_url=url), httpx.Client(base_url=url)
        assert first.get("").status_code == 200 and second.get("").status_code == 200
        a, b = first.cookies["assistant-visitor"], second.cookies["assistant-visitor"]
        assert a != b and len(a) >= 32
        from gradio_client import Client

        visitor = Client(url, verbose=False, headers={"Cookie": f"assistant-visitor={a}"})
        visitor.predict(*_chat("visitor question"), api_name="/chat")
        users = list((settings.data_dir / "users").iterdir())
        assert len(users) == 1 and users[0].name.startswith("visitor-") and a not in users[0].name
        assert workspaces.remove_idle(3600) == []  # in use: kept
        assert workspaces.remove_idle(0) == [users[0].name]
        assert not users[0].exists()  # every file of the visitor's workspace is gone


def _chat(text):
    from tests.helpers.server import chat_args

    return chat_args(text, use_knowledge=False)
