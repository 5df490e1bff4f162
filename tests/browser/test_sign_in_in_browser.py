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


def test_two_users_side_by_side_and_a_conversation_resumed(browser, tmp_path, red_png, blue_png):
    """Two browsers signed in as two users at once: each sees only their own conversation and its image;
    one resumes a conversation after a reload and the model is given its earlier turn."""
    from tests.helpers.server import scripted_workspaces

    settings = app_settings(tmp_path, auth={"mode": "password"})
    users = UsersFile(settings.users_file)
    users.add("ann", PASSWORD)
    users.add("ben", PASSWORD)
    model = ScriptedModel("Noted.")
    contexts = [browser.new_context(viewport={"width": 1400, "height": 1000}) for _ in range(2)]
    with serve(scripted_workspaces(settings, model, is_user=users.exists), settings) as url:
        pages = []
        for context, name, image, words in zip(contexts, ("ann", "ben"), (red_png, blue_png),
                                               ("ann's red question", "ben's blue question")):
            page = context.new_page()
            page.goto(url)
            fill_sign_in(page, name, PASSWORD)
            page.locator("#account").get_by_text(name).wait_for(timeout=30_000)
            ask(page, words, [image])
            pages.append(page)
        ann, ben = pages
        for page, own, other in ((ann, "ann's red", "ben's blue"), (ben, "ben's blue", "ann's red")):
            page.reload()
            page.locator("#conv-list input").click()
            options = page.get_by_role("option")
            options.first.wait_for(timeout=30_000)
            listed = " ".join(options.all_inner_texts())
            assert own in listed and other not in listed
            options.first.click()
            page.locator("#chatbot img.chat-image").first.wait_for(timeout=30_000)
            assert page.locator("#chatbot img.chat-image").evaluate("i => i.naturalWidth > 0")  # served to its owner
        foreign = ann.locator("#chatbot img.chat-image").first.get_attribute("src")
        assert ben.request.get(url + foreign).status == 404  # ann's image URL, in ben's browser
        ask(ann, "and now?")
        turns = model.calls[-1]
        assert [t.role for t in turns] == ["system", "user", "assistant", "user"]
        assert turns[1].text == "ann's red question" and turns[1].images[0].read_bytes() == red_png.read_bytes()
        ARTIFACTS.mkdir(exist_ok=True)
        ann.screenshot(path=str(ARTIFACTS / "resumed-conversation.png"))
    for context in contexts:
        context.close()


def test_knowledge_bases_created_filled_chosen_and_deleted_in_the_browser(browser, tmp_path):
    """A signed-in user makes a second knowledge base, adds a file to it, sees the first one still empty,
    unticks the shared library under the chat's "Search in", and deletes the new one after confirming."""
    from tests.helpers.server import scripted_workspaces

    settings = app_settings(tmp_path, auth={"mode": "password"})
    users = UsersFile(settings.users_file)
    users.add("ann", PASSWORD)
    note = tmp_path / "plan.txt"
    note.write_text("The launch is planned for the second week of May.")
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    workspaces = scripted_workspaces(settings, ScriptedModel("Noted."), is_user=users.exists)
    with serve(workspaces, settings) as url:
        page = context.new_page()
        page.goto(url)
        fill_sign_in(page, "ann", PASSWORD)
        page.locator("#account").get_by_text("ann").wait_for(timeout=30_000)
        page.locator("#tab-kb-button").click()
        page.locator("#kb-name textarea, #kb-name input").first.fill("Project X")
        page.locator("#kb-create").click()
        page.locator("#kb-base-report").get_by_text("Created Project X").wait_for(timeout=30_000)
        assert page.locator("#kb-select input").input_value() == "Project X"
        page.locator("#kb-files input[type=file]").set_input_files(str(note))
        page.locator("#kb-add").click()
        page.locator("#kb-report").get_by_text("1 of 1 files").wait_for(timeout=60_000)
        page.wait_for_function("() => document.querySelector('#kb-table').innerText.includes('plan.txt')",
                               timeout=30_000)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "knowledge-bases.png"))
        page.locator("#kb-select input").click()
        page.get_by_role("option", name="My documents").click()
        page.wait_for_function("() => !document.querySelector('#kb-table').innerText.includes('plan.txt')",
                               timeout=30_000)
        page.locator("#kb-select input").click()
        page.get_by_role("option", name="Shared library").click()
        page.locator("#kb-base-report").get_by_text("an administrator adds").wait_for(timeout=30_000)
        page.locator("#kb-files input[type=file]").set_input_files(str(note))
        page.locator("#kb-add").click()
        page.locator("#kb-report").get_by_text("Only an administrator").wait_for(timeout=30_000)

        page.locator("#tab-chat-button").click()
        page.locator("#chat-settings").get_by_text("Settings").click()
        boxes = page.locator("#kb-used")
        boxes.get_by_text("Shared library").wait_for(timeout=30_000)
        assert "Project X" in boxes.inner_text()
        boxes.get_by_text("Shared library").click()
        shelf = workspaces.of("ann").shelf
        for _ in range(50):
            if not next(b for b in shelf.bases() if b.id == "shared").used:
                break
            page.wait_for_timeout(100)
        assert [b.title for b in shelf.bases() if b.used] == ["My documents", "Project X"]

        page.locator("#tab-kb-button").click()
        page.locator("#kb-select input").click()
        page.get_by_role("option", name="Project X").click()
        page.locator("#kb-remove").click()
        page.locator("#kb-base-report").get_by_text("and its document?").wait_for(timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "knowledge-base-delete-confirmation.png"))
        page.locator("#kb-remove-confirm").click()
        page.locator("#kb-base-report").get_by_text("Deleted Project X").wait_for(timeout=60_000)
        assert [b.title for b in shelf.bases()] == ["My documents", "Shared library"]
        assert page.locator("#kb-select input").input_value() == "My documents"
    context.close()
