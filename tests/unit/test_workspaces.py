"""The workspace registry: one per signed-in user, a removed user refused, a knowledge base that failed to
open tried again, the local user unchanged without sign-in."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.composition import _store_options
from assistant.errors import AssistantError, InputError, KnowledgeError
from assistant.knowledge import Knowledge
from assistant.loading import Background
from assistant.pipeline import AnswerPipeline
from assistant.settings import Settings
from assistant.workspaces import LOCAL_USER, Workspaces, knowledge_dir
from tests.helpers.fakes import ScriptedModel


class Opened:
    """Stands for a knowledge base: which user's, and whether it was closed."""

    def __init__(self, user):
        self.user, self.closed, self.destroyed = user, False, False

    def destroy(self):
        self.destroyed = True


def registry(users: set[str], data_dir: Path, fail_first: set[str] = frozenset()):
    attempts: dict[str, int] = {}

    def open_knowledge(user, kb="default"):
        def load():
            attempts[user] = attempts.get(user, 0) + 1
            if user in fail_first and attempts[user] == 1:
                raise KnowledgeError("The knowledge base is open for writing in another process")
            return Opened(user)

        return Knowledge(Background("knowledge base", load, close=lambda kb: setattr(kb, "closed", True)))

    workspaces = Workspaces(ScriptedModel(), open_knowledge, signed_in=True, data_dir=data_dir,
                            is_user=lambda n: n in users)
    return workspaces, attempts


def test_each_user_has_their_own_workspace_and_names_ignore_case(tmp_path):
    workspaces, _ = registry({"alice", "bob"}, data_dir=tmp_path)
    alice, bob = workspaces.of("Alice"), workspaces.of("bob")
    assert alice is workspaces.of("alice") and alice.user == "alice"
    assert alice.knowledge is not bob.knowledge and alice.pipeline.model is bob.pipeline.model
    assert alice.knowledge.loader.get().user == "alice"
    assert alice.folder == tmp_path / "users" / "alice"
    assert bob.conversations.folder == tmp_path / "users" / "bob" / "conversations"
    kbs = [alice.knowledge.loader.get(), bob.knowledge.loader.get()]
    workspaces.close()
    assert all(kb.closed for kb in kbs)
    with pytest.raises(AssistantError, match="shutting down"):
        workspaces.of("alice")


def test_no_sign_in_no_workspace_and_a_removed_user_gets_nothing(tmp_path):
    users = {"alice"}
    workspaces, _ = registry(users, data_dir=tmp_path)
    with pytest.raises(AssistantError, match="Sign in first"):
        workspaces.of(None)
    workspaces.of("alice")
    users.discard("alice")
    with pytest.raises(AssistantError, match="no longer exists"):
        workspaces.of("alice")


def test_a_knowledge_base_that_failed_to_open_is_tried_again(tmp_path):
    workspaces, attempts = registry({"alice"}, fail_first={"alice"}, data_dir=tmp_path)
    first = workspaces.of("alice").knowledge
    with pytest.raises(KnowledgeError):
        first.documents()
    again = workspaces.of("alice").knowledge
    assert again is not first and again.loader.get().user == "alice" and attempts["alice"] == 2


def test_without_sign_in_the_one_local_user_keeps_the_old_place(tmp_path):
    pipeline = AnswerPipeline(ScriptedModel(), None)
    workspaces = Workspaces.single(pipeline, tmp_path)
    local = workspaces.of(None)
    assert local.pipeline.model is pipeline.model and local.shelf is None and workspaces.of("x").user == LOCAL_USER
    assert workspaces.of(None).conversations.folder == tmp_path / "conversations"
    assert knowledge_dir(tmp_path, None) == tmp_path
    assert knowledge_dir(tmp_path, "Bob") == tmp_path / "users" / "bob" / "knowledge"
    assert knowledge_dir(tmp_path, "Bob", "kb-1a2b") == tmp_path / "users" / "bob" / "knowledge-bases" / "kb-1a2b"
    assert knowledge_dir(tmp_path, None, "kb-1a2b") == tmp_path / "knowledge-bases" / "kb-1a2b"
    assert knowledge_dir(tmp_path, "Bob", "shared") == tmp_path / "shared-library"
    with pytest.raises(InputError):
        knowledge_dir(tmp_path, "Bob", "../alice")


def test_each_user_has_collections_of_their_own_in_a_shared_chroma_server(tmp_path):
    settings = Settings(data_dir=tmp_path, retrieval={"chroma_url": "http://127.0.0.1:8001"})
    names = {_store_options(settings, user)["collection"] for user in (None, "alice", "Bob")}
    assert names == {"knowledge", "knowledge-alice", "knowledge-bob"}
    # a created knowledge base and the shared library: upper-case marks no (lower-case) user name can make
    assert _store_options(settings, "alice", "kb-1f2e3d4c")["collection"] == "knowledge-alice-KB-1f2e3d4c"
    assert _store_options(settings, None, "kb-1f2e3d4c")["collection"] == "knowledge-KB-1f2e3d4c"
    assert _store_options(settings, "shared", "shared")["collection"] == "knowledge-SHARED"


def test_the_local_pipeline_is_kept_even_when_its_knowledge_base_failed(tmp_path):
    """Without sign-in there is nothing to reopen with: the pipeline stays, and says why it has no sources."""
    def broken():
        raise KnowledgeError("The embedding model folder does not exist")

    knowledge = Knowledge(Background("knowledge base", broken)).start()
    pipeline = AnswerPipeline(ScriptedModel(), knowledge, k=7)
    workspaces = Workspaces.single(pipeline, tmp_path)
    with pytest.raises(KnowledgeError):
        knowledge.documents()
    kept = workspaces.of(None).pipeline
    assert kept.knowledge.first is knowledge and kept.k == 7


def test_removing_a_user_deletes_every_file_of_their_workspace(tmp_path):
    workspaces, _ = registry({"alice", "bob"}, data_dir=tmp_path)
    alice, bob = workspaces.of("alice"), workspaces.of("bob")
    alice.conversations.create("alice's")
    bob.conversations.create("bob's")
    kb = alice.knowledge.loader.get()
    workspaces.remove("alice")
    assert kb.destroyed  # its collections too, where they are in a Chroma server
    assert not (tmp_path / "users" / "alice").exists() and (tmp_path / "users" / "bob").exists()
    assert [c.title for c in workspaces.of("bob").conversations.list()] == ["bob's"]


def test_idle_workspaces_are_removed_only_when_temporary(tmp_path):
    workspaces, _ = registry({"v1"}, data_dir=tmp_path)
    workspaces.of("v1")
    assert workspaces.remove_idle(0) == []  # signed-in users' workspaces are never idle-deleted
    workspaces.temporary = True
    assert workspaces.remove_idle(3600) == [] and workspaces.remove_idle(0) == ["v1"]
    assert not (tmp_path / "users" / "v1").exists()
