"""The audit log: a hash chain that shows a record changed, removed, inserted or moved; no content unless
asked; several processes appending at once; CSV export by day; the CLI; and the real app writing one record
per action (ingest, search, answer, delete) through the user's workspace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

from assistant.audit import AuditLog, export_csv, verify

ROOT = Path(__file__).resolve().parents[2]


def filled(tmp_path, n: int = 6, **options) -> Path:
    log = AuditLog(tmp_path / "audit" / "audit.jsonl", **options)
    for i in range(n):
        log.record(f"user{i % 2}", ["ingest", "search", "answer"][i % 3], documents=[f"doc{i}"],
                   answer=f"answer {i}" if i % 3 == 2 else None, question=f"question {i}", model="m")
    return log.path


def rewrite(path: Path, change) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(change(lines)), encoding="utf-8")


def test_an_untouched_log_verifies_and_names_its_head(tmp_path):
    path = filled(tmp_path)
    result = verify(path)
    last = json.loads(path.read_text().splitlines()[-1])
    assert result.ok and result.records == 6 and result.head == last["hash"] and last["seq"] == 6


def edit_user(lines):
    record = json.loads(lines[2])
    record["user"] = "mallory"
    return [*lines[:2], json.dumps(record, separators=(",", ":")) + "\n", *lines[3:]]


def edit_and_rehash(lines):
    """Changed and its own hash recomputed: the next record's link gives it away."""
    from assistant.audit import _digest

    record = json.loads(lines[2])
    record["documents"] = ["other"]
    record["hash"] = _digest(record)
    return [*lines[:2], json.dumps(record, separators=(",", ":")) + "\n", *lines[3:]]


@pytest.mark.parametrize("tamper, bad_line, says", [
    (edit_user, 3, "was changed"),
    (edit_and_rehash, 4, "does not follow"),
    (lambda lines: lines[:2] + lines[3:], 3, "does not follow"),  # a record removed
    (lambda lines: [lines[0], lines[2], lines[1], *lines[3:]], 2, "does not follow"),  # two swapped
    (lambda lines: [*lines[:3], lines[1], *lines[3:]], 4, "does not follow"),  # one copied in again
    (lambda lines: [*lines[:4], lines[4][:40] + "\n", *lines[5:]], 5, "not an audit record"),  # cut short
])
def test_tampering_is_found_at_its_line(tmp_path, tamper, bad_line, says):
    path = filled(tmp_path)
    rewrite(path, tamper)
    result = verify(path)
    assert not result.ok and result.line == bad_line and says in result.problem
    assert result.records == bad_line - 1


def test_records_cut_from_the_end_change_the_head(tmp_path):
    path = filled(tmp_path)
    head = verify(path).head
    rewrite(path, lambda lines: lines[:-2])
    cut = verify(path)
    assert cut.ok and cut.records == 4 and cut.head != head  # what noting the head elsewhere is for


def test_no_question_or_answer_text_unless_asked(tmp_path):
    plain = filled(tmp_path / "plain").read_text()
    assert "question 2" not in plain and "answer 2" not in plain
    records = [json.loads(line) for line in plain.splitlines()]
    assert records[2]["answer_sha256"] and "question" not in records[2]
    with_content = filled(tmp_path / "content", content=True).read_text()
    assert "question 2" in with_content and "answer 2" in with_content


def test_processes_appending_at_once_keep_one_chain(tmp_path):
    path = tmp_path / "audit" / "audit.jsonl"
    script = ("import sys; from pathlib import Path; from assistant.audit import AuditLog\n"
              "log = AuditLog(Path(sys.argv[1]))\n"
              "for i in range(60): log.record(sys.argv[2], 'search', sources=[str(i)])\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    workers = [subprocess.Popen([sys.executable, "-c", script, str(path), name], env=env) for name in "ab"]
    assert [w.wait(120) for w in workers] == [0, 0]
    result = verify(path)
    assert result.ok and result.records == 120
    users = [json.loads(line)["user"] for line in path.read_text().splitlines()]
    assert users.count("a") == users.count("b") == 60


def test_export_by_day(tmp_path):
    path = filled(tmp_path)
    today = date.today()
    text, rows = export_csv(path, today - timedelta(days=1), today + timedelta(days=1))
    assert rows == 6 and text.splitlines()[0].startswith("seq,time,user,action")
    assert export_csv(path, today + timedelta(days=1))[1] == 0
    assert export_csv(path, None, today - timedelta(days=1))[1] == 0


def test_export_quotes_what_a_spreadsheet_would_run(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl", content=True)
    log.record("alice", "search", question="=HYPERLINK(\"http://evil\")")
    text, _ = export_csv(log.path)
    assert "'=HYPERLINK" in text


def cli(tmp_path, *args):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "ASSISTANT_DATA_DIR": str(tmp_path),
           "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "assistant", "audit", *args], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)


def test_the_cli_verifies_and_exports(tmp_path):
    path = filled(tmp_path)
    ok = cli(tmp_path, "verify")
    assert ok.returncode == 0 and f"6 records; head {verify(path).head}" in ok.stdout
    out = tmp_path / "out.csv"
    exported = cli(tmp_path, "export", "--from", date.today().isoformat(), "--out", str(out))
    assert exported.returncode == 0 and "6 records written" in exported.stdout and len(out.read_text().splitlines()) == 7
    rewrite(path, edit_user)
    bad = cli(tmp_path, "verify")
    assert bad.returncode == 1 and "line 3" in bad.stderr and "was changed" in bad.stderr
    assert cli(tmp_path, "export", "--from", "yesterday").returncode == 2  # argparse names the bad day


def test_the_app_records_each_action_through_the_workspace(tmp_path):
    from gradio_client import Client, handle_file

    from assistant.knowledge import Knowledge
    from assistant.pipeline import AnswerPipeline
    from assistant.workspaces import Workspaces
    from retrieval.store import KnowledgeBase
    from tests.helpers.fakes import HashingEmbedder, ScriptedModel
    from tests.helpers.server import app_settings, ask, serve

    settings = app_settings(tmp_path, audit={"enabled": True})
    kb = KnowledgeBase.open(settings.data_dir, HashingEmbedder(), ocr=False)
    pipeline = AnswerPipeline(ScriptedModel("It is 42 euros [1]."), Knowledge.ready(kb))
    workspaces = Workspaces.single(pipeline, settings.data_dir, audit=AuditLog(settings.audit_file))
    note = tmp_path / "invoice.txt"
    note.write_text("The invoice total is 42 euros.")
    with serve(workspaces, settings) as url:
        client = Client(url, verbose=False)
        _, docs = client.predict([handle_file(str(note))], api_name="/ingest")
        client.predict("invoice total", None, 4, api_name="/search")
        answer, *_ = ask(client, "What is the invoice total?")
        client.predict(docs[0]["id"], api_name="/delete")
    records = [json.loads(line) for line in settings.audit_file.read_text().splitlines()]
    doc = docs[0]["id"]
    assert [r["action"] for r in records] == ["ingest", "search", "answer", "delete"]
    assert all(r["user"] == "local" and r["outcome"] == "ok" for r in records)
    assert records[0]["documents"] == [doc] and records[1]["sources"] == [doc] == records[2]["sources"]
    assert records[3]["documents"] == [doc] and records[2]["model"] == "scripted"
    text = settings.audit_file.read_text()
    assert "invoice total" not in text and "42 euros" not in text  # no question, answer or document text
    assert verify(settings.audit_file).ok


def test_sign_ins_are_recorded_without_the_password(tmp_path):
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from assistant.accounts import UsersFile, sign_in_for
    from assistant.settings import Settings

    settings = Settings(data_dir=tmp_path, auth={"mode": "password"}, audit={"enabled": True})
    UsersFile(settings.users_file).add("alice", "correct horse battery")
    log = AuditLog(settings.audit_file)
    sign_in = sign_in_for(settings, log)

    def run(name, password):  # a loop of its own, in a thread: other tests may leave one running in this one
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, sign_in(name, password)).result()

    assert run("alice", "correct horse battery")
    assert not run("alice", "wrong guess entirely")
    records = [json.loads(line) for line in settings.audit_file.read_text().splitlines()]
    assert [(r["user"], r["action"], r["outcome"]) for r in records] == [
        ("alice", "sign-in", "ok"), ("alice", "sign-in", "refused")]
    assert "horse" not in settings.audit_file.read_text() and "guess" not in settings.audit_file.read_text()
