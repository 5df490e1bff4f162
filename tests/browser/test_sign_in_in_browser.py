"""Password sign-in in Chromium: the sign-in page, a wrong password, then the app with the signed-in
name and a Sign out link that really signs out."""

from __future__ import annotations

import pytest

from assistant.accounts import UsersFile
from assistant.pipeline import AnswerPipeline
from tests.browser.conftest import ARTIFACTS
from tests.helpers.browser import ask
from tests.helpers.fakes import ScriptedModel
from tests.helpers.server import app_settings, serve

PASSWORD = "correct horse battery"


@pytest.fixture
def app_url(tmp_path):
    settings = app_settings(tmp_path, auth={"mode": "password"})
    UsersFile(settings.users_file).add("alice_w", PASSWORD)
    with serve(AnswerPipeline(ScriptedModel("Hello from the model."), None), settings) as url:
        yield url


def fill_sign_in(page, name: str, password: str) -> None:
    page.get_by_label("username").fill(name)
    page.get_by_label("password").fill(password)
    page.get_by_role("button", name="Login").click()


def test_sign_in_use_and_sign_out(page, app_url):
    page.goto(app_url)
    page.get_by_label("password").wait_for(timeout=30_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "sign-in.png"))
    fill_sign_in(page, "alice_w", "not the password")
    page.get_by_text("Incorrect Credentials").wait_for(timeout=30_000)
    fill_sign_in(page, "alice_w", PASSWORD)
    account = page.locator("#account")
    account.get_by_text("alice_w").wait_for(timeout=30_000)
    assert "Sign out" in account.inner_text()
    assert "Hello from the model." in ask(page, "hi").inner_text()
    page.screenshot(path=str(ARTIFACTS / "signed-in.png"))
    account.get_by_role("link").click()
    page.get_by_label("password").wait_for(timeout=30_000)  # back at the sign-in page
    assert page.request.get(app_url + "config").status == 401  # the browser's cookie no longer signs in
