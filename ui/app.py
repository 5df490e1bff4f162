"""The Gradio app: ``create_app(pipeline, settings) -> gr.Blocks``. Handlers stay thin: they turn
Gradio values into requests, accumulate pipeline events, and show ``AssistantError`` messages."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from assistant.errors import AssistantError, InputError
from assistant.pipeline import AnswerPipeline, Completed, Retrieved, Token
from assistant.settings import Settings
from assistant.types import ChatRequest, GenerationParams
from retrieval.loaders import IMAGE_SUFFIXES, SUPPORTED
from ui import render
from ui.history import normalise_history, path_of

TITLE = "Multimodal assistant"


class AssistantUI:
    def __init__(self, pipeline: AnswerPipeline, settings: Settings):
        self.pipeline = pipeline
        self.settings = settings

    # -- handlers -------------------------------------------------------------------------------

    def chat(self, message, history, temperature, max_new_tokens, use_knowledge):
        sources_md, gallery = render.sources_markdown(()), []
        try:
            request = self._request(message, history, temperature, max_new_tokens, use_knowledge)
            if not self._model_ready():
                yield "⏳ The model is still loading; your answer will start when it is ready.", sources_md, gallery
            answer, sources = "", ()
            for event in self.pipeline.answer(request):
                if isinstance(event, Retrieved):
                    sources = event.sources
                    sources_md = render.sources_markdown(sources, notice=event.notice)
                    gallery = render.gallery_items(sources)
                elif isinstance(event, Token):
                    answer += event.text
                elif isinstance(event, Completed):
                    sources_md = render.sources_markdown(sources, event.cited) if sources else sources_md
                yield answer or "…", sources_md, gallery
        except AssistantError as exc:
            yield f"⚠️ {exc}", sources_md, gallery

    def ingest(self, files, progress=gr.Progress()):
        paths = [p for p in map(path_of, files or []) if p]
        if not paths:
            return "Choose one or more files first.", *self._documents_outputs()
        try:
            reports = self._knowledge().ingest(
                paths, progress=lambda f, d: progress(f, desc=d), names=[Path(p).name for p in paths])
        except AssistantError as exc:
            return f"⚠️ {exc}", *self._documents_outputs()
        return render.ingest_summary(reports), *self._documents_outputs()

    def documents(self):
        return self._documents_outputs()

    def delete(self, doc_id):
        if not doc_id:
            return "Choose a document to delete.", *self._documents_outputs()
        try:
            info = self._knowledge().delete(doc_id)
        except AssistantError as exc:
            return f"⚠️ {exc}", *self._documents_outputs()
        return f"Deleted {render.escape_markdown(info.source)} ({info.chunks} chunks).", *self._documents_outputs()

    def search(self, text, image, k):
        try:
            hits = self._knowledge().search(text or None, [image] if image else [], k=int(k))
        except AssistantError as exc:
            raise gr.Error(str(exc)) from exc
        return [h.to_dict() for h in hits]

    def status(self):
        statuses = self.pipeline.status()
        settled = all(s.state in ("ready", "failed") for s in statuses)
        return render.status_markdown(statuses), gr.Timer(active=not settled)

    # -- helpers --------------------------------------------------------------------------------

    def _request(self, message, history, temperature, max_new_tokens, use_knowledge) -> ChatRequest:
        message = message if isinstance(message, dict) else {"text": message or "", "files": []}
        images = [Path(p) for p in map(path_of, message.get("files") or []) if p]
        not_images = [p.name for p in images if p.suffix.lower() not in IMAGE_SUFFIXES]
        if not_images:
            raise InputError(f"Only images can be attached in the chat ({', '.join(not_images)}); add "
                             "documents in the Knowledge base tab.")
        params = GenerationParams(int(max_new_tokens), float(temperature))
        return ChatRequest(message.get("text") or "", tuple(images), tuple(normalise_history(history)),
                           params, bool(use_knowledge))

    def _model_ready(self) -> bool:
        status = getattr(self.pipeline.model, "status", None)  # a lazily loaded model reports its state
        return status is None or status().state == "ready"

    def _knowledge(self):
        if self.pipeline.knowledge is None:
            raise AssistantError("The knowledge base is turned off (ASSISTANT_RETRIEVAL__ENABLED=false).")
        return self.pipeline.knowledge

    def _documents_outputs(self):
        try:
            docs = self._knowledge().documents()
        except AssistantError:
            docs = []
        choices = [(f"{d.source} ({d.kind}, {d.chunks} chunks)", d.doc_id) for d in docs]
        return render.documents_table(docs), gr.Dropdown(choices=choices, value=None)

    # -- layout ---------------------------------------------------------------------------------

    def build(self) -> gr.Blocks:
        s = self.settings
        with gr.Blocks(title=TITLE, analytics_enabled=False) as app:
            gr.Markdown(f"## {TITLE}")
            status = gr.Markdown(render.status_markdown(self.pipeline.status()))
            timer = gr.Timer(1.0)
            timer.tick(self.status, outputs=[status, timer], api_visibility="private")
            with gr.Tab("Chat"):
                self._chat_tab(s)
            with gr.Tab("Knowledge base"):
                self._knowledge_tab(app)
        return app

    def _chat_tab(self, s: Settings) -> None:
        sources_md = gr.Markdown(render.sources_markdown(()), render=False, elem_id="sources")
        gallery = gr.Gallery(label="Source images", columns=3, height=220, render=False,
                             elem_id="source-gallery")
        with gr.Row():
            with gr.Column(scale=3):
                temperature = gr.Slider(0.0, 1.5, value=s.model.temperature, step=0.05, label="Temperature",
                                        render=False)
                max_tokens = gr.Slider(16, 4096, value=s.model.max_new_tokens, step=16, label="Max new tokens",
                                       render=False)
                use_kb = gr.Checkbox(value=s.retrieval.enabled, label="Use the knowledge base",
                                     interactive=s.retrieval.enabled, render=False)
                gr.ChatInterface(
                    self.chat, multimodal=True, api_name="chat",
                    chatbot=gr.Chatbot(height=520, label="Chat", elem_id="chatbot"),
                    textbox=gr.MultimodalTextbox(file_types=["image"], file_count="multiple",
                                                 placeholder="Ask about an image, or your documents…",
                                                 elem_id="chat-input"),
                    additional_inputs=[temperature, max_tokens, use_kb],
                    additional_inputs_accordion=gr.Accordion("Settings", open=False, render=False),
                    additional_outputs=[sources_md, gallery],
                    fill_height=False,
                )
            with gr.Column(scale=2):
                sources_md.render()
                gallery.render()

    def _knowledge_tab(self, app: gr.Blocks) -> None:
        files = gr.File(label=f"Add documents ({', '.join(SUPPORTED)})", file_count="multiple",
                        file_types=list(SUPPORTED), elem_id="kb-files")
        add = gr.Button("Add to knowledge base", variant="primary", elem_id="kb-add")
        report = gr.Markdown(elem_id="kb-report")
        table = gr.Dataframe(headers=["Document", "Kind", "Chunks", "Id"], interactive=False,
                             elem_id="kb-table")
        with gr.Row():
            choice = gr.Dropdown(label="Document", choices=[], elem_id="kb-choice")
            remove = gr.Button("Delete", variant="stop", elem_id="kb-delete")
        add.click(self.ingest, [files], [report, table, choice], api_name="ingest")
        remove.click(self.delete, [choice], [report, table, choice], api_name="delete")
        app.load(self.documents, None, [table, choice], api_name="documents")
        with gr.Accordion("Search", open=False):
            query = gr.Textbox(label="Text")
            image = gr.Image(label="Image", type="filepath")
            k = gr.Slider(1, 20, value=self.settings.retrieval.k, step=1, label="Results")
            results = gr.JSON(label="Hits")
            gr.Button("Search").click(self.search, [query, image, k], results, api_name="search")


def create_app(pipeline: AnswerPipeline, settings: Settings) -> gr.Blocks:
    return AssistantUI(pipeline, settings).build()


def launch(app: gr.Blocks, settings: Settings, **kwargs):
    """Launch with the product's defaults: bound to the configured host, thumbnails servable."""
    files_dir = Path(settings.data_dir) / "files"
    options = dict(server_name=settings.ui.host, server_port=settings.ui.port,
                   allowed_paths=[str(files_dir.resolve())], show_error=False)
    options.update(kwargs)
    return app.queue(default_concurrency_limit=1).launch(**options)
