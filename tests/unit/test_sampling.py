"""The one sampling function workers and the reference loop share: pure, seeded by (seed, step)."""

from __future__ import annotations

import numpy as np
import pytest

from edgeswarm.errors import InvalidRequest
from edgeswarm.sampling import Sampling, sample, stopped


def logits_row(seed: int = 0, vocab: int = 50) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(vocab).astype(np.float32)


def test_greedy_is_argmax_and_ties_go_to_the_lowest_index() -> None:
    for seed in range(5):
        row = logits_row(seed)
        assert sample(row, Sampling(), step=seed) == int(np.argmax(row))
    assert sample(np.array([0.0, 3.0, 3.0, 1.0], np.float32), Sampling(), 0) == 1


def test_the_same_seed_and_step_give_the_same_token_and_steps_differ() -> None:
    row = np.zeros(100, np.float32)  # uniform: any token may come
    sampling = Sampling(temperature=1.0, seed=42)
    first = [sample(row, sampling, step) for step in range(40)]
    assert first == [sample(row, sampling, step) for step in range(40)]
    assert len(set(first)) > 10
    assert first != [sample(row, Sampling(temperature=1.0, seed=43), step) for step in range(40)]


def test_a_draw_depends_on_nothing_but_its_arguments() -> None:
    """Replaying step 5 after other draws (a failover) gives the token it gave the first time."""
    row, sampling = logits_row(1), Sampling(temperature=0.8, top_k=20, top_p=0.9, seed=7)
    first = sample(row, sampling, 5)
    for step in range(10):
        sample(row, sampling, step)
    assert sample(row.copy(), Sampling(temperature=0.8, top_k=20, top_p=0.9, seed=7), 5) == first


@pytest.mark.parametrize("temperature", [0.01, 0.5, 1.0, 3.0, 100.0])
def test_top_k_one_is_greedy_at_any_temperature(temperature: float) -> None:
    tied = np.array([1.0, 5.0, 2.0, 5.0], np.float32)
    for seed, row in enumerate([logits_row(0), logits_row(1), tied]):
        sampling = Sampling(temperature=temperature, top_k=1, seed=seed)
        assert {sample(row, sampling, step) for step in range(20)} == {int(np.argmax(row))}


def test_a_tiny_top_p_is_greedy() -> None:
    for seed in range(5):
        row = logits_row(seed)
        sampling = Sampling(temperature=2.0, top_p=1e-6, seed=seed)
        assert {sample(row, sampling, step) for step in range(20)} == {int(np.argmax(row))}


def test_tokens_cut_by_top_k_or_top_p_are_never_drawn() -> None:
    row = np.arange(10, dtype=np.float32)  # token 9 likeliest, then 8, ...
    by_k = {sample(row, Sampling(temperature=5.0, top_k=3, seed=1), step) for step in range(500)}
    assert by_k == {7, 8, 9}
    # softmax of 0..9: token 9 has 0.63, 8 has 0.23 (0.86 together), 7 has 0.09
    by_p = {sample(row, Sampling(temperature=1.0, top_p=0.8, seed=1), step) for step in range(500)}
    assert by_p == {8, 9}


def test_ties_at_the_top_k_boundary_keep_the_lower_index() -> None:
    row = np.array([1.0, 4.0, 2.0, 4.0, 4.0], np.float32)
    drawn = {sample(row, Sampling(temperature=1.0, top_k=2, seed=0), step) for step in range(200)}
    assert drawn == {1, 3}


def test_draws_follow_the_softmax() -> None:
    probs = np.array([0.5, 0.3, 0.2])
    row = np.log(probs).astype(np.float32)
    draws = [sample(row, Sampling(temperature=1.0, seed=3), step) for step in range(4000)]
    np.testing.assert_allclose(np.bincount(draws, minlength=3) / 4000, probs, atol=0.03)
    sharp = [sample(row, Sampling(temperature=0.25, seed=3), step) for step in range(4000)]
    expected = probs**4 / (probs**4).sum()
    np.testing.assert_allclose(np.bincount(sharp, minlength=3) / 4000, expected, atol=0.03)


def test_no_seed_still_draws_a_kept_token() -> None:
    row = np.arange(10, dtype=np.float32)
    assert {sample(row, Sampling(temperature=1.0, top_k=2), step) for step in range(50)} <= {8, 9}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"temperature": -0.1}, "temperature must be a finite number >= 0"),
        ({"temperature": float("nan")}, "temperature must be a finite number >= 0"),
        ({"temperature": float("inf")}, "temperature must be a finite number >= 0"),
        ({"top_k": -1}, "top_k must be an integer >= 0"),
        ({"top_k": 2.5}, "top_k must be an integer >= 0"),
        ({"top_p": 0.0}, r"top_p must be in \(0, 1\]"),
        ({"top_p": 1.5}, r"top_p must be in \(0, 1\]"),
        ({"seed": -1}, r"seed must be None or an integer in 0..2\*\*63-1"),
        ({"seed": 2**63}, r"seed must be None or an integer in 0..2\*\*63-1"),
        ({"seed": True}, "seed must be None or an integer"),
    ],
)
def test_invalid_parameters_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        Sampling(**kwargs)  # type: ignore[arg-type]


def test_the_largest_seed_is_accepted() -> None:
    row = logits_row()
    assert sample(row, Sampling(temperature=1.0, seed=2**63 - 1), 0) in range(row.size)


def test_logits_must_be_one_row_and_steps_count_from_zero() -> None:
    with pytest.raises(ValueError, match="one non-empty row"):
        sample(np.zeros((2, 5), np.float32), Sampling(), 0)
    with pytest.raises(ValueError, match="step must be >= 0"):
        sample(np.zeros(5, np.float32), Sampling(temperature=1.0, seed=0), -1)


def test_stopped_looks_at_the_last_token_only() -> None:
    assert stopped([4, 2], {2})
    assert not stopped([2, 4], {2})
    assert not stopped([], {2})
    assert not stopped([2], ())
