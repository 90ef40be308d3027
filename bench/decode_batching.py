"""Would batching decode steps of several sessions keep each session's bits? One ONNX Runtime session
(the workers' options) on the tiny LLM and the built-in one; each batched row against the same step
run alone.

    python bench/decode_batching.py

- same position: B sessions at the same length, their caches stacked on the batch axis;
- ragged: two sessions of different lengths, the shorter one's cache padded on the left with zeros
  and masked out by `attention_mask` (the usual way to batch sessions that are not in step).
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from edgeswarm.dev.llm import builtin_llm, tiny_llm
from edgeswarm.dev.reference import reference_session

Cache = dict[str, np.ndarray]


def run(
    session: ort.InferenceSession, ids: list[int], cache: Cache, mask: np.ndarray, positions: np.ndarray
) -> tuple[np.ndarray, Cache]:
    outputs = [o.name for o in session.get_outputs()]
    feeds = {"input_ids": np.array(ids, np.int64)[:, None], "attention_mask": mask, "position_ids": positions}
    values = dict(zip(outputs, session.run(outputs, {**feeds, **cache}), strict=True))
    following = {
        "past_key_values." + k.removeprefix("present."): v for k, v in values.items() if "present" in k
    }
    return values["logits"][:, -1], following


def alone(
    session: ort.InferenceSession, prompt: list[int], steps: int
) -> tuple[list[np.ndarray], list[Cache]]:
    """Each step's last logits row and the cache after it, for one session running greedily."""
    cache = {
        i.name: np.zeros((1, i.shape[1], 0, i.shape[3]), np.float32)
        for i in session.get_inputs()
        if i.name.startswith("past_key_values.")
    }
    outputs = [o.name for o in session.get_outputs()]
    ids, past, logits, caches = prompt, 0, [], []
    for _ in range(steps):
        total = past + len(ids)
        feeds = {
            "input_ids": np.array([ids], np.int64),
            "attention_mask": np.ones((1, total), np.int64),
            "position_ids": np.arange(past, total)[None],
        }
        values = dict(zip(outputs, session.run(outputs, {**feeds, **cache}), strict=True))
        logits.append(values["logits"][0, -1])
        cache = {
            "past_key_values." + k.removeprefix("present."): v for k, v in values.items() if "present" in k
        }
        caches.append(cache)
        ids, past = [int(logits[-1].argmax())], total
    return logits, caches


def left_padded(cache: Cache, length: int) -> Cache:
    return {
        k: np.concatenate([np.zeros((*v.shape[:2], length - v.shape[2], v.shape[3]), v.dtype), v], axis=2)
        for k, v in cache.items()
    }


def main() -> None:
    print("| model | batch | sessions' positions | rows identical to alone | largest difference |")
    print("| --- | ---: | --- | ---: | ---: |")
    for name, model in (("tiny LLM", tiny_llm()), ("built-in LLM", builtin_llm())):
        session = reference_session(model)
        a, b, step = list(range(1, 17)), list(range(5, 30)), 3
        logits_a, caches_a = alone(session, a, step + 1)
        logits_b, caches_b = alone(session, b, step + 1)
        token_a, token_b = int(logits_a[step - 1].argmax()), int(logits_b[step - 1].argmax())
        past_a, past_b = len(a) + step - 1, len(b) + step - 1
        for batch in (2, 8):
            stacked = {k: np.concatenate([v] * batch) for k, v in caches_a[step - 1].items()}
            got, _ = run(
                session, [token_a] * batch, stacked,
                np.ones((batch, past_a + 1), np.int64), np.full((batch, 1), past_a),
            )  # fmt: skip
            same = sum(np.array_equal(row, logits_a[step]) for row in got)
            worst = max(float(np.abs(row - logits_a[step]).max()) for row in got)
            print(f"| {name} | {batch} | all {past_a} | {same}/{batch} | {worst:.1e} |")
        longest = max(past_a, past_b)
        padded = {
            k: np.concatenate(
                [left_padded(caches_a[step - 1], longest)[k], left_padded(caches_b[step - 1], longest)[k]]
            )
            for k in caches_a[step - 1]
        }
        mask = np.zeros((2, longest + 1), np.int64)
        mask[0, longest - past_a :], mask[1, longest - past_b :] = 1, 1
        got, _ = run(session, [token_a, token_b], padded, mask, np.array([[past_a], [past_b]]))
        want = (logits_a[step], logits_b[step])
        same = sum(np.array_equal(row, w) for row, w in zip(got, want, strict=True))
        worst = max(float(np.abs(row - w).max()) for row, w in zip(got, want, strict=True))
        print(f"| {name} | 2 | {past_a} and {past_b} (ragged) | {same}/2 | {worst:.1e} |")


if __name__ == "__main__":
    main()
