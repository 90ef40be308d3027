"""Latency estimates for routing: peak-sensitive, smoothed downwards, decaying while unused."""

import math

import pytest

from edgeswarm.coordinator.serving.latency import SMOOTHING, PeakEwma, slowness


def test_nothing_known_reads_zero() -> None:
    assert PeakEwma().estimate("m", "a", 0.0) == 0.0


def test_a_slower_sample_replaces_the_estimate_at_once() -> None:
    ewma = PeakEwma(decay_s=2.0)
    ewma.observe("m", "a", 0.02, now=0.0)
    ewma.observe("m", "a", 1.5, now=0.0)
    assert ewma.estimate("m", "a", 0.0) == 1.5


def test_a_faster_sample_moves_the_estimate_part_of_the_way() -> None:
    ewma = PeakEwma(decay_s=2.0)
    ewma.observe("m", "a", 1.0, now=0.0)
    ewma.observe("m", "a", 0.2, now=0.0)
    assert ewma.estimate("m", "a", 0.0) == pytest.approx(1.0 - SMOOTHING * 0.8)


def test_an_unused_estimate_decays_with_the_time_constant() -> None:
    ewma = PeakEwma(decay_s=2.0)
    ewma.observe("m", "a", 1.0, now=10.0)
    assert ewma.estimate("m", "a", 12.0) == pytest.approx(math.exp(-1))
    assert ewma.estimate("m", "a", 9.0) == 1.0  # a clock read before the sample does not grow it


def test_estimates_are_per_model_and_forgotten_per_worker() -> None:
    ewma = PeakEwma()
    ewma.observe("m", "a", 1.0, now=0.0)
    ewma.observe("n", "a", 2.0, now=0.0)
    ewma.observe("m", "b", 3.0, now=0.0)
    assert (ewma.estimate("m", "a", 0.0), ewma.estimate("n", "a", 0.0)) == (1.0, 2.0)
    ewma.forget("a")
    assert (ewma.estimate("m", "a", 0.0), ewma.estimate("n", "a", 0.0)) == (0.0, 0.0)
    assert ewma.estimate("m", "b", 0.0) == 3.0


def test_the_time_constant_must_be_positive() -> None:
    with pytest.raises(ValueError, match="decay_s"):
        PeakEwma(decay_s=0)


def test_slowness_counts_whole_multiples_of_the_fastest() -> None:
    assert slowness({"a": 0.02, "b": 0.039, "c": 0.2, "d": 0.0}) == {"a": 1, "b": 1, "c": 10, "d": 1}
    assert slowness({"a": 0.0, "b": 0.0}) == {"a": 1, "b": 1}
