import threading

import pytest

from assistant.errors import AssistantError, ModelLoadError
from assistant.loading import Background


def test_states_from_idle_to_ready():
    gate = threading.Event()
    bg = Background("thing", lambda: gate.wait(5) and 42)
    assert bg.status().state == "idle"
    bg.start()
    assert bg.status().state == "loading" and "loading" in bg.status().message
    gate.set()
    assert bg.get(timeout=5) == 42 and bg.status().state == "ready"


def test_failure_is_kept_and_raised_to_every_caller():
    def fail():
        raise ModelLoadError("no such model 'x'; set ASSISTANT_MODEL__CHECKPOINT")

    bg = Background("model", fail).start()
    for _ in range(2):
        with pytest.raises(ModelLoadError, match="ASSISTANT_MODEL__CHECKPOINT"):
            bg.get(timeout=5)
    assert bg.status().state == "failed"


def test_unexpected_failure_still_ends_loading():
    bg = Background("model", lambda: 1 / 0).start()
    with pytest.raises(AssistantError, match="ZeroDivisionError"):
        bg.get(timeout=5)
    assert bg.status().state == "failed"


def test_loads_once():
    calls = []
    bg = Background("x", lambda: calls.append(1) or len(calls))
    assert [bg.start().get(timeout=5) for _ in range(3)] == [1, 1, 1]


def test_a_load_says_what_it_is_doing_on_its_status_line():
    """A knowledge base re-embedded for a new embedder reports its progress while it loads."""
    from assistant.composition import _reembedding
    from assistant.loading import report

    step, go_on = threading.Event(), threading.Event()

    def load():
        _reembedding(120, 500)
        step.set()
        go_on.wait(10)
        return "loaded"

    loader = Background("knowledge base", load).start()
    assert step.wait(10)
    status = loader.status()
    assert status.state == "loading"
    assert "re-embedding for the new embedder, 120 of 500 passages" in status.message
    go_on.set()
    assert loader.get(10) == "loaded" and loader.status().message == "knowledge base: ready"
    report("outside any load: logged, nothing else")  # no loader in this thread: no effect
