"""The README's API example, run as written against the real app (a scripted model and the hashing
embedder at the edges), from fresh clients: every named endpoint is in it, and every call in it works."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from gradio_client import Client

from assistant.knowledge import Knowledge
from assistant.pipeline import AnswerPipeline
from retrieval.store import KnowledgeBase
from tests.helpers.fakes import HashingEmbedder, ScriptedModel
from tests.helpers.images import write_image
from tests.helpers.server import app_settings, serve

pytestmark = pytest.mark.integration
README = Path(__file__).resolve().parents[2] / "README.md"


def readme_example() -> str:
    text = README.read_text(encoding="utf-8")
    return re.search(r"<!-- api-example -->\n```python\n(.*?)```", text, re.S).group(1)


def test_the_readme_api_example_runs_and_names_every_endpoint(tmp_path, monkeypatch):
    from assistant.workspaces import Workspaces
    from ui.app import create_app, launch

    settings = app_settings(tmp_path)
    kb = KnowledgeBase.open(settings.data_dir, HashingEmbedder())
    pipeline = AnswerPipeline(ScriptedModel("A red square [1]."), Knowledge.ready(kb), k=4)

    def open_base(kb_id):  # the knowledge bases the example creates: real ones, beside the first
        from assistant.loading import Background
        from assistant.workspaces import knowledge_dir

        return Knowledge(Background("knowledge base", lambda: KnowledgeBase.open(
            knowledge_dir(settings.data_dir, None, kb_id), HashingEmbedder()), close=KnowledgeBase.close))

    app = create_app(Workspaces.single(pipeline, settings.data_dir, open_base), settings)
    launch(app, settings, prevent_thread_lock=True, quiet=True)
    url = f"http://127.0.0.1:{settings.ui.port}/"
    try:
        monkeypatch.chdir(tmp_path)
        (tmp_path / "notes.md").write_text("# Ferry\n\nThe harbour ferry leaves every hour from pier 3.\n")
        write_image(tmp_path / "photo.jpg", (120, 90), "red")
        code = readme_example().replace("http://127.0.0.1:7860/", url)
        scope: dict = {}
        exec(compile(code, "README.md api-example", "exec"), scope)  # noqa: S102  our own README

        endpoints = set(Client(url, verbose=False).view_api(return_format="dict", print_info=False)
                        ["named_endpoints"])
        used = set(re.findall(r'api_name="(/[a-z_]+)"', code))
        assert endpoints == used, f"endpoints missing from the README: {endpoints - used}"
        # what the example did, checked afterwards
        assert "Deleted photo.jpg" in scope["report"]
        assert [d["name"] for d in scope["documents"]] == ["notes.md"]  # photo.jpg deleted by name
        assert scope["answer"].startswith("A red square") and scope["sources"]
        assert [b["title"] for b in scope["bases"]] == ["My documents"]  # Project Y deleted
        assert scope["conversations"] == []
        assert any(h["source"].endswith("photo.jpg") for h in scope["hits"])
    finally:
        app.close()
        pipeline.close()
