"""The real app in medical mode, in a process of its own (an audit hook cannot be removed): ``python -m
tests.helpers.medical RESULT.json DATA_DIR``. Every logger at DEBUG writes to stderr; the app is built as
``python -m ui`` builds it (composition's environment with its outbound guard, the OpenAI endpoint backend,
real Chroma, spawned parse workers, the audit log, the real Gradio server on 127.0.0.1), with fakes at the
edges only (a scripted OpenAI-style server, the hashing embedder). It ingests a document, answers a question,
then tries to reach addresses it may not. What happened goes to RESULT.json; the markers never do, so a test
can look for them in everything the process printed."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import threading
import traceback
from http.server import ThreadingHTTPServer
from pathlib import Path

QUESTION_MARK = "QMARK7f3a91"  # in the user's question
ANSWER_MARK = "AMARK5c02e8"  # in the model's answer
DOCUMENT_MARK = "DMARK9b44d1"  # in the ingested document's text
FILENAME_MARK = "FMARK2e6c70"  # in the ingested document's file name (a patient's name, say)
MARKS = (QUESTION_MARK, ANSWER_MARK, DOCUMENT_MARK, FILENAME_MARK)
UNREACHABLE = ("10.255.255.1", 9)  # a non-routable address: never answers, so only the guard can refuse fast


def outward_address() -> str | None:
    """An address of this machine other than loopback (a model server 'elsewhere' that the test can run)."""
    try:
        found = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=5).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    return next((a for a in found if "." in a and not a.startswith("127.")), None)


def model_server(host: str):
    from tests.helpers.openai_server import Recorder, _handler

    recorder = Recorder()
    recorder.answer = f"The scan shows {ANSWER_MARK} in the left lobe [1]."
    server = ThreadingHTTPServer((host, 0), _handler(recorder))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, recorder


def everything_at_debug() -> None:
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, force=True,
                        format="%(levelname)s %(name)s: %(message)s")
    for logger in list(logging.root.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger):
            logger.setLevel(logging.DEBUG)
            logger.disabled = False


def build_settings(data_dir: Path, endpoint_host: str, port: int, allowed: list[str]):
    from tests.helpers.server import app_settings

    return app_settings(data_dir, medical={"enabled": True, "allowed_hosts": allowed},
                        model={"backend": "openai", "endpoint": f"http://{endpoint_host}:{port}/v1",
                               "checkpoint": "served-vlm"})


def build_app(settings):
    from assistant.composition import build_audit, build_model
    from assistant.knowledge import Knowledge
    from assistant.loading import Background
    from assistant.pipeline import AnswerPipeline
    from assistant.workspaces import Workspaces
    from retrieval.store import KnowledgeBase
    from retrieval.worker import ParsePool
    from tests.helpers.fakes import HashingEmbedder

    def load():
        return KnowledgeBase.open(settings.data_dir / "knowledge", HashingEmbedder(), parser=ParsePool())

    knowledge = Knowledge(Background("knowledge base", load, close=KnowledgeBase.close))
    pipeline = AnswerPipeline(build_model(settings), knowledge, k=4).start()
    return Workspaces.single(pipeline, settings.data_dir, audit=build_audit(settings))


def attempt(call) -> str:
    """'ok', or the name of the exception the call raised."""
    try:
        call()
        return "ok"
    except Exception as exc:  # noqa: BLE001  which exception it was is the result
        return type(exc).__name__


def chat_and_ingest(client, tmp: Path) -> dict:
    from gradio_client import handle_file

    from tests.helpers.server import ask

    note = tmp / f"{FILENAME_MARK}.txt"
    note.write_text(f"Findings: a nodule marked {DOCUMENT_MARK} in the left lobe.\n", encoding="utf-8")
    report, docs = client.predict([handle_file(str(note))], api_name="/ingest")
    answer, sources, _ = ask(client, f"What does {QUESTION_MARK} show in the left lobe?", max_new_tokens=64)
    return {"ingested": "error" not in str(report).lower() and bool(docs), "answer_has_mark": ANSWER_MARK in answer,
            "sources_have_mark": DOCUMENT_MARK in str(sources)}


def failures(client, tmp: Path) -> dict:
    """A damaged file and a model server that fails: error paths are where content tends to reach a log."""
    from gradio_client import handle_file

    from tests.helpers.server import ask

    broken = tmp / f"{FILENAME_MARK}-scan.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + DOCUMENT_MARK.encode() * 20)
    failed, _ = client.predict([handle_file(str(broken))], api_name="/ingest")
    refused, _, _ = ask(client, f"boom {QUESTION_MARK}", max_new_tokens=16)  # the server answers 500
    return {"failed_ingest_reported": FILENAME_MARK in str(failed), "failed_answer_reported": bool(refused)}


def outward_attempts(app_port: int) -> dict:
    import httpx

    def loopback():
        with socket.create_connection(("127.0.0.1", app_port), timeout=5):
            pass

    return {
        "tcp_refused": attempt(lambda: socket.create_connection(UNREACHABLE, timeout=5).close()),
        "dns_refused": attempt(lambda: socket.getaddrinfo("example.org", 443)),
        "http_refused": attempt(lambda: httpx.get("http://example.org/", timeout=5)),
        "udp_refused": attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", UNREACHABLE)),
        "loopback": attempt(loopback),
        "localhost_name": attempt(lambda: socket.getaddrinfo("localhost", app_port)),
        "unix": attempt(lambda: socket.socketpair()[0].close()),
    }


def run(tmp: Path, timeout: float = 240) -> tuple[dict, str]:
    """Run this module in a process of its own: (its result, all it printed on stdout and stderr)."""
    import os

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
           "ANONYMIZED_TELEMETRY": "False", "PYTHONUNBUFFERED": "1"}
    env = {k: v for k, v in env.items() if not k.startswith("ASSISTANT_")}
    result_file = tmp / "result.json"
    done = subprocess.run([sys.executable, "-m", "tests.helpers.medical", str(result_file), str(tmp / "app")],
                          cwd=Path(__file__).parents[2], env=env, capture_output=True, text=True, timeout=timeout)
    output = done.stdout + done.stderr
    assert done.returncode == 0 and result_file.exists(), output[-4000:]
    return json.loads(result_file.read_text(encoding="utf-8")), output


def main(result_file: str, data_dir: str) -> None:
    everything_at_debug()
    tmp = Path(data_dir)
    tmp.mkdir(parents=True, exist_ok=True)
    outward = outward_address()
    server, recorder = model_server(outward or "127.0.0.1")
    host, port = server.server_address[:2]
    settings = build_settings(tmp, host, port, [outward] if outward else [])
    from assistant.composition import configure_environment
    from assistant.egress import installed

    configure_environment(settings)
    from gradio_client import Client

    from tests.helpers.server import serve

    result: dict = {"model_host": host, "model_host_is_loopback": outward is None}
    with serve(build_app(settings), settings) as url:
        everything_at_debug()  # again: the server's own loggers exist now
        client = Client(url, verbose=False)
        for step in (chat_and_ingest, failures):
            try:
                result.update(step(client, tmp))
            except Exception:  # noqa: BLE001  reported, not raised: the test says what failed
                result[f"{step.__name__} failed"] = traceback.format_exc()
        result.update(outward_attempts(settings.ui.port))
        result["model_requests"] = len(recorder.requests)
        result["model_saw_question_and_document"] = [m in json.dumps(recorder.requests[:1])
                                                     for m in (QUESTION_MARK, DOCUMENT_MARK)]
        result["refused"] = installed().refused if installed() else None
    server.shutdown()
    audit = settings.audit_file.read_text(encoding="utf-8") if settings.audit_file.exists() else ""
    result["audit_records"] = len(audit.splitlines())
    result["audit_marks"] = [name for name, mark in zip(("question", "answer", "document", "file name"), MARKS)
                             if mark in audit]
    Path(result_file).write_text(json.dumps(result), encoding="utf-8")


if __name__ == "__main__":
    main(*sys.argv[1:3])
