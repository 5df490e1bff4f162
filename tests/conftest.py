"""Shared fixtures. The environment is made offline before anything imports transformers or gradio."""

from __future__ import annotations

import os

os.environ.update(
    GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
    HF_HUB_DISABLE_TELEMETRY="1", ANONYMIZED_TELEMETRY="False", TOKENIZERS_PARALLELISM="false",
)

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from tests.helpers.images import write_image  # noqa: E402


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """Tiny random models of the real architectures, saved to disk once per test session."""
    from tests.helpers.tiny_models import build_all

    return build_all(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture(scope="session")
def medical_run(tmp_path_factory) -> tuple[dict, str]:
    """The real app in medical mode, run once per session in a process of its own (``tests.helpers.medical``):
    what it found, and everything it printed. The egress and the log tests read the same run."""
    from tests.helpers import medical

    return medical.run(tmp_path_factory.mktemp("medical"))


@pytest.fixture
def red_png(tmp_path) -> Path:
    return write_image(tmp_path / "red.png", (200, 120), "red")


@pytest.fixture
def blue_png(tmp_path) -> Path:
    return write_image(tmp_path / "blue.png", (90, 160), "blue")
