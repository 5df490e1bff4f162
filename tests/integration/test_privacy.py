"""Ten users of one real app with sign-in, each with two sessions (two ``gradio_client`` clients) and a
plain HTTP client holding their sign-in cookie, as a browser has. Each adds a document and an image with
canaries of their own and chats about an image of their own. Then every user tries every other user's
canaries and URLs through the UI's API, the file routes and Gradio's file route, and replays another
user's session hash: nothing foreign may come back, while their own things do (so the checks can see).

Real components: the Gradio server on 127.0.0.1, Chroma on disk, argon2 sign-in, the request guard.
Fakes at the edges: a scripted model, the hashing embedder."""

from __future__ import annotations

import secrets
from collections import Counter

import pytest
from gradio_client import Client, handle_file
from PIL import Image, ImageDraw

from assistant.accounts import UsersFile
from tests.helpers.fakes import ScriptedModel
from tests.helpers.server import app_settings, ask, scripted_workspaces, serve, sign_in

pytestmark = pytest.mark.integration
USERS = {f"user{i}": f"password of user {i}!" for i in range(10)}
SEEN = Counter()  # what the checks saw, for the summary line


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("privacy")
    settings = app_settings(tmp, auth={"mode": "password"}, ui={"max_upload_mb": 5, "quota_mb": 50})
    users = UsersFile(settings.users_file)
    for name, password in USERS.items():
        users.add(name, password)
    workspaces = scripted_workspaces(settings, ScriptedModel("Seen [1]."), is_user=users.exists)
    with serve(workspaces, settings) as url:
        yield url, settings


def _image(path, seed: int):
    picture = Image.new("RGB", (96, 64), (seed * 23 % 256, seed * 71 % 256, 200))
    ImageDraw.Draw(picture).rectangle([seed, 10, seed + 30, 50], fill="black")
    picture.save(path)
    return path


@pytest.fixture(scope="module")
def users(app, tmp_path_factory):
    """Every user signed in twice (two sessions) and over HTTP, with a document, an image document and a
    conversation of their own."""
    url, settings = app
    folder = tmp_path_factory.mktemp("files")
    found = {}
    for i, (name, password) in enumerate(USERS.items()):
        doc, chat = f"doccanary{secrets.token_hex(6)}", f"chatcanary{secrets.token_hex(6)}"
        note = folder / f"{name}-notes.txt"
        note.write_text(f"The notes of {name} mention {doc}. Again: {doc}.")
        picture = _image(folder / f"{name}-figure.png", i)
        first, second = (Client(url, auth=(name, password), verbose=False) for _ in range(2))
        report, _ = first.predict([handle_file(str(note)), handle_file(str(picture))], api_name="/ingest")
        assert "2 of 2 files" in report
        answer, _, _ = ask(second, f"Look at this: {chat}", [_image(folder / f"{name}-chat.png", i + 50)],
                           use_knowledge=False)
        assert answer
        http = sign_in(url, name, password)
        listing = second.predict(api_name="/conversations")
        hits = first.predict(doc, None, 10, api_name="/search")
        found[name] = dict(doc=doc, chat=chat, sessions=(first, second), http=http,
                           conversations=listing, thumbnails=[h["thumbnail"] for h in hits if h["thumbnail"]])
    return url, found


def _foreign(text: str, owner: str, found: dict) -> list[str]:
    return [c for who, f in found.items() if who != owner for c in (f["doc"], f["chat"]) if c in text]


def test_ui_and_api_show_every_user_only_their_own(users):
    url, found = users
    for name, mine in found.items():
        first, second = mine["sessions"]
        docs = first.predict(api_name="/documents")
        assert sorted(d["name"] for d in docs) == [f"{name}-figure.png", f"{name}-notes.txt"]
        titles = " ".join(c["title"] for c in second.predict(api_name="/conversations"))
        assert mine["chat"] in titles and not _foreign(titles, name, found)
        for other in found.values():
            hits = first.predict(other["doc"], None, 10, api_name="/search")
            shown = " ".join(str(h) for h in hits)
            _, cards, sources = ask(second, f"What about {other['doc']}?", k=10)
            shown += cards + str(sources)
            leaked = _foreign(shown.replace(f"What about {other['doc']}", ""), name, found)
            assert not leaked, (name, leaked)
            SEEN["own canaries seen"] += shown.count(mine["doc"]) > 0 and other is mine
            SEEN["probes"] += 1
    assert SEEN["own canaries seen"] == len(found)
    print(f"\nUI/API: {SEEN['probes']} search+chat probes by {len(found)} users, {SEEN['own canaries seen']} own "
          "canaries found, 0 foreign")


def test_file_urls_serve_only_their_owner(users):
    url, found = users
    own = foreign = 0
    for name, mine in found.items():
        conversation = mine["conversations"][0]
        export = mine["http"].get(conversation["export"]["json"])
        assert export.status_code == 200 and mine["chat"] in export.text
        refs = [ref for turn in export.json()["turns"] for ref in turn["images"]]
        mine["urls"] = [conversation["export"]["json"], conversation["export"]["md"],
                        conversation["export"]["zip"], *mine["thumbnails"],
                        *(f"files/chat/{conversation['id']}/{ref}" for ref in refs)]
        assert len(mine["urls"]) >= 5
    for name, mine in found.items():
        for url_path in mine["urls"]:
            assert mine["http"].get(url_path).status_code == 200
            own += 1
        for other_name, other in found.items():
            if other_name == name:
                continue
            for url_path in other["urls"]:
                reply = mine["http"].get(url_path)
                assert reply.status_code == 404, (name, url_path)
                foreign += reply.status_code == 200
    import httpx

    anonymous = httpx.Client(base_url=url)
    assert all(anonymous.get(u).status_code in (401, 404) for u in found["user0"]["urls"])
    print(f"\nfile URLs: {own} own fetched (200), {len(found) * (len(found) - 1) * len(found['user0']['urls'])} "
          f"foreign tried, {foreign} served")


def test_gradio_uploads_are_their_owners_and_urls_are_never_fetched(users, tmp_path):
    _, found = users
    alice, bob = found["user1"]["http"], found["user2"]["http"]
    secret = tmp_path / "scan.png"
    _image(secret, 99)
    with open(secret, "rb") as f:
        reply = alice.post("gradio_api/upload", files={"files": ("scan.png", f, "image/png")})
    assert reply.status_code == 200
    path = reply.json()[0]
    assert alice.get(f"gradio_api/file={path}").content == secret.read_bytes()
    assert bob.get(f"gradio_api/file={path}").status_code == 404  # signed in, but not the uploader
    assert alice.get("gradio_api/file=http://127.0.0.1:9/secret").status_code == 403
    assert alice.get("gradio_api/file=/etc/passwd").status_code == 404


def test_a_replayed_session_hash_gets_nothing(users):
    url, found = users
    import httpx

    victim = found["user3"]["sessions"][1].session_hash
    stranger = found["user4"]["http"]
    assert stranger.get("gradio_api/queue/data", params={"session_hash": victim}).status_code == 403
    nobody = httpx.Client(base_url=url)
    assert nobody.get("gradio_api/queue/data", params={"session_hash": victim}).status_code == 401
    join = stranger.post("gradio_api/queue/join", json={"data": [], "fn_index": 0, "session_hash": victim,
                                                          "event_data": None, "trigger_id": None})
    assert join.status_code == 403


def test_wrong_passwords_are_refused(app):
    url, _ = app
    import httpx

    with pytest.raises(Exception):  # noqa: B017  gradio_client's error for a refused sign-in
        Client(url, auth=("user5", "not the password"), verbose=False)
    reply = httpx.Client(base_url=url).post("login", data={"username": "user5", "password": "wrong!"})
    assert reply.status_code >= 400 and "access-token" not in reply.headers.get("set-cookie", "")


def test_deleting_a_conversation_removes_its_files(users):
    _, found = users
    mine, other = found["user6"], found["user7"]
    conversation = mine["conversations"][0]
    chat_urls = [u for u in mine["urls"] if u.startswith("files/chat/")]
    assert chat_urls and all(mine["http"].get(u).status_code == 200 for u in chat_urls)
    with pytest.raises(Exception, match="no such conversation"):  # another user cannot delete it
        other["sessions"][0].predict(conversation["id"], api_name="/delete_conversation")
    assert mine["http"].get(chat_urls[0]).status_code == 200
    remaining = mine["sessions"][0].predict(conversation["id"], api_name="/delete_conversation")
    assert conversation["id"] not in [c["id"] for c in remaining]
    assert all(mine["http"].get(u).status_code == 404 for u in [*chat_urls, conversation["export"]["json"]])
