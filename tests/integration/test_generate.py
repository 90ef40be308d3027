"""Generation through real workers: the tokens one session gives running the loop with its own cache,
for replicas and pipelines, greedy and seeded; and the same tokens when a worker holding the
session's state is killed mid-generation."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import onnx
import pytest

from edgeswarm.client import AsyncClient, Client, InvalidRequest, NotFound, ResourceExhausted
from edgeswarm.dev import zoo
from edgeswarm.dev.bench.generation import hop_figures, metered_workers
from edgeswarm.dev.llm import builtin_llm, tiny_llm
from edgeswarm.dev.localfleet import LocalFleet, wait_until
from edgeswarm.dev.reference import generate_reference
from edgeswarm.dev.texts import byte_tokenizer
from edgeswarm.sampling import Sampling

pytestmark = pytest.mark.integration

PROMPT = (1, 2, 3, 4, 5, 6, 7)


@pytest.fixture(scope="module")
def llm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("llm") / "tiny_llm.onnx"
    onnx.save(tiny_llm(layers=4), str(path))
    return path


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tokenizer") / "tokenizer.json"
    path.write_text(byte_tokenizer().to_str())
    return path


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, llm: Path, tokenizer: Path) -> Iterator[LocalFleet]:
    # Workers re-read often, so that what their sessions hold shows in status soon after it changes.
    env = {"EDGESWARM_COORDINATOR_DESCRIBE_INTERVAL": "0.5"}
    with LocalFleet(tmp_path_factory.mktemp("fleet"), workers=6, env=env) as fleet:
        fleet.wait_ready(timeout=60)
        with Client(fleet.coordinator_address) as client:
            client.deploy(llm, "llm-pipeline", mode="pipeline", stages=2, replicas=3, timeout=120)
            client.deploy(llm, "llm-1", mode="pipeline", stages=1, timeout=120)
            client.deploy(llm, "llm-3", mode="pipeline", stages=3, timeout=120)
            client.deploy(llm, "llm-replicas", mode="replicas", replicas=2, tokenizer=tokenizer, timeout=120)
        yield fleet


def test_text_in_and_out_with_the_models_tokenizer(fleet: LocalFleet, llm: Path) -> None:
    text_tokenizer = byte_tokenizer()
    prompt = "Once upon a time"  # its continuation holds characters of 2 and 3 bytes, one token each
    ids = text_tokenizer.encode(prompt).ids
    want = generate_reference(llm, ids, 20)
    whole = text_tokenizer.decode(want)
    plain = text_tokenizer.decode(generate_reference(llm, text_tokenizer.encode("abc").ids, 20))
    with Client(fleet.coordinator_address) as client:
        got = client.generate("llm-replicas", prompt=prompt, max_tokens=20, timeout=60)
        pieces = list(client.generate_stream("llm-replicas", prompt=prompt, max_tokens=20))
        stopped = client.generate("llm-replicas", prompt="abc", max_tokens=20, stop=plain[5:7])
    assert list(got.token_ids) == want and got.prompt_tokens == len(ids)
    assert any(len(c.encode()) > 1 for c in whole.replace("\ufffd", ""))  # multi-byte text came out
    assert got.text == whole == "".join(p.text for p in pieces)  # streamed text is the decoded whole
    # A stop string: the text ends before it, and the generation there.
    assert stopped.text == plain[: plain.index(plain[5:7])] and stopped.finish_reason == "stop"


@pytest.mark.parametrize("model", ["llm-pipeline", "llm-replicas"])
def test_greedy_tokens_equal_one_session_running_the_loop(fleet: LocalFleet, llm: Path, model: str) -> None:
    want = generate_reference(llm, PROMPT, 24)
    with Client(fleet.coordinator_address) as client:
        got = client.generate(model, token_ids=PROMPT, max_tokens=24, timeout=60)
        streamed = [t.token_id for t in client.generate_stream(model, token_ids=PROMPT, max_tokens=24)]
    assert list(got.token_ids) == want == streamed
    assert got.finish_reason == "length" and got.prompt_tokens == len(PROMPT) and got.completion_tokens == 24


def test_seeded_sampling_and_stop_tokens_equal_the_reference(fleet: LocalFleet, llm: Path) -> None:
    sampling = Sampling(temperature=0.8, top_k=40, top_p=0.95, seed=1234)
    want = generate_reference(llm, PROMPT, 32, sampling)
    stop = want[10]
    with Client(fleet.coordinator_address) as client:
        got = client.generate("llm-pipeline", token_ids=PROMPT, max_tokens=32, temperature=0.8, top_k=40,
                              top_p=0.95, seed=1234, timeout=60)  # fmt: skip
        stopped = client.generate("llm-pipeline", token_ids=PROMPT, max_tokens=32, temperature=0.8,
                                  top_k=40, top_p=0.95, seed=1234, stop_token_ids=[stop])  # fmt: skip
    assert list(got.token_ids) == want
    assert list(stopped.token_ids) == want[: want.index(stop) + 1] and stopped.finish_reason == "stop"


def test_bad_generations_are_refused_precisely(fleet: LocalFleet, llm: Path, tmp_path: Path) -> None:
    mlp = tmp_path / "mlp.onnx"
    onnx.save(zoo.mlp(layers=2, width=8, in_features=4, out_features=2), str(mlp))
    with Client(fleet.coordinator_address) as client:
        client.deploy(mlp, "mlp", mode="replicas", timeout=60)
        with pytest.raises(InvalidRequest, match="'mlp' is not a decoder"):
            client.generate("mlp", token_ids=PROMPT)
        with pytest.raises(InvalidRequest, match="has no tokenizer"):
            client.generate("llm-pipeline", prompt="hello")
        with pytest.raises(InvalidRequest, match="max_tokens must be"):
            client.generate("llm-pipeline", token_ids=PROMPT, max_tokens=0)
        with pytest.raises(InvalidRequest, match="temperature"):
            client.generate("llm-pipeline", token_ids=PROMPT, temperature=-1)
        client.undeploy("mlp")
        assert len(client.generate("llm-pipeline", token_ids=PROMPT, max_tokens=3).token_ids) == 3


def test_the_cli_prints_tokens_as_they_come(fleet: LocalFleet, llm: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "edgeswarm", "generate", "llm-replicas", "--token-ids", "1,2,3,4,5,6,7",
         "--max-tokens", "8", "--json", "--coordinator", fleet.coordinator_address],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert (
        [line["token_id"] for line in lines[:-1]]
        == lines[-1]["token_ids"]
        == generate_reference(llm, PROMPT, 8)
    )
    assert lines[-1]["finish_reason"] == "length"


@pytest.mark.parametrize("model", ["llm-1", "llm-pipeline", "llm-3"])
def test_128_greedy_tokens_through_1_2_and_3_stages_equal_the_reference(
    fleet: LocalFleet, llm: Path, model: str
) -> None:
    with Client(fleet.coordinator_address) as client:
        got = client.generate(model, token_ids=PROMPT, max_tokens=128, timeout=120)
    assert list(got.token_ids) == generate_reference(llm, PROMPT, 128)


def test_128_greedy_tokens_of_the_builtin_llm_through_1_2_and_3_stages_equal_the_reference(
    fleet: LocalFleet, tmp_path: Path
) -> None:
    """The demo's LLM (8 layers, width 384, grouped-query attention, 512 tokens), as deployed by
    `edgeswarm demo`, on the fleet's workers beside the other models."""
    path = tmp_path / "builtin.onnx"
    onnx.save(builtin_llm(), str(path))
    want = generate_reference(path, PROMPT, 128)
    with Client(fleet.coordinator_address) as client:
        for stages in (1, 2, 3):
            client.deploy(path, f"builtin-{stages}", mode="pipeline", stages=stages, timeout=120)
            got = client.generate(f"builtin-{stages}", token_ids=PROMPT, max_tokens=128, timeout=120)
            client.undeploy(f"builtin-{stages}")
            assert list(got.token_ids) == want, stages


def test_eight_sessions_at_once_each_equal_its_lone_run(fleet: LocalFleet, llm: Path) -> None:
    prompts = [tuple(range(i + 1, i + 8)) for i in range(8)]

    async def all_at_once() -> list[list[int]]:
        async with AsyncClient(fleet.coordinator_address) as client:

            async def one(prompt: tuple[int, ...]) -> list[int]:
                stream = client.generate_stream("llm-pipeline", token_ids=prompt, max_tokens=40, timeout=120)
                return [t.token_id async for t in stream]

            return list(await asyncio.gather(*(one(p) for p in prompts)))

    assert asyncio.run(all_at_once()) == [generate_reference(llm, p, 40) for p in prompts]


def test_a_client_gone_mid_stream_frees_its_session_on_every_worker(fleet: LocalFleet) -> None:
    with Client(fleet.coordinator_address) as client:
        stream = client.generate_stream("llm-3", token_ids=PROMPT, max_tokens=4000, timeout=120)
        for i, _ in enumerate(stream):
            if i == 5:
                break
        stream.close()
        wait_until(
            lambda: all(w.session_bytes == 0 for w in client.status().workers), 20, "every session freed"
        )
        with pytest.raises(InvalidRequest, match="exceed the context of 32768 tokens"):
            client.generate("llm-3", token_ids=list(range(1, 101)) * 330, max_tokens=10)
        with pytest.raises(NotFound, match="'nothing' is not deployed"):
            client.generate("nothing", token_ids=PROMPT)


def test_only_the_new_tokens_hidden_states_cross_a_boundary(  # type: ignore[no-untyped-def]
    make_fleet, llm: Path, tmp_path: Path
) -> None:
    """For the tiny LLM, and for its twin whose mask and rotary tables are computed once and read by
    every layer (as exports do): there, each stage computes them again instead of receiving them,
    also when the model comes with its weights in external data (cut from disk)."""
    shared, external = tmp_path / "shared.onnx", tmp_path / "external" / "llm.onnx"
    onnx.save(tiny_llm(layers=4, shared_positions=True), str(shared))
    external.parent.mkdir()
    onnx.save(
        tiny_llm(layers=4, shared_positions=True), str(external),
        save_as_external_data=True, location="llm.data", size_threshold=1024,
    )  # fmt: skip
    fleet = make_fleet(workers=0)
    metrics = metered_workers(fleet, 2)
    tokens, width = 64, 64  # the tiny LLM's hidden state: 64 float32 a token
    with Client(fleet.coordinator_address) as client:
        for model, path in (("llm", llm), ("llm-shared", shared), ("llm-external", external)):
            client.deploy(path, model, mode="pipeline", stages=2, timeout=120)
            got = client.generate(model, token_ids=PROMPT, max_tokens=tokens, timeout=120)
            assert list(got.token_ids) == generate_reference(path, PROMPT, tokens)
    for model in ("llm", "llm-shared", "llm-external"):
        sent = {name: hop_figures(address, model) for name, address in metrics.items()}
        # One worker sends on the prompt's hidden states once (prefill), then one token's per step;
        # the last stage sends nothing on. Were the cache, or a mask over the context, to cross, the
        # count would be far larger.
        steps = tokens  # the prefill, and a step per generated token but the last
        hidden = float((len(PROMPT) + steps - 1) * width * 4)
        assert sorted(sent.values()) == [(0.0, 0.0), (float(steps), hidden)], model


@pytest.mark.parametrize("how", ["drain", "freeze", "kill"])
def test_a_worker_lost_mid_generation_loses_no_token_and_changes_none(
    fleet: LocalFleet, llm: Path, how: str
) -> None:
    """The worker holding the session's ring is drained (SIGTERM), frozen (SIGSTOP: only health
    probes tell) or killed after the 5th token of 160. Each leaves the fleet a worker less: 6 hold
    3 replicas of each of the 2 stages."""
    want = generate_reference(llm, PROMPT, 160)

    def rings() -> dict[str, int]:
        return {w: fleet.log(w).count("ring_started") for w in fleet.workers}

    before, moved = rings(), fleet.log("coordinator").count("session_moved")
    got = []
    holder = ""
    with Client(fleet.coordinator_address) as client:
        for token in client.generate_stream("llm-pipeline", token_ids=PROMPT, max_tokens=160, timeout=120):
            got.append(token.token_id)
            if len(got) == 5:
                holder = next(w for w, count in rings().items() if count > before[w])
                signal_of = {"drain": signal.SIGTERM, "freeze": signal.SIGSTOP, "kill": signal.SIGKILL}
                fleet.signal_worker(holder, signal_of[how])
    if how == "freeze":
        fleet.signal_worker(holder, signal.SIGCONT)
    assert got == want
    assert fleet.log("coordinator").count("session_moved") > moved


def test_session_memory_is_reported_and_a_session_over_it_is_refused_clearly(
    make_fleet,
    llm: Path,  # type: ignore[no-untyped-def]
) -> None:
    # About 1 KiB of key/value state a token for the whole tiny model: 24 KiB holds ~24 tokens.
    fleet = make_fleet(workers=1, env={"EDGESWARM_WORKER_SESSION_MEMORY": str(24 * 1024)})
    with Client(fleet.coordinator_address) as client:
        client.deploy(llm, "llm", mode="replicas", timeout=120)
        worker = client.status().workers[0]
        assert worker.session_memory == 24 * 1024 and worker.session_bytes == 0
        assert list(client.generate("llm", token_ids=PROMPT, max_tokens=8).token_ids) == generate_reference(
            llm, PROMPT, 8
        )
        with pytest.raises(ResourceExhausted, match=r"more than this worker's session memory of 24576 bytes"):
            client.generate("llm", token_ids=PROMPT, max_tokens=64)
        assert len(client.generate("llm", token_ids=PROMPT, max_tokens=4).token_ids) == 4  # still serving
