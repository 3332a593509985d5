"""How many threads the bundled model's server gets: one fewer than the usable cores
unless configured (bench/results/local_llm.json says why)."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend import local_llm
from backend.local_llm import LocalLLMServer, default_threads
from backend.settings import Settings


@pytest.mark.parametrize(("cores", "threads"), [(1, 1), (2, 1), (4, 3), (16, 15)])
def test_one_core_is_left_for_the_server_itself(monkeypatch: pytest.MonkeyPatch, cores: int, threads: int) -> None:
    monkeypatch.setattr(local_llm.os, "sched_getaffinity", lambda _pid: set(range(cores)), raising=False)
    assert default_threads() == threads
    assert LocalLLMServer(Path("model.gguf"), port=1).threads == threads
    assert LocalLLMServer(Path("model.gguf"), port=1, threads=4).threads == 4


def test_the_setting_is_unset_by_default_and_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EXPERTGATE_LOCAL_LLM_THREADS", raising=False)
    assert Settings().local_llm_threads is None
    monkeypatch.setenv("EXPERTGATE_LOCAL_LLM_THREADS", "3")
    assert Settings().local_llm_threads == 3
    monkeypatch.setenv("EXPERTGATE_LOCAL_LLM_THREADS", "0")
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        Settings()
