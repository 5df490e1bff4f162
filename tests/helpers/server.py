"""Launch the real Gradio app on 127.0.0.1 for a test, and stop it afterwards."""

from __future__ import annotations

import socket
from contextlib import contextmanager
from pathlib import Path

from assistant.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_settings(tmp_path: Path, **sections) -> Settings:
    port = free_port()
    ui = {"host": "127.0.0.1", "port": port, **sections.pop("ui", {})}
    sections["retrieval"] = {"text_embedder": "", "ocr": False, **sections.get("retrieval", {})}
    return Settings(data_dir=tmp_path / "data", ui=ui, **sections)


@contextmanager
def serve(pipeline, settings: Settings):
    from ui.app import create_app, launch

    app = create_app(pipeline, settings)
    launch(app, settings, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://{settings.ui.host}:{settings.ui.port}/"
    finally:
        app.close()
        pipeline.close()


def chat_args(text: str, files=(), *, temperature=0.0, max_new_tokens=16, use_knowledge=True, k=4,
              strict=False) -> tuple:
    """The /chat endpoint's arguments in order: message, then the Settings accordion's inputs."""
    from gradio_client import handle_file

    message = {"text": text, "files": [handle_file(str(f)) for f in files]}
    return message, temperature, max_new_tokens, use_knowledge, k, strict


def ask(client, text: str, files=(), **options):
    """Ask through /chat and return (answer, sources_html, sources_data)."""
    return ask_all(client, text, files, **options)[:3]


def ask_all(client, text: str, files=(), **options):
    """Ask through /chat and return all it answers: (answer, sources_html, sources_data, consistency)."""
    return client.predict(*chat_args(text, files, **options), api_name="/chat")


def scripted_workspaces(settings: Settings, model, *, is_user=None, admins=()):
    """Workspaces as sign-in builds them (knowledge bases per user and the shared library, real Chroma on
    disk, one shared pool of parse workers), with fakes at the edges: a scripted model and the hashing
    embedder. ``admins`` may change the shared library."""
    from assistant.composition import SharedParser, _store_options
    from assistant.knowledge import Knowledge
    from assistant.loading import Background
    from assistant.workspaces import Workspaces, knowledge_dir
    from retrieval.store import KnowledgeBase
    from retrieval.worker import ParsePool
    from tests.helpers.fakes import HashingEmbedder

    workers = SharedParser(ParsePool())

    def open_knowledge(user: str | None, kb: str = "default") -> Knowledge:
        def load():
            return KnowledgeBase.open(knowledge_dir(settings.data_dir, user, kb), HashingEmbedder(),
                                      parser=workers.borrowed(),
                                      **{**_store_options(settings, user, kb), "chroma_url": None})

        return Knowledge(Background("shared library" if kb == "shared" else "knowledge base", load,
                                    close=KnowledgeBase.close))

    return Workspaces(model, open_knowledge, signed_in=True, data_dir=settings.data_dir, shared=[workers],
                      is_user=is_user, k=4, temporary=settings.auth.mode == "anonymous",
                      library=open_knowledge(None, "shared"), is_admin=lambda user: user in admins).start()


def sign_in(url: str, name: str, password: str):
    """An HTTP client holding the sign-in cookie, as a browser would after the sign-in form."""
    import httpx

    client = httpx.Client(base_url=url, timeout=30, follow_redirects=False)
    reply = client.post("login", data={"username": name, "password": password})
    reply.raise_for_status()
    return client
