"""The workspace registry: one per signed-in user, a removed user refused, a knowledge base that failed to
open tried again, the local user unchanged without sign-in."""

from __future__ import annotations

import pytest

from assistant.composition import _store_options
from assistant.errors import AssistantError, KnowledgeError
from assistant.knowledge import Knowledge
from assistant.loading import Background
from assistant.pipeline import AnswerPipeline
from assistant.settings import Settings
from assistant.workspaces import LOCAL_USER, Workspaces, knowledge_dir
from tests.helpers.fakes import ScriptedModel


class Opened:
    """Stands for a knowledge base: which user's, and whether it was closed."""

    def __init__(self, user):
        self.user, self.closed = user, False


def registry(users: set[str], fail_first: set[str] = frozenset()):
    attempts: dict[str, int] = {}

    def open_knowledge(user):
        def load():
            attempts[user] = attempts.get(user, 0) + 1
            if user in fail_first and attempts[user] == 1:
                raise KnowledgeError("The knowledge base is open for writing in another process")
            return Opened(user)

        return Knowledge(Background("knowledge base", load, close=lambda kb: setattr(kb, "closed", True)))

    return Workspaces(ScriptedModel(), open_knowledge, signed_in=True, is_user=lambda n: n in users), attempts


def test_each_user_has_their_own_workspace_and_names_ignore_case():
    workspaces, _ = registry({"alice", "bob"})
    alice, bob = workspaces.of("Alice"), workspaces.of("bob")
    assert alice is workspaces.of("alice") and alice.user == "alice"
    assert alice.knowledge is not bob.knowledge and alice.pipeline.model is bob.pipeline.model
    assert alice.knowledge.loader.get().user == "alice"
    kbs = [alice.knowledge.loader.get(), bob.knowledge.loader.get()]
    workspaces.close()
    assert all(kb.closed for kb in kbs)
    with pytest.raises(AssistantError, match="shutting down"):
        workspaces.of("alice")


def test_no_sign_in_no_workspace_and_a_removed_user_gets_nothing():
    users = {"alice"}
    workspaces, _ = registry(users)
    with pytest.raises(AssistantError, match="Sign in first"):
        workspaces.of(None)
    workspaces.of("alice")
    users.discard("alice")
    with pytest.raises(AssistantError, match="no longer exists"):
        workspaces.of("alice")


def test_a_knowledge_base_that_failed_to_open_is_tried_again():
    workspaces, attempts = registry({"alice"}, fail_first={"alice"})
    first = workspaces.of("alice").knowledge
    with pytest.raises(KnowledgeError):
        first.documents()
    again = workspaces.of("alice").knowledge
    assert again is not first and again.loader.get().user == "alice" and attempts["alice"] == 2


def test_without_sign_in_the_one_local_user_keeps_the_old_place(tmp_path):
    pipeline = AnswerPipeline(ScriptedModel(), None)
    workspaces = Workspaces.single(pipeline)
    assert workspaces.of(None).pipeline is pipeline and workspaces.of("anyone").user == LOCAL_USER
    assert knowledge_dir(tmp_path, None) == tmp_path
    assert knowledge_dir(tmp_path, "Bob") == tmp_path / "users" / "bob" / "knowledge"


def test_each_user_has_collections_of_their_own_in_a_shared_chroma_server(tmp_path):
    settings = Settings(data_dir=tmp_path, retrieval={"chroma_url": "http://127.0.0.1:8001"})
    names = {_store_options(settings, user)["collection"] for user in (None, "alice", "Bob")}
    assert names == {"knowledge", "knowledge-alice", "knowledge-bob"}


def test_the_local_pipeline_is_kept_even_when_its_knowledge_base_failed():
    """Without sign-in there is nothing to reopen with: the pipeline stays, and says why it has no sources."""
    def broken():
        raise KnowledgeError("The embedding model folder does not exist")

    knowledge = Knowledge(Background("knowledge base", broken)).start()
    pipeline = AnswerPipeline(ScriptedModel(), knowledge, k=7)
    workspaces = Workspaces.single(pipeline)
    with pytest.raises(KnowledgeError):
        knowledge.documents()
    assert workspaces.of(None).pipeline is pipeline
