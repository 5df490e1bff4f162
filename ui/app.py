"""The Gradio app: ``create_app(pipeline, settings) -> gr.Blocks``. Handlers stay thin: they turn
Gradio values into requests, accumulate pipeline events, and show ``AssistantError`` messages."""

from __future__ import annotations

import html
from pathlib import Path

import gradio as gr

from assistant.accounts import sign_in_for
from assistant.errors import AssistantError, InputError
from assistant.pipeline import AnswerPipeline, Completed, Retrieved, Token
from assistant.settings import Settings
from assistant.types import ChatRequest, GenerationParams
from assistant.workspaces import Workspace, Workspaces
from retrieval.loaders import IMAGE_SUFFIXES, SUPPORTED
from ui import render
from ui.history import normalise_history, path_of
from ui.i18n import make_i18n

ASSETS = Path(__file__).parent / "assets"
EXAMPLES = ["What shapes and colours are in this picture?", "Locate the red circle and the blue square.",
            "这张图片里有什么？"]
LOADING = "⏳ The model is still loading; your answer will start when it is ready."


class AssistantUI:
    """Every handler finds the user's workspace from the request's sign-in (``request.username``), never
    from Gradio's session hash."""

    def __init__(self, workspaces: Workspaces, settings: Settings):
        self.workspaces = workspaces
        self.settings = settings
        self.thumbnails = settings.auth.mode == "local"  # served from the local knowledge base's folder only
        self.i18n = make_i18n()

    def _workspace(self, request: gr.Request | None) -> Workspace:
        return self.workspaces.of(getattr(request, "username", None))

    # -- handlers -------------------------------------------------------------------------------

    def chat(self, message, history, temperature, max_new_tokens, use_knowledge, k, strict,
             request: gr.Request = None):
        cards, data, sources = render.sources_html(()), [], ()
        try:
            pipeline = self._workspace(request).pipeline
            question = self._request(message, history, temperature, max_new_tokens, use_knowledge, k, strict)
            if not self._model_ready():
                yield LOADING, cards, data
            answer = ""
            for event in pipeline.answer(question):
                if isinstance(event, Retrieved):
                    sources = event.sources
                    cards = render.sources_html(sources, notice=event.notice, thumbnails=self.thumbnails)
                    data = render.sources_data(sources)
                elif isinstance(event, Token):
                    answer += event.text
                elif isinstance(event, Completed):
                    if sources:
                        cards = render.sources_html(sources, event.cited, thumbnails=self.thumbnails)
                        data = render.sources_data(sources, event.cited)
                    yield self._reply(event.text, len(sources), event.annotated), cards, data
                    return
                yield render.safe_markdown(answer, len(sources)) or "…", cards, data
        except AssistantError as exc:
            yield f"⚠️ {render.safe_markdown(str(exc))}", cards, data

    @staticmethod
    def _reply(text: str, n_sources: int, annotated: tuple[Path, ...]):
        answer = render.safe_markdown(text, n_sources) or "…"
        if not annotated:
            return answer
        return [answer, *(gr.Image(str(p), label="Located", show_label=True) for p in annotated)]

    def ingest(self, files, request: gr.Request = None, progress=gr.Progress()):
        paths = [p for p in map(path_of, files or []) if p]
        if not paths:
            return "Choose one or more files first.", *self._documents_outputs(request)
        try:
            reports = self._knowledge(request).ingest(
                paths, progress=lambda f, d: progress(f, desc=d), names=[Path(p).name for p in paths])
        except AssistantError as exc:
            return f"⚠️ {render.safe_markdown(str(exc))}", *self._documents_outputs(request)
        return render.ingest_summary(reports), *self._documents_outputs(request)

    def documents(self, request: gr.Request = None):
        return self._documents_outputs(request)

    def delete(self, doc_id, request: gr.Request = None):
        if not doc_id:
            return "Choose a document to delete.", *self._documents_outputs(request)
        try:
            info = self._knowledge(request).delete(doc_id)
        except AssistantError as exc:
            return f"⚠️ {render.safe_markdown(str(exc))}", *self._documents_outputs(request)
        return (f"Deleted {render.safe_markdown(info.source)} ({info.chunks} chunks).",
                *self._documents_outputs(request))

    def search(self, text, image, k, request: gr.Request = None):
        try:
            hits = self._knowledge(request).search(text or None, [image] if image else [], k=int(k))
        except AssistantError as exc:
            raise gr.Error(str(exc)) from exc
        return [h.to_dict() for h in hits]

    def status(self):
        statuses = self.workspaces.status()
        settled = all(s.state in ("ready", "failed") for s in statuses)
        return render.status_markdown(statuses), gr.Timer(active=not settled)

    # -- helpers --------------------------------------------------------------------------------

    def _request(self, message, history, temperature, max_new_tokens, use_knowledge, k=None,
                 strict=None) -> ChatRequest:
        message = message if isinstance(message, dict) else {"text": message or "", "files": []}
        images = [Path(p) for p in map(path_of, message.get("files") or []) if p]
        not_images = [p.name for p in images if p.suffix.lower() not in IMAGE_SUFFIXES]
        if not_images:
            raise InputError(f"Only images can be attached in the chat ({', '.join(not_images)}); add "
                             "documents in the Knowledge base tab.")
        params = GenerationParams(int(max_new_tokens), float(temperature))
        return ChatRequest(message.get("text") or "", tuple(images), tuple(normalise_history(history)),
                           params, bool(use_knowledge), int(k) if k else None,
                           None if strict is None else bool(strict))

    def _model_ready(self) -> bool:
        return self.workspaces.model.status().state == "ready"

    @staticmethod
    def account(request: gr.Request):
        """Who is signed in, with the way out; nothing when the app has no sign-in (local mode)."""
        name = getattr(request, "username", None)
        if not name:
            return ""
        return (f'<span class="account-name">{html.escape(name)}</span> · '
                '<a href="logout" target="_self">Sign out · 退出登录</a>')

    def _knowledge(self, request: gr.Request | None):
        knowledge = self._workspace(request).knowledge
        if knowledge is None:
            raise AssistantError("The knowledge base is turned off (ASSISTANT_RETRIEVAL__ENABLED=false).")
        return knowledge

    def _documents_outputs(self, request: gr.Request | None):
        try:
            docs = self._knowledge(request).documents()
        except AssistantError:
            docs = []
        choices = [(f"{d.source} ({d.kind}, {d.chunks} chunks)", d.doc_id) for d in docs]
        return render.documents_table(docs), gr.Dropdown(choices=choices, value=None)

    # -- layout ---------------------------------------------------------------------------------

    def build(self) -> gr.Blocks:
        t = self.i18n
        with gr.Blocks(title="Multimodal assistant", analytics_enabled=False) as app:
            with gr.Row():
                gr.Markdown(t("title"), elem_id="title")
                gr.Markdown(t("language_hint"), elem_id="language-hint")
            if self.settings.auth.mode != "local":  # who is signed in, and the way out
                account = gr.HTML(elem_id="account")
                app.load(self.account, None, account, api_visibility="private")
            status = gr.Markdown(render.status_markdown(self.workspaces.status()), elem_id="status")
            timer = gr.Timer(1.0)
            timer.tick(self.status, outputs=[status, timer], api_visibility="private")
            with gr.Tab(t("tab_chat"), elem_id="tab-chat"):
                self._chat_tab()
            with gr.Tab(t("tab_kb"), elem_id="tab-kb"):
                self._knowledge_tab(app)
        return app

    def _chat_tab(self) -> None:
        t, s = self.i18n, self.settings
        kb_on = s.retrieval.enabled
        cards = gr.HTML(render.sources_html(()), render=False, elem_id="sources")
        data = gr.JSON(visible=False, render=False)
        inputs = [
            gr.Slider(0.0, 1.5, value=s.model.temperature, step=0.05, label=t("temperature"), render=False),
            gr.Slider(16, 4096, value=s.model.max_new_tokens, step=16, label=t("max_tokens"), render=False),
            gr.Checkbox(value=kb_on, label=t("use_kb"), interactive=kb_on, render=False, elem_id="use-kb"),
            gr.Slider(1, 20, value=s.retrieval.k, step=1, label=t("num_sources"), render=False),
            gr.Checkbox(value=s.retrieval.strict, label=t("strict"), render=False, elem_id="strict"),
        ]
        shapes = str(ASSETS / "shapes.png")
        with gr.Row():
            with gr.Column(scale=3):
                chat = gr.ChatInterface(
                    self.chat, multimodal=True, api_name="chat",
                    chatbot=gr.Chatbot(height=520, label=t("chat_label"), elem_id="chatbot",
                                       sanitize_html=True),
                    textbox=gr.MultimodalTextbox(file_types=["image"], file_count="multiple",
                                                 placeholder=t("chat_placeholder"), elem_id="chat-input"),
                    additional_inputs=inputs,
                    additional_inputs_accordion=gr.Accordion(t("settings"), open=False, render=False,
                                                                 elem_id="chat-settings"),
                    additional_outputs=[cards, data],
                    fill_height=False,
                )
                # Examples fill the input box only: the Settings keep their values (and Gradio's example
                # table would show the settings' translated labels untranslated).
                gr.Examples([[{"text": text, "files": [shapes]}] for text in EXAMPLES],
                            inputs=[chat.textbox], label=t("examples"))
            with gr.Column(scale=2):
                gr.Markdown(t("sources"))
                cards.render()
                data.render()

    def _knowledge_tab(self, app: gr.Blocks) -> None:
        t = self.i18n
        files = gr.File(label=t("add_documents"), file_count="multiple", file_types=list(SUPPORTED),
                        elem_id="kb-files")
        add = gr.Button(t("add_button"), variant="primary", elem_id="kb-add")
        report = gr.Markdown(elem_id="kb-report")
        table = gr.Dataframe(headers=["📄", "🏷", "#", "ID"],
                             interactive=False, label=t("documents"), elem_id="kb-table")
        with gr.Row():
            choice = gr.Dropdown(label=t("document"), choices=[], elem_id="kb-choice")
            remove = gr.Button(t("delete"), variant="stop", elem_id="kb-delete")
        add.click(self.ingest, [files], [report, table, choice], api_name="ingest")
        remove.click(self.delete, [choice], [report, table, choice], api_name="delete")
        app.load(self.documents, None, [table, choice], api_name="documents")
        with gr.Accordion(t("search"), open=False):
            query = gr.Textbox(label=t("search_text"))
            image = gr.Image(label=t("search_image"), type="filepath")
            k = gr.Slider(1, 20, value=self.settings.retrieval.k, step=1, label=t("results"))
            results = gr.JSON(label=t("hits"))
            gr.Button(t("search")).click(self.search, [query, image, k], results, api_name="search")


def create_app(app: AnswerPipeline | Workspaces, settings: Settings) -> gr.Blocks:
    """The app over workspaces, or over one pipeline (one local user, no sign-in)."""
    workspaces = app if isinstance(app, Workspaces) else Workspaces.single(app)
    return AssistantUI(workspaces, settings).build()


def launch(app: gr.Blocks, settings: Settings, **kwargs):
    """Launch with the product's defaults: bound to the configured host, thumbnails servable, EN/ZH."""
    # Thumbnails of the local knowledge base only. Gradio's file route checks sign-in, not ownership, so
    # no user's folder is ever allowed: with sign-in thumbnails wait for an owner-checked route.
    files_dir = Path(settings.data_dir) / "files"
    options = dict(server_name=settings.ui.host, server_port=settings.ui.port,
                   allowed_paths=[str(files_dir.resolve()), str(ASSETS)], show_error=False,
                   i18n=make_i18n(), css=render.SOURCES_CSS, auth=sign_in_for(settings),
                   auth_message="Sign in with the name and password your administrator gave you. "
                                "请使用管理员提供的用户名和密码登录。")
    options.update(kwargs)
    return app.queue(default_concurrency_limit=1).launch(**options)
