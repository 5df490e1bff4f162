"""``python -m assistant`` as a script would run it: a subprocess, offline, tiny models, real Chroma."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from retrieval.embedders import minilm_folder

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli(tmp_path, tiny_models):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ASSISTANT_DATA_DIR": str(tmp_path / "data"),
           "ASSISTANT_RETRIEVAL__EMBEDDER": str(tiny_models["clip"]),
           "ASSISTANT_MODEL__CHECKPOINT": str(tiny_models["qwen2_5_vl"]), "ASSISTANT_OFFLINE": "true",
           "ASSISTANT_RETRIEVAL__TEXT_EMBEDDER": minilm_folder() or "", "ASSISTANT_RETRIEVAL__OCR": "false"}

    def run(*args, input_text=None, **extra_env):
        return subprocess.run([sys.executable, "-m", "assistant", *map(str, args)], cwd=tmp_path,
                              env={**env, **extra_env}, capture_output=True, text=True, timeout=120,
                              input=input_text)
    return run


def test_ingest_search_docs_delete(cli, tmp_path, red_png):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "invoice.txt").write_text("The invoice total is 42 euros.")
    (docs / "broken.png").write_bytes(b"nope")
    out = cli("ingest", docs, red_png)
    assert out.returncode == 0, out.stderr
    assert "added" in out.stdout and "failed" in out.stdout and "2 of 3 files" in out.stdout
    failed = next(line for line in out.stdout.splitlines() if line.startswith("failed"))
    assert failed.count("broken.png") == 1 and failed.endswith(": not a readable image (the file is damaged, "
                                                               "incomplete, or not an image)"), failed

    out = cli("search", "invoice total", "--k", "2", "--json")
    hits = json.loads(out.stdout)
    assert len(hits) == 2 and {"source", "locator", "kind", "score", "text"} <= set(hits[0])

    out = cli("search", "--image", red_png, "--k", "1", "--json")
    assert json.loads(out.stdout)[0]["source"].endswith("red.png")

    listing = cli("docs").stdout
    assert "2 documents" in listing
    doc_id = next(line.split()[0] for line in listing.splitlines() if "invoice.txt" in line)
    out = cli("delete", doc_id)
    assert out.returncode == 0 and "deleted" in out.stdout
    assert "1 documents" in cli("docs").stdout
    out = cli("delete", "red.png")  # by file name
    assert out.returncode == 0 and "red.png" in out.stdout and "0 documents" in cli("docs").stdout


def test_ingest_fails_only_when_nothing_could_be_ingested(cli, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b")
    out = cli("ingest", bad)
    assert out.returncode == 1 and "unsupported file type" in out.stdout


def test_ask_streams_an_answer(cli, red_png):
    out = cli("ask", "What is this?", "--image", red_png, "--no-knowledge",
              ASSISTANT_MODEL__MAX_NEW_TOKENS="8", ASSISTANT_MODEL__TEMPERATURE="0")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()


def test_ask_json_has_the_answer_and_its_consistency(cli, red_png):
    """``ask --json``: one JSON object once the answer is complete, with its agreement with the user's image in
    the knowledge base's cross-modal space (a tiny random CLIP: the score's value is noise, its shape is not)."""
    out = cli("ask", "What is this?", "--image", red_png, "--json", ASSISTANT_MODEL__MAX_NEW_TOKENS="8",
              ASSISTANT_MODEL__TEMPERATURE="0")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["answer"] and result["sources"] == [] and result["abstained"] is False
    agreement = result["consistency"]
    assert 0.0 <= agreement["score"] <= 1.0 and agreement["reason"] == "measured"
    assert agreement["threshold"] == 0.9 and agreement["flagged"] == (agreement["score"] < 0.9)
    assert [(i["kind"], i["number"]) for i in agreement["images"]] == [("image", 1)]
    alone = json.loads(cli("ask", "hi", "--no-knowledge", "--json", ASSISTANT_MODEL__MAX_NEW_TOKENS="4").stdout)
    assert alone["consistency"]["score"] is None and alone["consistency"]["reason"] == "no images"


def test_ask_with_missing_model_says_what_to_set(cli, tmp_path):
    out = cli("ask", "hi", "--no-knowledge", ASSISTANT_MODEL__CHECKPOINT=str(tmp_path / "missing"))
    assert out.returncode == 1
    assert "ASSISTANT_MODEL__CHECKPOINT" in out.stderr and "Traceback" not in out.stderr


def test_delete_unknown_document(cli):
    out = cli("delete", "0" * 32)
    assert out.returncode == 1 and "No document with id or name" in out.stderr


def test_the_user_and_the_knowledge_base_are_options(cli, tmp_path):
    note = tmp_path / "note.txt"
    note.write_text("The orchard harvest starts in September.")
    out = cli("--user", "dan", "kbs", "create", "Farm")
    assert out.returncode == 0 and "created kb-" in out.stdout, out.stderr
    assert cli("--user", "dan", "--kb", "farm", "ingest", note).returncode == 0
    assert "note.txt" in cli("--user", "dan", "--kb", "FARM", "docs").stdout
    assert "0 documents" in cli("--user", "dan", "docs").stdout  # the first one has nothing
    assert cli("--kb", "Farm", "docs").returncode == 1  # dan's, not the local user's
    listed = cli("--user", "dan", "kbs", "list").stdout
    assert "Farm" in listed and "My documents" in listed
    out = cli("--user", "dan", "--kb", "nowhere", "docs")
    assert out.returncode == 1 and "no knowledge base 'nowhere'" in out.stderr
    kb_folder = next((tmp_path / "data" / "users" / "dan" / "knowledge-bases").iterdir())
    out = cli("--user", "dan", "kbs", "delete", "Farm")
    assert out.returncode == 0 and "deleted Farm" in out.stdout, out.stderr
    assert not kb_folder.exists()
    assert cli("--kb", "shared", "ingest", note).returncode == 0  # the operator fills the shared library
    assert (tmp_path / "data" / "shared-library" / "records.sqlite3").is_file()


def test_a_removed_user_is_purged_with_every_file(cli, tmp_path):
    note = tmp_path / "note.txt"
    note.write_text("erin canary q7w3e")
    add = cli("users", "add", "erin", "--password-stdin", input_text="a long password\n")
    assert add.returncode == 0, add.stderr
    cli("--user", "erin", "kbs", "create", "Second")
    assert cli("--user", "erin", "--kb", "Second", "ingest", note).returncode == 0
    assert cli("--user", "erin", "ingest", note).returncode == 0
    data = tmp_path / "data"
    modes = {oct(p.stat().st_mode & 0o777) for p in data.rglob("*") if p.is_file()}
    folders = {oct(p.stat().st_mode & 0o777) for p in data.rglob("*") if p.is_dir()}
    assert modes == {"0o600"} and folders == {"0o700"}, (modes, folders)  # only the server's user reads them
    out = cli("users", "remove", "erin", "--purge")
    assert out.returncode == 0 and "deleted everything" in out.stdout, out.stderr
    assert not (data / "users" / "erin").exists()
    assert [p for p in data.rglob("*") if p.is_file() and b"q7w3e" in p.read_bytes()] == []
