"""Medical mode: no content in operational logs. The real app ingests a document and answers a question with
every logger at DEBUG (a root handler writing to stderr), through the OpenAI endpoint backend, the parse
workers and Gradio; neither the question, the answer, the document's text nor its file name appears in
anything the process printed, on the success paths and on the failure paths (a damaged file, a model server
that fails)."""

import pytest

from tests.helpers import medical

pytestmark = pytest.mark.integration


@pytest.fixture
def run(medical_run):
    return medical_run


def test_content_went_where_it_belongs(run):
    result, _ = run
    assert not [key for key in result if key.endswith("failed")], result
    assert result["answer_has_mark"] and result["sources_have_mark"]
    assert result["model_saw_question_and_document"] == [True, True]
    assert result["failed_ingest_reported"] and result["failed_answer_reported"]


def test_the_logs_were_captured_at_debug(run):
    _, output = run
    assert "DEBUG httpcore" in output and "INFO httpx" in output  # the libraries did log, at DEBUG


@pytest.mark.parametrize("what, mark", zip(("question", "answer", "document text", "file name"), medical.MARKS))
def test_no_content_in_the_logs(run, what, mark):
    _, output = run
    assert mark not in output, f"the {what} reached the log: " + next(l for l in output.splitlines() if mark in l)


def test_the_audit_log_keeps_no_content_either(run):
    result, _ = run
    assert result["audit_records"] >= 2
    assert not {"question", "answer", "document"} & set(result["audit_marks"]), result["audit_marks"]
