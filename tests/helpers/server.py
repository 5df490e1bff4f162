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
