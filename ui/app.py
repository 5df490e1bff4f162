"""The Gradio app: ``create_app(pipeline or workspaces, settings) -> gr.Blocks``, served by ``launch``.
Handlers stay thin: they find the user's workspace, turn Gradio values into requests, accumulate pipeline
events into the stored conversation, and show ``AssistantError`` messages."""

from __future__ import annotations

import contextlib
import html
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import gradio as gr
from starlette.middleware import Middleware

from assistant.accounts import sign_in_for
from assistant.conversations import Conversation, ConversationStore, Turn, source_record
from assistant.errors import AssistantError, ConfigurationError, InputError
from assistant.images import dicom_picture, is_dicom
from assistant.models.presets import public_name
from assistant.pipeline import AnswerPipeline, Completed, Retrieved, Token
from assistant.shelf import DEFAULT_TITLE, SHARED_TITLE
from assistant.settings import Settings
from assistant.types import ChatRequest, GenerationParams
from assistant.workspaces import Workspace, Workspaces
from retrieval.errors import named
from retrieval.loaders import DICOM_SUFFIXES, IMAGE_SUFFIXES, SUPPORTED
from ui import render
from ui.history import path_of
from ui.i18n import column_headers, explain, language, make_i18n, say, words
from ui.identity import Identity
from ui.server import Gate, Guard, file_routes, is_loopback, public_files

ASSETS = Path(__file__).parent / "assets"
EXAMPLES = ["What shapes and colours are in this picture?", "Locate the red circle and the blue square.",
            "这张图片里有什么？"]
LOADING = "loading"  # the notice while the model loads (a key: shown in the browser's language)


class AssistantUI:
    """Every handler finds the user's workspace through ``Identity`` (the sign-in), never through Gradio's
    session hash; conversations are read from and written to the workspace's store, and the chat shows
    them: nothing is read back out of the rendered chat."""

    def __init__(self, workspaces: Workspaces, settings: Settings, identity: Identity | None = None,
                 gate: Gate | None = None):
        self.workspaces = workspaces
        self.settings = settings
        self.identity = identity or Identity(settings)
        self.gate = gate  # told when an upload leaves Gradio's cache
        self.i18n = make_i18n()
        self._running: dict[str, Live] = {}  # conversation id -> the turn being answered in it
        self._dicom_parser = None  # a parse worker for DICOM files attached in the chat, started on the first

    def _workspace(self, request: gr.Request | None) -> Workspace:
        user = self.identity.user(request) if request is not None or not self.identity.signed_in else None
        if user is None:
            raise AssistantError("Sign in first." if self.settings.auth.mode != "huggingface"
                                 else "Sign in with Hugging Face first (the button at the top).")
        return self.workspaces.of(user if self.identity.signed_in else None)

    # -- chat -----------------------------------------------------------------------------------

    def send(self, message, conversation_id, temperature, max_new_tokens, use_knowledge, k, strict,
             request: gr.Request = None):
        """The chat box: yields the chat, the source cards and data, the conversation, the cleared box and
        the conversation list, its export links and title. An empty question does nothing."""
        text, paths = self._message(message, request)
        if not text.strip() and not paths:
            yield (gr.skip(),) * 8
            return
        live = None
        try:
            for live in self._converse(message, conversation_id, temperature, max_new_tokens, use_knowledge,
                                       k, strict, request):
                yield (live.messages(), live.cards, live.data, live.conversation_id, None,
                       self._list(request, live.conversation_id), Live.links(live.conversation_id, live.lang),
                       live.conversation.title)
        except AssistantError as exc:
            if live is not None and live.stored:  # the failed turn is in the conversation, with its notice
                yield (live.messages(), live.cards, live.data, live.conversation_id, None,
                       self._list(request, live.conversation_id), Live.links(live.conversation_id, live.lang),
                       live.conversation.title)
                return
            notice = explain(language(request), str(exc))
            notice = {"role": "assistant", "content": f"⚠️ {render.message_markdown(notice)}"}
            yield ([*self._messages(request, conversation_id), notice], gr.skip(), gr.skip(), gr.skip(),
                   gr.skip(), gr.skip(), gr.skip(), gr.skip())

    def chat(self, message, conversation_id, temperature, max_new_tokens, use_knowledge, k, strict,
             request: gr.Request = None):
        """The API's ``/chat``: the answer as it streams (markdown with citation links), the source cards
        and data, and once it is complete its consistency with its images (``Consistency.to_dict()``; None
        until then); a session's questions continue one conversation."""
        cards, data = render.sources_html(()), []
        try:
            for live in self._converse(message, conversation_id, temperature, max_new_tokens, use_knowledge,
                                       k, strict, request):
                if not (live.retrieved_yet or live.stored or live.notice == LOADING):
                    continue  # the chat shows the question at once; the API's first update has the sources
                cards, data = live.cards, live.data
                yield live.answer_markdown(), cards, data, live.conversation_id, live.consistency
        except AssistantError as exc:
            yield (f"⚠️ {render.message_markdown(explain(language(request), str(exc)))}", cards, data, gr.skip(),
                   None)

    def stopped(self, conversation_id, request: gr.Request = None):
        """Stop pressed: once the stopped turn is stored (the answer so far, with its notice), show it."""
        if not conversation_id:
            return gr.skip(), gr.skip(), gr.skip()
        live = self._running.get(conversation_id)
        if live is None:  # the cancelled answer was stored before this ran: the stored turn has its notice
            return self._messages(request, conversation_id), gr.skip(), gr.skip()
        live.finished.wait(10)
        return self._messages(request, conversation_id), live.cards, live.data

    def _converse(self, message, conversation_id, temperature, max_new_tokens, use_knowledge, k, strict,
                  request) -> Iterator[Live]:
        workspace = self._workspace(request)
        store = workspace.conversations
        text, paths = self._message(message, request)
        if not text.strip() and not paths:
            raise InputError("Type a question or add an image.")
        conversation = self._conversation(store, conversation_id)
        reports: list[str] = []
        try:
            refs = tuple(self._keep_attached(workspace, conversation.id, p, reports) for p in paths)
        finally:
            self._leave_cache(paths, request)  # a DICOM's original included: only its cleaned picture stays
        live = Live(conversation, text, refs, loading=not self._model_ready(), lang=language(request),
                    medical=self.settings.medical.enabled)
        live.reports = reports
        self._running[conversation.id] = live  # Stop finds it here
        yield live
        question = ChatRequest(
            text, tuple(store.image_path(conversation.id, r) for r in refs),
            tuple(store.chat_turns(conversation)), GenerationParams(int(max_new_tokens), float(temperature)),
            bool(use_knowledge), int(k) if k else None, None if strict is None else bool(strict))
        try:
            for event in workspace.pipeline.answer(question):
                if isinstance(event, Retrieved):
                    live.retrieved(event.sources, event.notice)
                elif isinstance(event, Token):
                    live.answer += event.text
                elif isinstance(event, Completed):
                    annotated = tuple(self._keep(store, conversation.id, p) for p in event.annotated)
                    live.completed(event, annotated)
                    break
                yield live
        except AssistantError as exc:  # a kept image is named by its hash: the user knows it by its name
            message = str(exc)
            for ref, path in zip(refs, paths):
                message = message.replace(ref, Path(path).name)
            live.notice = explain(live.lang, message)
            if message != str(exc):
                raise InputError(message) from exc
            raise
        finally:  # answered, failed or stopped: the turn is kept as far as it got
            try:
                live.store(store, self._model_name())
            finally:
                if self._running.get(conversation.id) is live:
                    del self._running[conversation.id]
                workspace.record("answer", outcome="ok" if live.done else "stopped or failed",
                                 sources=[s.hit.chunk.doc_id for s in live.sources], model=self._model_name(),
                                 revision=self._model_revision(), answer=live.answer, question=text)
        yield live

    def _keep_attached(self, workspace: Workspace, conversation_id: str, path: Path, reports: list[str]) -> str:
        """An attached image joins its conversation; a DICOM file joins it as its de-identified picture, the
        user told what was removed (at once, and in the turn's notice: ``reports``), the audit log, when it is
        kept, that it was done."""
        if not is_dicom(path):
            return workspace.conversations.keep_image(conversation_id, path)
        from assistant.composition import deid_key

        if self._dicom_parser is None:
            from retrieval.worker import ParseWorker

            self._dicom_parser = ParseWorker()
        picture, report = dicom_picture(path, self._dicom_parser, deid_key(self.settings), workspace.scratch)
        try:
            ref = workspace.conversations.keep_image(conversation_id, picture)
        finally:
            picture.unlink(missing_ok=True)
        workspace.record("deidentify", conversation=conversation_id, image=ref)
        reports.append(f"{Path(path).name}: {report}")
        gr.Info(reports[-1])
        return ref

    @staticmethod
    def _keep(store: ConversationStore, conversation_id: str, path: Path) -> str:
        """An annotated image moves from the scratch folder into its conversation."""
        try:
            return store.keep_image(conversation_id, path)
        finally:
            Path(path).unlink(missing_ok=True)

    @staticmethod
    def _conversation(store: ConversationStore, conversation_id: str | None) -> Conversation:
        if conversation_id:
            try:
                return store.get(conversation_id)
            except InputError:
                pass  # deleted meanwhile (in another tab): a new one begins
        return store.create()

    def _message(self, message, request=None) -> tuple[str, list[Path]]:
        message = message if isinstance(message, dict) else {"text": message or "", "files": []}
        images = [Path(p) for p in map(path_of, message.get("files") or []) if p]
        not_images = [p.name for p in images if p.suffix.lower() not in IMAGE_SUFFIXES and not is_dicom(p)]
        if not_images:  # refused: none of the uploads stays in Gradio's cache (a DICOM's original least of all)
            self._leave_cache(images, request)
            raise InputError(named(", ".join(not_images), "only images can be attached in the chat; add "
                                                         "documents in the Knowledge base tab"))
        return message.get("text") or "", images

    def _leave_cache(self, paths, request) -> None:
        """Uploads the app has taken into the workspace leave Gradio's shared cache."""
        cache = Path(gradio_cache()).resolve()
        user = self.identity.user(request) if request is not None else None
        for path in map(Path, paths):
            resolved = path.resolve()
            if not resolved.is_relative_to(cache) or resolved == cache:
                continue  # not an upload (a test passing a path of its own): not ours to remove
            resolved.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                resolved.parent.rmdir()  # Gradio's folder for that upload, now empty
            if self.gate is not None and user:
                self.gate.forget_upload(user, str(path))

    def _model_revision(self) -> str | None:
        """The model's revision (the hub commit of its weights) when its loader knows it."""
        return getattr(self.workspaces.model, "revision", None)

    def _model_name(self) -> str | None:
        """The model that answers, as users may see it (stored with each turn, so in exports too)."""
        name = getattr(self.workspaces.model, "name", None)
        return public_name(name) if name else None

    def _model_ready(self) -> bool:
        return self.workspaces.model.status().state == "ready"

    # -- conversations --------------------------------------------------------------------------

    def open_page(self, request: gr.Request = None):
        """The page opens on a new conversation, with the list of earlier ones to resume."""
        return self._list(request, None), None, [], "", Live.links(None, language(request))

    def conversation_list(self, request: gr.Request = None) -> list[dict]:
        """The API's ``/conversations``: the user's conversations, newest first, with their export URLs."""
        try:
            infos = self._workspace(request).conversations.list()
        except AssistantError as exc:
            raise gr.Error(explain(language(request), str(exc))) from exc
        return [{"id": i.id, "title": i.title, "turns": i.turns, "updated": i.updated,
                 "export": {k: f"files/export/{i.id}.{k}" for k in ("md", "json", "zip")}} for i in infos]

    def forget_conversation(self, conversation_id: str, request: gr.Request = None) -> list[dict]:
        """The API's ``/delete_conversation``: delete one by id (its images too); the list that remains."""
        try:
            self._workspace(request).conversations.delete(conversation_id)
        except AssistantError as exc:
            raise gr.Error(explain(language(request), str(exc))) from exc
        return self.conversation_list(request)

    def resume(self, conversation_id, request: gr.Request = None):
        """A conversation reopened: its turns, and the last answer's source cards as they were shown."""
        try:
            workspace = self._workspace(request)
            conversation = workspace.conversations.get(conversation_id)
        except AssistantError as exc:
            raise gr.Error(explain(language(request), str(exc))) from exc
        last = conversation.turns[-1] if conversation.turns else None
        cards, data = render.sources_html(()), []
        if last is not None and last.sources:
            cards = render.sources_html(render.stored_sources(last.sources, workspace.thumbnail), last.cited)
            data = [{**r, "cited": r["number"] in last.cited} for r in last.sources]
        return (conversation.id, _messages(conversation, language(request), self.settings.medical.enabled),
                conversation.title,
                Live.links(conversation.id, language(request)), cards, data)

    def new(self, request: gr.Request = None):
        return None, [], "", self._list(request, None), Live.links(None, language(request)), render.sources_html(()), []

    def rename(self, conversation_id, title, request: gr.Request = None):
        if not conversation_id:
            raise gr.Error(explain(language(request), "Ask something first: a new conversation has nothing to rename yet."))
        try:
            info = self._workspace(request).conversations.rename(conversation_id, title or "")
        except AssistantError as exc:
            raise gr.Error(explain(language(request), str(exc))) from exc
        return info.title, self._list(request, conversation_id)

    def delete_current(self, conversation_id, request: gr.Request = None):
        if conversation_id:
            try:
                self._workspace(request).conversations.delete(conversation_id)
            except AssistantError as exc:
                raise gr.Error(explain(language(request), str(exc))) from exc
        return self.new(request)

    def _list(self, request, selected: str | None):
        try:
            infos = self._workspace(request).conversations.list()
        except AssistantError:
            infos = []
        choices = [(f"{i.title} · {i.turns}", i.id) for i in infos]
        return gr.Dropdown(choices=choices, value=selected if any(c[1] == selected for c in choices) else None)

    def _messages(self, request, conversation_id) -> list[dict]:
        try:
            return _messages(self._workspace(request).conversations.get(conversation_id), language(request),
                             self.settings.medical.enabled)
        except AssistantError:
            return []

    def _ingested(self, files, kb, request, progress) -> str:
        """Ingest uploads into one of the user's knowledge bases; the report to show."""
        paths = [p for p in map(path_of, files or []) if p]
        if not paths:
            return say(language(request), "choose_files")
        try:
            reports = self._knowledge(request, kb, write=True).ingest(
                paths, progress=lambda f, d: progress(f, desc=d), names=[Path(p).name for p in paths])
        except AssistantError as exc:
            self._workspace(request).record("ingest", outcome="refused", count=len(paths))
            return f"⚠️ {render.message_markdown(explain(language(request), str(exc)))}"
        finally:
            self._leave_cache(paths, request)  # the knowledge base keeps what it needs, never the upload
        self._workspace(request).record("ingest", documents=[r.doc_id for r in reports if r.ok and r.doc_id],
                                        count=len(paths), outcome="ok" if all(r.ok for r in reports) else
                                        f"{sum(not r.ok for r in reports)} failed")
        lang = language(request)
        return render.ingest_summary(reports, words(lang), lambda problem: explain(lang, problem))

    def _deleted(self, doc, kb, request) -> str:
        if not doc:
            return say(language(request), "choose_document")
        try:
            info = self._knowledge(request, kb, write=True).delete(doc)
        except AssistantError as exc:
            self._workspace(request).record("delete", outcome="refused")
            return f"⚠️ {render.message_markdown(explain(language(request), str(exc)))}"
        self._workspace(request).record("delete", documents=[info.doc_id])
        return say(language(request), "deleted_document", name=render.safe_markdown(Path(info.source).name),
                   chunks=info.chunks)

    def _documents(self, request, kb) -> list:
        try:
            return self._knowledge(request, kb).documents()
        except AssistantError:
            return []

    # the API: plain values in and out

    def ingest(self, files, knowledge_base=None, request: gr.Request = None, progress=gr.Progress()):
        """The API's ``/ingest``: files into a knowledge base (name or id; none: the first one); the report
        and the documents it now holds."""
        report = self._ingested(files, knowledge_base, request, progress)
        return report, self.documents(knowledge_base, request)

    def documents(self, knowledge_base=None, request: gr.Request = None) -> list[dict]:
        """The API's ``/documents``: id, name, kind, passages, pages, bytes and date added of each."""
        return [render.document_data(d) for d in self._documents(request, knowledge_base)]

    def delete(self, document, knowledge_base=None, request: gr.Request = None):
        """The API's ``/delete``: a document by id, or by file name when one document has it."""
        report = self._deleted((document or "").strip(), knowledge_base, request)
        return report, self.documents(knowledge_base, request)

    def search(self, text, image, k, knowledge_base=None, request: gr.Request = None):
        return [render.hit_data(h) for h in self._hits(text, image, k, knowledge_base, request)]

    def _hits(self, text, image, k, kb, request):
        try:
            hits = self._knowledge(request, kb).search(text or None, [image] if image else [], k=int(k or 4))
        except AssistantError as exc:
            raise gr.Error(explain(language(request), str(exc))) from exc
        finally:
            self._leave_cache([image] if image else [], request)
        self._workspace(request).record("search", sources=[h.chunk.doc_id for h in hits], question=text or None)
        return hits

    # the Knowledge tab

    def ingest_in_tab(self, files, kb, wanted, request: gr.Request = None, progress=gr.Progress()):
        """Add the chosen files; the upload box empties (the files have left Gradio's cache)."""
        report = self._ingested(files, kb, request, progress)
        return report, *self.documents_view(kb, wanted, request), None

    def documents_view(self, kb, wanted, request: gr.Request = None):
        """The documents table, filtered by name, and the ids of its rows."""
        docs = self._documents(request, kb)
        part = (wanted or "").strip().lower()
        if part:
            docs = [d for d in docs if part in Path(d.source).name.lower()]
        lang = language(request)
        return (gr.Dataframe(value=render.document_rows(docs, words(lang)), headers=column_headers(lang)),
                [d.doc_id for d in docs])

    def ask_delete_document(self, shown, kb, evt: gr.SelectData, request: gr.Request = None):
        """A row clicked: ask before deleting its document."""
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        if not isinstance(row, int) or not 0 <= row < len(shown or []):
            return "", gr.Row(visible=False), None
        doc_id = shown[row]
        info = next((d for d in self._documents(request, kb) if d.doc_id == doc_id), None)
        if info is None:
            return "", gr.Row(visible=False), None
        return (say(language(request), "ask_delete_document", name=render.safe_markdown(Path(info.source).name)),
                gr.Row(visible=True), doc_id)

    def delete_in_tab(self, doc_id, kb, wanted, request: gr.Request = None):
        report = self._deleted(doc_id, kb, request)
        return report, *self.documents_view(kb, wanted, request), gr.Row(visible=False), None

    def search_in_tab(self, text, image, k, kb, request: gr.Request = None) -> str:
        if not (text or "").strip() and not image:
            return f'<div class="sources-empty">{say(language(request), "search_empty")}</div>'
        return render.hits_html(self._hits(text, image, k, kb, request), words(language(request)))

    # -- knowledge bases ------------------------------------------------------------------------

    def knowledge_bases(self, request: gr.Request = None) -> list[dict]:
        """The API's ``/knowledge_bases``: this user's, then the shared library (id, title, whether the chat
        searches it, whether this user may change it)."""
        try:
            return [b.to_dict() for b in self._shelf(request).bases()]
        except AssistantError as exc:
            raise gr.Error(explain(language(request), str(exc))) from exc

    def create_base(self, title, request: gr.Request = None) -> list[dict]:
        """The API's ``/create_knowledge_base``: a new, empty one; the list with it."""
        try:
            self._shelf(request).create(title or "")
        except AssistantError as exc:
            raise gr.Error(explain(language(request), str(exc))) from exc
        return self.knowledge_bases(request)

    def rename_base(self, knowledge_base, title, request: gr.Request = None) -> list[dict]:
        try:
            shelf = self._shelf(request)
            shelf.rename(shelf.resolve(knowledge_base), title or "")
        except AssistantError as exc:
            raise gr.Error(explain(language(request), str(exc))) from exc
        return self.knowledge_bases(request)

    def delete_base(self, knowledge_base, request: gr.Request = None) -> list[dict]:
        """The API's ``/delete_knowledge_base``: it and every byte of its documents go."""
        try:
            shelf = self._shelf(request)
            shelf.delete(shelf.resolve(knowledge_base))
        except AssistantError as exc:
            raise gr.Error(explain(language(request), str(exc))) from exc
        return self.knowledge_bases(request)

    def use_bases(self, knowledge_bases, request: gr.Request = None) -> list[dict]:
        """The API's ``/use_knowledge_bases``: which ones the chat searches (ids or names)."""
        try:
            shelf = self._shelf(request)
            shelf.choose([shelf.resolve(i) for i in knowledge_bases or []])
        except AssistantError as exc:
            raise gr.Error(explain(language(request), str(exc))) from exc
        return self.knowledge_bases(request)

    def bases_view(self, kb=None, request: gr.Request = None):
        """The Knowledge tab's chooser and the chat's "Search in" boxes, from the user's list."""
        try:
            bases = self._shelf(request).bases()
        except AssistantError:
            return gr.Dropdown(choices=[], value=None), gr.CheckboxGroup(choices=[], value=[])
        lang = language(request)
        choices = [(say(lang, b.title) if b.title in (DEFAULT_TITLE, SHARED_TITLE) else b.title, b.id) for b in bases]
        current = kb if any(b.id == kb for b in bases) else bases[0].id
        return (gr.Dropdown(choices=choices, value=current),
                gr.CheckboxGroup(choices=choices, value=[b.id for b in bases if b.used]))

    def create_in_tab(self, title, request: gr.Request = None):
        try:
            base = self._shelf(request).create(title or "")
        except AssistantError as exc:
            return f"⚠️ {render.message_markdown(explain(language(request), str(exc)))}", gr.skip(), gr.skip(), gr.skip()
        return (say(language(request), "created", title=render.safe_markdown(base.title)), "", *self.bases_view(base.id, request))

    def rename_in_tab(self, kb, title, request: gr.Request = None):
        try:
            shelf = self._shelf(request)
            base = shelf.rename(shelf.resolve(kb), title or "")
        except AssistantError as exc:
            return f"⚠️ {render.message_markdown(explain(language(request), str(exc)))}", gr.skip(), gr.skip(), gr.skip()
        return (say(language(request), "renamed", title=render.safe_markdown(base.title)), "", *self.bases_view(base.id, request))

    def ask_delete_base(self, kb, request: gr.Request = None):
        """First step of deleting a knowledge base: say what will go, and show the confirmation."""
        try:
            shelf = self._shelf(request)
            kb_id = shelf.resolve(kb)
            base = next(b for b in shelf.bases() if b.id == kb_id)
            if kb_id in ("default", "shared"):
                shelf.delete(kb_id)  # refuses, saying why
            count = len(shelf.knowledge(kb_id).documents())
        except AssistantError as exc:
            return f"⚠️ {render.message_markdown(explain(language(request), str(exc)))}", gr.Row(visible=False)
        lang = language(request)
        what = say(lang, "its_documents", count=count) if count != 1 else say(lang, "its_document")
        return (say(lang, "ask_delete_base", title=render.safe_markdown(base.title), what=what),
                gr.Row(visible=True))

    def base_note(self, kb, request: gr.Request = None) -> str:
        """What the chosen knowledge base is, when that matters: the shared library, read-only to most."""
        try:
            shelf = self._shelf(request)
            base = next(b for b in shelf.bases() if b.id == shelf.resolve(kb))
        except (AssistantError, StopIteration):
            return ""
        if base.shared and not base.writable:
            return say(language(request), "shared_readonly")
        return say(language(request), "shared_admin") if base.shared else ""

    def delete_in_tab_base(self, kb, request: gr.Request = None):
        try:
            shelf = self._shelf(request)
            title = shelf.delete(shelf.resolve(kb))
        except AssistantError as exc:
            return f"⚠️ {render.message_markdown(explain(language(request), str(exc)))}", gr.Row(visible=False), gr.skip(), gr.skip()
        return (say(language(request), "deleted_base", title=render.safe_markdown(title)), gr.Row(visible=False),
                *self.bases_view(None, request))

    def choose_in_chat(self, ids, request: gr.Request = None) -> None:
        try:
            self._shelf(request).choose(ids or [])
        except AssistantError as exc:
            raise gr.Error(explain(language(request), str(exc))) from exc

    def status(self, request: gr.Request = None):
        statuses = self.workspaces.status()
        settled = all(s.state in ("ready", "failed") for s in statuses)
        lang = language(request)
        text = render.status_markdown(statuses, words(lang), lambda message: explain(lang, message))
        if self._model_ready():  # which model answers, under which licence (and terms of its own)
            text += "  \n" + render.model_note(getattr(self.workspaces.model, "name", "") or "", words(lang))
        return text, gr.Timer(active=not settled)

    def account(self, request: gr.Request):
        """Who is signed in, with the way out; nothing in local mode."""
        mode = self.settings.auth.mode
        user = self.identity.user(request)
        if mode == "anonymous":
            return html.escape(say(language(request), "guest", minutes=f"{self.settings.auth.idle_minutes:.0f}"))
        if not user or mode in ("local", "huggingface"):
            return ""  # Hugging Face: its own button shows the name and signs out
        way_out = f'<a href="logout" target="_self">{say(language(request), "sign_out")}</a>' if mode == "password" else ""
        return f'<span class="account-name">{html.escape(user)}</span>' + (f" · {way_out}" if way_out else "")

    # -- helpers --------------------------------------------------------------------------------

    def _shelf(self, request: gr.Request | None):
        shelf = self._workspace(request).shelf
        if shelf is None:
            raise AssistantError("The knowledge base is turned off (ASSISTANT_RETRIEVAL__ENABLED=false).")
        return shelf

    def _knowledge(self, request: gr.Request | None, kb: str | None = None, *, write: bool = False):
        """One of the user's knowledge bases, by id or name (none: the first); writing the shared library
        needs an administrator."""
        shelf = self._shelf(request)
        return shelf.knowledge(shelf.resolve(kb), write=write)

    # -- layout ---------------------------------------------------------------------------------

    def build(self) -> gr.Blocks:
        t = self.i18n
        with gr.Blocks(title="Multimodal assistant", analytics_enabled=False,
                       # medical mode: an upload never sent (attached, then removed) leaves the cache within 2 h
                       delete_cache=(3600, 3600) if self.settings.medical.enabled else None) as app:
            with gr.Row():
                gr.Markdown(t("title"), elem_id="title")
                gr.Markdown(t("language_hint"), elem_id="language-hint")
            if self.settings.medical.enabled:  # medical pilot mode says so on every page, in the reader's language
                gr.Markdown(t("medical_banner"), elem_id="medical-banner")
            if self.settings.auth.mode != "local":  # who is signed in, and the way out
                with gr.Row():
                    if self.settings.auth.mode == "huggingface":
                        gr.LoginButton(elem_id="hf-login")
                    account = gr.HTML(elem_id="account")
                app.load(self.account, None, account, api_visibility="private")
            status = gr.Markdown(render.status_markdown(self.workspaces.status()), elem_id="status")
            timer = gr.Timer(1.0)
            timer.tick(self.status, outputs=[status, timer], api_visibility="private")
            app.load(self.status, outputs=[status, timer], api_visibility="private")  # in the reader's language
            with gr.Tab(t("tab_chat"), elem_id="tab-chat"):
                self._chat_tab(app)
            with gr.Tab(t("tab_kb"), elem_id="tab-kb"):
                self._knowledge_tab(app)
        return app

    def _chat_tab(self, app: gr.Blocks) -> None:
        t, s = self.i18n, self.settings
        kb_on = s.retrieval.enabled
        conversation = gr.State(None)  # the id only: the conversation itself is in the user's workspace
        with gr.Row(elem_id="chat-row"):
            with gr.Column(scale=1, min_width=200, elem_id="conv-column"):
                chooser = gr.Dropdown(label=t("conversations"), choices=[], elem_id="conv-list")
                new = gr.Button(t("new_conversation"), elem_id="conv-new", size="sm")
                title = gr.Textbox(label=t("conversation_title"), elem_id="conv-title", max_lines=1)
                rename = gr.Button(t("rename"), elem_id="conv-rename", size="sm")
                remove = gr.Button(t("delete_conversation"), variant="stop", elem_id="conv-delete", size="sm")
                exports = gr.HTML(Live.links(None), elem_id="conv-export")
            with gr.Column(scale=3, elem_id="chat-main"):
                with gr.Column(elem_id="chatbot-box"):
                    chatbot = gr.Chatbot(height=520, label=t("chat_label"), elem_id="chatbot", sanitize_html=True,
                                         buttons=["copy", "copy_all"])  # no "share": it would publish the chat
                    box = gr.MultimodalTextbox(file_types=["image", *sorted(DICOM_SUFFIXES)], file_count="multiple", show_label=False,
                                               placeholder=t("chat_placeholder"), elem_id="chat-input",
                                               submit_btn=True, stop_btn=False)
                with gr.Column(elem_id="chat-extras"):
                    with gr.Accordion(t("settings"), open=False, elem_id="chat-settings"):
                        options = [
                            gr.Slider(0.0, 1.5, value=s.model.temperature, step=0.05, label=t("temperature")),
                            gr.Slider(16, 4096, value=s.model.max_new_tokens, step=16, label=t("max_tokens")),
                            gr.Checkbox(value=kb_on, label=t("use_kb"), interactive=kb_on, elem_id="use-kb"),
                            gr.Slider(1, 20, value=s.retrieval.k, step=1, label=t("num_sources")),
                            gr.Checkbox(value=s.retrieval.strict, label=t("strict"), elem_id="strict"),
                        ]
                        # which knowledge bases the chat searches: the user's choice, kept in their workspace
                        self.chat_bases = gr.CheckboxGroup(label=t("kb_used"), choices=[], elem_id="kb-used",
                                                           visible=kb_on)
                    # Examples fill the input box only: the Settings keep their values.
                    shapes = str(ASSETS / "shapes.png")
                    gr.Examples([[{"text": text, "files": [shapes]}] for text in EXAMPLES], inputs=[box],
                                label=t("examples"))
            with gr.Column(scale=2, elem_id="sources-column"):
                with gr.Accordion(t("sources"), open=True, elem_id="sources-accordion"):
                    cards = gr.HTML(render.sources_html(()), elem_id="sources", label="sources_html",
                                    show_label=False)
                data = gr.JSON(visible=False, label="sources")
        # While an answer streams the send button becomes Stop, and back when it ends (as gr.ChatInterface).
        # (built when the event runs, as an update: built here, inside the Blocks, they would be rendered)
        def generating():
            return gr.MultimodalTextbox(submit_btn=False, stop_btn=True)

        def idle():
            return gr.MultimodalTextbox(submit_btn=True, stop_btn=False)

        box.submit(generating, None, [box], queue=False, api_visibility="private")
        sending = box.submit(self.send, [box, conversation, *options],
                             [chatbot, cards, data, conversation, box, chooser, exports, title],
                             api_visibility="private", show_progress_on=[chatbot])
        sending.then(idle, None, [box], queue=False, api_visibility="private")
        box.stop(None, None, None, cancels=[sending]).then(  # then the stopped turn, with its notice
            self.stopped, [conversation], [chatbot, cards, data], api_visibility="private").then(
            idle, None, [box], queue=False, api_visibility="private")
        # The API's /chat: the same conversation flow, answering with text rather than the whole chat.
        api_answer = gr.Markdown(visible=False, label="answer")
        api_consistency = gr.JSON(visible=False, label="consistency")
        trigger = gr.Button(visible=False)
        trigger.click(self.chat, [box, conversation, *options],
                      [api_answer, cards, data, conversation, api_consistency], api_name="chat")
        chooser.input(self.resume, [chooser], [conversation, chatbot, title, exports, cards, data],
                      api_visibility="private")
        new.click(self.new, None, [conversation, chatbot, title, chooser, exports, cards, data],
                  api_visibility="private")
        chatbot.clear(self.new, None, [conversation, chatbot, title, chooser, exports, cards, data],
                      api_visibility="private")  # the chat's bin starts a new conversation; the old one stays
        rename.click(self.rename, [conversation, title], [title, chooser], api_visibility="private")
        remove.click(self.delete_current, [conversation],
                     [conversation, chatbot, title, chooser, exports, cards, data], api_visibility="private")
        app.load(self.open_page, None, [chooser, conversation, chatbot, title, exports],
                 api_visibility="private")
        listing, which = gr.JSON(visible=False, label="conversations"), gr.Textbox(visible=False, label="id")
        gr.Button(visible=False).click(self.conversation_list, None, listing, api_name="conversations")
        gr.Button(visible=False).click(self.forget_conversation, which, listing, api_name="delete_conversation")

    def _knowledge_tab(self, app: gr.Blocks) -> None:
        t = self.i18n
        with gr.Row():
            base = gr.Dropdown(label=t("knowledge_base"), choices=[("My documents", "default")], value="default",
                               allow_custom_value=True, elem_id="kb-select", scale=3)
            name = gr.Textbox(label=t("kb_name"), max_lines=1, elem_id="kb-name", scale=3)
            with gr.Column(scale=1, min_width=180):
                create = gr.Button(t("kb_create"), elem_id="kb-create", size="sm")
                rename = gr.Button(t("kb_rename"), elem_id="kb-rename", size="sm")
                drop = gr.Button(t("kb_delete"), variant="stop", elem_id="kb-remove", size="sm")
        base_report = gr.Markdown(elem_id="kb-base-report")
        with gr.Row(visible=False, elem_id="kb-remove-confirmation") as confirmation:
            confirm = gr.Button(t("kb_delete_confirm"), variant="stop", elem_id="kb-remove-confirm", size="sm")
            cancel = gr.Button(t("cancel"), elem_id="kb-remove-cancel", size="sm")
        files = gr.File(label=t("add_documents"), file_count="multiple", file_types=list(SUPPORTED),
                        elem_id="kb-files")
        add = gr.Button(t("add_button"), variant="primary", elem_id="kb-add")
        report = gr.Markdown(elem_id="kb-report")
        with gr.Accordion(t("search"), open=True, elem_id="kb-search"):
            with gr.Row():
                query = gr.Textbox(label=t("search_text"), placeholder=t("search_placeholder"), max_lines=1,
                                   elem_id="kb-query", scale=4, submit_btn=False)
                image = gr.Image(label=t("search_image"), type="filepath", height=120, elem_id="kb-query-image",
                                 scale=1, min_width=140)
                with gr.Column(scale=1, min_width=140):
                    k = gr.Slider(1, 20, value=self.settings.retrieval.k, step=1, label=t("results"))
                    find = gr.Button(t("search"), variant="primary", elem_id="kb-search-button", size="sm")
            results = gr.HTML(elem_id="kb-hits")
        wanted = gr.Textbox(label=t("filter"), placeholder=t("filter_placeholder"), max_lines=1,
                            elem_id="kb-filter")
        table = gr.Dataframe(headers=column_headers("en"), interactive=False, label=t("documents"),
                             elem_id="kb-table", wrap=True)
        shown = gr.State([])  # the ids of the rows shown, in order: a clicked row names its document
        pending = gr.State(None)
        with gr.Row(visible=False, elem_id="kb-delete-confirmation") as doc_confirmation:
            doc_question = gr.Markdown(elem_id="kb-delete-question")
            doc_confirm = gr.Button(t("delete"), variant="stop", elem_id="kb-delete-confirm", size="sm")
            doc_cancel = gr.Button(t("cancel"), elem_id="kb-delete-cancel", size="sm")
        listing = [table, shown]
        add.click(self.ingest_in_tab, [files, base, wanted], [report, *listing, files],
                  api_visibility="private", show_progress_on=[report])
        app.load(self.documents_view, [base, wanted], listing, api_visibility="private")
        wanted.change(self.documents_view, [base, wanted], listing, api_visibility="private",
                      show_progress="hidden")
        table.select(self.ask_delete_document, [shown, base], [doc_question, doc_confirmation, pending],
                     api_visibility="private")
        doc_cancel.click(lambda: (gr.Row(visible=False), None), None, [doc_confirmation, pending],
                         api_visibility="private")
        doc_confirm.click(self.delete_in_tab, [pending, base, wanted], [report, *listing, doc_confirmation, pending],
                          api_visibility="private")
        base.input(self.documents_view, [base, wanted], listing, api_visibility="private").then(
            self.base_note, [base], base_report, api_visibility="private")
        chat_bases = self.chat_bases
        app.load(self.bases_view, [base], [base, chat_bases], api_visibility="private")
        create.click(self.create_in_tab, [name], [base_report, name, base, chat_bases],
                     api_visibility="private").then(self.documents_view, [base, wanted], listing,
                                                    api_visibility="private")
        rename.click(self.rename_in_tab, [base, name], [base_report, name, base, chat_bases],
                     api_visibility="private")
        drop.click(self.ask_delete_base, [base], [base_report, confirmation], api_visibility="private")
        cancel.click(lambda: ("", gr.Row(visible=False)), None, [base_report, confirmation],
                     api_visibility="private")
        confirm.click(self.delete_in_tab_base, [base], [base_report, confirmation, base, chat_bases],
                      api_visibility="private").then(self.documents_view, [base, wanted], listing,
                                                     api_visibility="private")
        chat_bases.input(self.choose_in_chat, [chat_bases], None, api_visibility="private")
        for trigger in (query.submit, find.click):
            trigger(self.search_in_tab, [query, image, k, base], results, api_visibility="private")

        # The API: the same actions with plain values (a knowledge base by name or id, a document by id or
        # file name), usable from a fresh client.
        api_files = gr.File(file_count="multiple", visible=False, label="files")
        api_kb = gr.Textbox(visible=False, label="knowledge_base", value="")
        api_doc = gr.Textbox(visible=False, label="document")
        api_report = gr.Markdown(visible=False, label="report")
        api_docs = gr.JSON(visible=False, label="documents")
        api_hits = gr.JSON(visible=False, label="hits")
        api_text, api_image = gr.Textbox(visible=False, label="text"), gr.Image(visible=False, type="filepath",
                                                                             label="image")
        api_k = gr.Number(visible=False, value=self.settings.retrieval.k, label="k", precision=0)
        gr.Button(visible=False).click(self.ingest, [api_files, api_kb], [api_report, api_docs], api_name="ingest")
        gr.Button(visible=False).click(self.documents, [api_kb], api_docs, api_name="documents")
        gr.Button(visible=False).click(self.delete, [api_doc, api_kb], [api_report, api_docs], api_name="delete")
        gr.Button(visible=False).click(self.search, [api_text, api_image, api_k, api_kb], api_hits,
                                       api_name="search")
        bases, which, title, ids = (gr.JSON(visible=False, label="knowledge_bases"),
                                    gr.Textbox(visible=False, label="knowledge_base"),
                                    gr.Textbox(visible=False, label="title"), gr.JSON(visible=False, label="ids"))
        gr.Button(visible=False).click(self.knowledge_bases, None, bases, api_name="knowledge_bases")
        gr.Button(visible=False).click(self.create_base, title, bases, api_name="create_knowledge_base")
        gr.Button(visible=False).click(self.rename_base, [which, title], bases, api_name="rename_knowledge_base")
        gr.Button(visible=False).click(self.delete_base, which, bases, api_name="delete_knowledge_base")
        gr.Button(visible=False).click(self.use_bases, ids, bases, api_name="use_knowledge_bases")


class Live:
    """A turn while it is answered: what the chat, the cards and the API show, and the turn to store."""

    def __init__(self, conversation: Conversation, question: str, images: tuple[str, ...], *, loading: bool,
                 lang: str = "en", medical: bool = False):
        self.lang = lang
        self.medical = medical  # every answer shown (never stored) with the medical disclaimer under it
        self.conversation = conversation
        self.question = question
        self.images = images
        self.answer = ""
        self.sources: tuple = ()
        self.cited: tuple[int, ...] = ()
        self.annotated: tuple[str, ...] = ()
        self.consistency: dict | None = None  # the answer's agreement with its images, once complete
        self.notice: str | None = LOADING if loading else None
        self.done = False
        self.stored = False
        self.retrieved_yet = False
        self.finished = threading.Event()  # stored (or failed to be): Stop waits for it
        self.reports: list[str] = []  # what de-identification removed from attached DICOM files
        self.cards, self.data = render.sources_html(()), []

    @property
    def conversation_id(self) -> str:
        return self.conversation.id

    def retrieved(self, sources, notice: str | None) -> None:
        """Sources found; the loading notice stays until the first token, unless there is a notice to say."""
        self.sources, self.retrieved_yet = sources, True
        notice = explain(self.lang, notice) if notice else None
        self.notice = notice or (LOADING if self.notice == LOADING else None)
        self.cards, self.data = render.sources_html(sources, notice=notice), render.sources_data(sources)

    def completed(self, event: Completed, annotated: tuple[str, ...]) -> None:
        self.answer, self.cited, self.annotated, self.done = event.text, event.cited, annotated, True
        self.consistency = event.consistency.to_dict() if event.consistency is not None else None
        if self.sources:
            self.cards = render.sources_html(self.sources, event.cited)
            self.data = render.sources_data(self.sources, event.cited)

    def store(self, store: ConversationStore, model: str | None) -> None:
        """Append the turn as far as it got (an error's notice; a stop keeps the partial answer)."""
        notice = self.notice if self.notice != LOADING else None
        if not self.done and self.answer and notice is None:
            notice = say(self.lang, "stopped")
        notice = "\n\n".join(n for n in (notice, *self.reports) if n) or None
        turn = Turn(self.question, self.images, tuple(map(source_record, self.sources)), self.cited,
                    self.answer, notice, model=model, annotated=self.annotated, consistency=self.consistency)
        try:
            self.conversation = store.append(self.conversation.id, turn)
            self.stored = True
        finally:
            self.finished.set()

    def answer_markdown(self) -> str:
        if not self.answer and self.notice == LOADING:
            return say(self.lang, "loading")
        return render.answer_markdown(self.answer, len(self.sources),
                                      disclaimer=_disclaimer(self.lang, self.medical))

    def messages(self) -> list[dict]:
        """The stored turns, then this one as far as it has come."""
        if self.stored:
            return _messages(self.conversation, self.lang, self.medical)
        urls = [render.chat_image_url(self.conversation_id, r) for r in self.images]
        located = [render.chat_image_url(self.conversation_id, r) for r in self.annotated]
        notice = None if self.answer else say(self.lang, "loading") if self.notice == LOADING else self.notice
        return [*_messages(self.conversation, self.lang, self.medical),
                {"role": "user", "content": render.question_markdown(self.question, urls)},
                {"role": "assistant", "content": render.answer_markdown(
                    self.answer, len(self.sources), located, notice, self.consistency, words(self.lang),
                    _disclaimer(self.lang, self.medical))}]

    @staticmethod
    def links(conversation_id: str | None, lang: str = "en") -> str:
        if not conversation_id:
            return ""
        base = f"files/export/{conversation_id}"
        return (say(lang, "export") + say(lang, "colon") + " · ".join(
            f'<a href="{base}.{kind}" download>{say(lang, label)}</a>'
            for kind, label in (("md", "Markdown"), ("json", "JSON"), ("zip", "ZIP with images"))))


def _messages(conversation: Conversation, lang: str = "en", medical: bool = False) -> list[dict]:
    """A stored conversation as the chat shows it (in medical mode each answer with the disclaimer)."""
    messages = []
    for turn in conversation.turns:
        urls = [render.chat_image_url(conversation.id, r) for r in turn.images]
        located = [render.chat_image_url(conversation.id, r) for r in turn.annotated]
        messages += [{"role": "user", "content": render.question_markdown(turn.question, urls)},
                     {"role": "assistant", "content": render.answer_markdown(
                         turn.answer, len(turn.sources), located, turn.notice, turn.consistency, words(lang),
                         _disclaimer(lang, medical))}]
    return messages


def _disclaimer(lang: str, medical: bool) -> str:
    """The line medical mode shows under every answer; it is display only, never part of the stored answer."""
    return say(lang, "medical_note") if medical else ""


def create_app(app: AnswerPipeline | Workspaces, settings: Settings, *, gate: Gate | None = None) -> gr.Blocks:
    """The app over workspaces, or over one pipeline (one local user, no sign-in)."""
    workspaces = app if isinstance(app, Workspaces) else Workspaces.single(app, settings.data_dir)
    ui = AssistantUI(workspaces, settings, Identity(settings), gate)
    blocks = ui.build()
    blocks.assistant_ui = ui  # launch() finds the workspaces and the gate here
    return blocks


def launch(app: gr.Blocks, settings: Settings, **kwargs):
    """Launch with the product's defaults: bound to the configured host, the request guard and the
    owner-checked file routes inside Gradio's server, EN/ZH. Refuses to serve the one local user (no
    sign-in) on an address other people can reach."""
    ui: AssistantUI = app.assistant_ui
    check_binding(settings)
    gate = ui.gate or Gate(settings=settings, identity=ui.identity, workspaces=ui.workspaces, assets=[ASSETS])
    ui.gate = gate
    options = dict(server_name=settings.ui.host, server_port=settings.ui.port, allowed_paths=[str(ASSETS)],
                   show_error=False, i18n=make_i18n(), css=render.SOURCES_CSS,
                   auth=sign_in_for(settings, ui.workspaces.audit),
                   auth_dependency=ui.identity.dependency, max_file_size=int(settings.ui.max_upload_mb * 2**20),
                   run_history=False, footer_links=["api", "settings"],
                   app_kwargs={"middleware": [Middleware(Guard, gate=gate)],
                               "routes": file_routes(ui.workspaces, ui.identity)},
                   auth_message="Sign in with the name and password your administrator gave you. "
                                "请使用管理员提供的用户名和密码登录。")
    options.update(kwargs)
    # Gradio's launch blocks a script's main thread until the server stops: what must hold while it serves
    # (the examples' files public, the reaper of anonymous workspaces) is set up before the thread blocks,
    # not after the server stopped (under ``python -m ui`` and on a Space the examples were refused and idle
    # visitors' workspaces were never deleted; tests launch without blocking and did not see it)
    blocks = not options.get("prevent_thread_lock") and not bool(getattr(sys, "ps1", sys.flags.interactive))
    # debug (or GRADIO_DEBUG=1) would make Gradio block here all the same, and a second block_thread below
    # would then outlive the server's stop: debug only prints errors, which the logs have
    os.environ.pop("GRADIO_DEBUG", None)
    result = app.queue(default_concurrency_limit=1).launch(**{**options, "prevent_thread_lock": True,
                                                              "debug": False})
    gate.public_files.update(public_files(app.config or {}, gradio_cache()))
    if settings.auth.mode == "anonymous":
        start_reaper(ui.workspaces, gate, settings.auth.idle_minutes * 60)
    if blocks:
        app.block_thread()  # until Ctrl-C or SIGTERM (``stop_on_sigterm``), as Gradio's launch does
    return result


def check_binding(settings: Settings) -> None:
    """Without sign-in there is one user, and whoever reaches the port is that user: only on loopback."""
    if settings.auth.mode == "local" and not is_loopback(settings.ui.host) and not settings.ui.trust_network:
        raise ConfigurationError(
            f"ASSISTANT_UI__HOST={settings.ui.host} makes the app reachable from other machines, but there is "
            "no sign-in (ASSISTANT_AUTH__MODE=local): everyone would share one workspace. Choose a sign-in "
            "(password, proxy, huggingface) or ASSISTANT_AUTH__MODE=anonymous for a public demo with private, "
            "temporary workspaces; or bind 127.0.0.1 (in a container whose port the host publishes on its "
            "127.0.0.1 only: ASSISTANT_UI__TRUST_NETWORK=true).")


def start_reaper(workspaces: Workspaces, gate: Gate, idle_seconds: float) -> threading.Thread:
    """Anonymous mode: visitors' workspaces unused for ``idle_seconds`` are deleted, every file."""

    def reap():
        while not workspaces.closed:
            time.sleep(min(60.0, idle_seconds / 4))
            for user in workspaces.remove_idle(idle_seconds):
                gate.forget_user(user)

    thread = threading.Thread(target=reap, name="workspace-reaper", daemon=True)
    thread.start()
    return thread


def gradio_cache() -> str:
    from gradio.utils import get_upload_folder

    return get_upload_folder()
