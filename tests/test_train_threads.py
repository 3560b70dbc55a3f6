"""CPU thread choice for training: measured, never overriding OMP_NUM_THREADS."""

from __future__ import annotations

import torch

from paprec_cli.training.loop import cpu_threads


def test_omp_num_threads_wins(monkeypatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    before = torch.get_num_threads()
    assert cpu_threads("cpu") == before
    assert torch.get_num_threads() == before


def test_measured_choice_is_one_or_the_default(monkeypatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        chosen = cpu_threads("cpu", size=32, repeats=2)
        assert chosen in (1, 2)
        assert torch.get_num_threads() == chosen
    finally:
        torch.set_num_threads(before)


def test_non_cpu_devices_are_left_alone(monkeypatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    assert cpu_threads("cuda") == before
