"""SIGKILL during ingest, 50 times: every store recovers, nothing acknowledged is lost, nothing doubles."""

import pytest

from tests.helpers.crash import run_kills

pytestmark = pytest.mark.integration


def test_fifty_kills_during_ingest(tmp_path):
    stats = run_kills(tmp_path, kills=50, per_store=2, seed=1)
    assert stats.kills == 50
    assert (stats.unusable, stats.lost, stats.duplicates) == (0, 0, 0), stats.problems[:5]
