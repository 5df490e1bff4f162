"""Password sign-in on the real app (``ASSISTANT_AUTH__MODE=password``), on 127.0.0.1 with real HTTP
clients: without signing in nothing is served, a wrong password is refused, guessing locks the name, and
a signed-in client uses the API. Users come from the users file, as ``python -m assistant users`` writes it.
(Sign-in decides who may use the app; what each user may see is the workspaces' part.)"""

from __future__ import annotations

import httpx
import pytest
from gradio_client import Client

from assistant.accounts import UsersFile
from assistant.pipeline import AnswerPipeline
from tests.helpers.fakes import ScriptedModel
from tests.helpers.server import app_settings, ask, serve

pytestmark = pytest.mark.integration
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("signin")
    settings = app_settings(tmp, auth={"mode": "password", "max_failures": 3})
    users = UsersFile(settings.users_file)
    users.add("alice", PASSWORD)
    users.add("bob", "bobs long password")
    with serve(AnswerPipeline(ScriptedModel("Hello [1]."), None), settings) as url:
        yield url, users


def sign_in(url: str, name: str, password: str) -> httpx.Response:
    return httpx.post(url + "login", data={"username": name, "password": password}, timeout=30)


def test_nothing_is_served_without_signing_in(app):
    url, _ = app
    assert httpx.get(url + "config", timeout=30).status_code == 401
    assert httpx.get(url + "gradio_api/info", timeout=30).status_code == 401
    page = httpx.get(url, timeout=30)
    assert page.status_code == 200 and '"auth_required":true' in page.text.replace(" ", "")
    with pytest.raises(Exception):  # noqa: B017  gradio_client raises its own error types per version
        Client(url, verbose=False)


def test_a_wrong_password_is_refused_and_the_right_one_opens_the_api(app):
    url, _ = app
    assert sign_in(url, "bob", "not bobs password").status_code == 400
    assert sign_in(url, "nobody", "whatever it is").status_code == 400
    signed = sign_in(url, "bob", "bobs long password")
    assert signed.status_code == 200 and signed.json() == {"success": True}
    assert httpx.get(url + "config", cookies=signed.cookies, timeout=30).status_code == 200
    client = Client(url, auth=("bob", "bobs long password"), verbose=False)
    answer, _, _ = ask(client, "hi", use_knowledge=False)
    assert "Hello" in answer


def test_guessing_locks_the_name_but_not_the_others(app):
    url, users = app
    users.add("carol", "carols long password")
    assert [sign_in(url, "carol", f"guess {i} of many").status_code for i in range(3)] == [400] * 3
    assert sign_in(url, "carol", "carols long password").status_code == 400  # locked, right password or not
    assert sign_in(url, "alice", PASSWORD).status_code == 200  # another name is not affected


def test_a_user_added_while_the_app_runs_can_sign_in_and_a_removed_one_cannot(app):
    url, users = app
    users.add("dave", "daves long password")
    assert sign_in(url, "dave", "daves long password").status_code == 200
    users.remove("dave")
    assert sign_in(url, "dave", "daves long password").status_code == 400
