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
    return client.predict(*chat_args(text, files, **options), api_name="/chat")
