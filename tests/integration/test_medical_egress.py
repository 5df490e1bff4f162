"""Medical mode: nothing leaves the host. The real app (Gradio on 127.0.0.1, the OpenAI endpoint backend on an
allowed host, Chroma, spawned parse workers) ingests and answers under the outbound guard, which refuses a
connection, a name lookup and a datagram to anywhere else. The guard is an audit hook, which cannot be
removed: the app runs in a process of its own."""

import subprocess
import sys
from pathlib import Path

import pytest


pytestmark = pytest.mark.integration


@pytest.fixture
def run(medical_run):
    return medical_run


def test_the_app_ingests_and_answers_under_the_guard(run):
    result, _ = run
    assert not [key for key in result if key.endswith("failed")], result
    assert result["ingested"] and result["sources_have_mark"] and result["answer_has_mark"]
    assert result["model_saw_question_and_document"] == [True, True]  # through the guard to the model server
    assert result["loopback"] == result["localhost_name"] == result["unix"] == "ok"


def test_the_model_server_on_an_allowed_host_is_reached(run):
    result, _ = run
    if result["model_host_is_loopback"]:
        pytest.skip("this machine has no address besides loopback to serve the model from")
    assert not result["model_host"].startswith("127.") and result["model_requests"] >= 1


def test_anything_else_is_refused_and_logged_without_content(run):
    result, output = run
    assert result["tcp_refused"] == result["dns_refused"] == result["udp_refused"] == "EgressRefused"
    assert result["http_refused"] == "ConnectError"  # httpx's name for the guard's refusal
    refusals = [line for line in output.splitlines() if "medical mode: refused" in line]
    assert result["refused"] == 4, "the app itself tried to reach out:\n" + "\n".join(refusals)
    assert any("example.org port 443" in line for line in refusals)
    assert any("a connection to 10.255.255.1 port 9" in line for line in refusals)


def test_the_entry_point_refuses_a_model_server_elsewhere_in_one_line(tmp_path):
    env = {"ASSISTANT_MEDICAL__ENABLED": "true", "ASSISTANT_MODEL__BACKEND": "openai",
           "ASSISTANT_MODEL__ENDPOINT": "https://api.example.com/v1", "ASSISTANT_DATA_DIR": str(tmp_path),
           "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "ui"], cwd=Path(__file__).parents[2], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip().startswith("error: ASSISTANT_MODEL__ENDPOINT='https://api.example.com/v1'")
    assert "ASSISTANT_MEDICAL__ALLOWED_HOSTS" in done.stderr and "Traceback" not in done.stderr
