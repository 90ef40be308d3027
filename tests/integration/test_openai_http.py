"""The OpenAI-compatible HTTP API of a secure fleet, through the unmodified `openai` client: text and
chat completions, whole and streamed, equal to one session running the loop; errors as the client's
own exceptions; HTTPS with the fleet's certificate; a client gone mid-stream ends its generation."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx2
import onnx
import openai
import pytest

from edgeswarm.client import load_credentials
from edgeswarm.coordinator.serving.tokenizing import chat_prompt
from edgeswarm.dev.llm import tiny_llm
from edgeswarm.dev.localfleet import LOOPBACK, LocalFleet, free_port, wait_until
from edgeswarm.dev.reference import generate_reference
from edgeswarm.dev.texts import byte_tokenizer

pytestmark = pytest.mark.integration

# A Jinja chat template as tokenizer configs carry them (Hugging Face's conventions).
TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}[{{ m['role'] | upper }}] {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}[ASSISTANT] {% endif %}"
)
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}]


@pytest.fixture(scope="module")
def llm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("llm") / "tiny_llm.onnx"
    onnx.save(tiny_llm(layers=4), str(path))
    return path


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, llm: Path) -> Iterator[LocalFleet]:
    workdir = tmp_path_factory.mktemp("openai")
    tokenizer = workdir / "tokenizer.json"
    tokenizer.write_text(byte_tokenizer().to_str())
    http = f"{LOOPBACK}:{free_port()}"
    with LocalFleet(workdir, workers=2, secure=True, coordinator_args=("--http", http)) as fleet:
        fleet.http = http  # type: ignore[attr-defined]
        fleet.wait_ready(timeout=60)
        # The same model with a tokenizer folder whose config has a chat template of its own.
        folder = workdir / "templated"
        folder.mkdir()
        (folder / "tokenizer.json").write_text(byte_tokenizer().to_str())
        (folder / "tokenizer_config.json").write_text(
            json.dumps({"chat_template": TEMPLATE, "bos_token": "^"})
        )
        with fleet.client() as admin:
            admin.deploy(llm, "llm", mode="pipeline", stages=2, tokenizer=tokenizer, timeout=120)
            admin.deploy(llm, "llm-templated", mode="replicas", tokenizer=folder, timeout=120)
        yield fleet


@pytest.fixture(scope="module")
def tls(fleet: LocalFleet) -> ssl.SSLContext:
    assert fleet.credentials is not None
    return ssl.create_default_context(cadata=load_credentials(fleet.credentials).ca.decode())


def base_url(fleet: LocalFleet) -> str:
    return f"https://{fleet.http}/v1"  # type: ignore[attr-defined]


def api(fleet: LocalFleet, tls: ssl.SSLContext, token: str | None = None) -> openai.OpenAI:
    assert fleet.credentials is not None
    key = token if token is not None else load_credentials(fleet.credentials).token
    http = httpx2.Client(verify=tls, timeout=60)
    return openai.OpenAI(base_url=base_url(fleet), api_key=key, http_client=http, max_retries=0)


@pytest.fixture(scope="module")
def client(fleet: LocalFleet, tls: ssl.SSLContext) -> Iterator[openai.OpenAI]:
    with api(fleet, tls) as client:
        yield client


def expected(llm: Path, prompt: str, max_tokens: int) -> tuple[list[int], str]:
    """The prompt's ids and the text one session running the loop greedily makes of it."""
    tokenizer = byte_tokenizer()
    ids = tokenizer.encode(prompt).ids
    return ids, tokenizer.decode(generate_reference(llm, ids, max_tokens))


def test_models_lists_the_decoder(client: openai.OpenAI) -> None:
    models = client.models.list().data
    assert "llm" in [m.id for m in models]
    assert all(m.owned_by == "edgeswarm" and m.object == "model" for m in models)


def test_completions_equal_the_reference_whole_and_streamed(client: openai.OpenAI, llm: Path) -> None:
    ids, want = expected(llm, "abc", 12)
    whole = client.completions.create(model="llm", prompt="abc", max_tokens=12, temperature=0)
    by_ids = client.completions.create(model="llm", prompt=ids, max_tokens=12, temperature=0)
    chunks = list(
        client.completions.create(model="llm", prompt="abc", max_tokens=12, temperature=0, stream=True,
                                  stream_options={"include_usage": True})
    )  # fmt: skip
    assert whole.object == "text_completion" and whole.model == "llm" and whole.id.startswith("cmpl-")
    assert whole.choices[0].text == by_ids.choices[0].text == want
    assert whole.choices[0].finish_reason == "length"
    assert whole.usage is not None and by_ids.usage is not None
    assert (whole.usage.prompt_tokens, whole.usage.completion_tokens, whole.usage.total_tokens) == (
        len(ids), 12, len(ids) + 12,
    )  # fmt: skip
    assert by_ids.usage.prompt_tokens == len(ids)
    *tokens, finish, usage = chunks
    assert len(tokens) == 12 and all(c.choices[0].finish_reason is None for c in tokens)
    assert "".join(c.choices[0].text for c in tokens) == want
    assert finish.choices[0].finish_reason == "length"
    assert usage.choices == [] and usage.usage is not None and usage.usage.completion_tokens == 12


def test_chat_completions_equal_the_reference_whole_and_streamed(client: openai.OpenAI, llm: Path) -> None:
    ids, want = expected(llm, chat_prompt(MESSAGES), 10)
    whole = client.chat.completions.create(model="llm", messages=MESSAGES, max_tokens=10, temperature=0)
    chunks = list(
        client.chat.completions.create(
            model="llm", messages=MESSAGES, max_tokens=10, temperature=0, stream=True
        )
    )
    assert whole.object == "chat.completion" and whole.choices[0].message.role == "assistant"
    assert whole.choices[0].message.content == want and whole.choices[0].finish_reason == "length"
    assert whole.usage is not None and whole.usage.prompt_tokens == len(ids)
    first, *tokens, finish = chunks
    assert first.object == "chat.completion.chunk" and first.choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in tokens) == want and len(tokens) == 10
    assert finish.choices[0].finish_reason == "length"


def test_errors_are_the_clients_own_exceptions(
    fleet: LocalFleet, tls: ssl.SSLContext, client: openai.OpenAI
) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.completions.create(model="nope", prompt="abc", max_tokens=2)
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError, match="max_tokens"):
        client.completions.create(model="llm", prompt="abc", max_tokens=0)
    with pytest.raises(openai.BadRequestError, match="one prompt per request"):
        client.completions.create(model="llm", prompt=["a", "b"], max_tokens=2)
    with api(fleet, tls, token="not-a-token") as stranger, pytest.raises(openai.AuthenticationError):
        stranger.models.list()
    with fleet.client() as admin:
        worker_token, _ = admin.create_token("worker", description="not a client")
        client_token, _ = admin.create_token("client", description="openai test")
    with api(fleet, tls, token=worker_token) as worker, pytest.raises(openai.PermissionDeniedError):
        worker.completions.create(model="llm", prompt="abc", max_tokens=2)
    with api(fleet, tls, token=client_token) as user:
        answer = user.completions.create(model="llm", prompt="abc", max_tokens=2)
    assert answer.usage is not None and answer.usage.completion_tokens == 2


def test_raw_requests_get_error_objects_over_https_only(fleet: LocalFleet, tls: ssl.SSLContext) -> None:
    assert fleet.credentials is not None
    bearer = {"Authorization": f"Bearer {load_credentials(fleet.credentials).token}"}
    with httpx2.Client(verify=tls, base_url=base_url(fleet), timeout=30) as http:
        anonymous = http.get("/models")
        bad_json = http.post("/completions", content=b"{", headers=bearer)
        too_big = http.post("/completions", content=b" " * (5 << 20), headers=bearer)
        unknown = http.get("/nothing")
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"] == "Bearer"
    assert anonymous.json()["error"]["type"] == "authentication_error"
    assert bad_json.status_code == 400 and "not JSON" in bad_json.json()["error"]["message"]
    assert too_big.status_code == 413 and too_big.json()["error"]["type"] == "invalid_request_error"
    assert unknown.status_code == 404 and "error" in unknown.json()
    # The fleet's certificate is no public CA's: a client that does not trust the fleet CA refuses it.
    with httpx2.Client() as public, pytest.raises(httpx2.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        public.get(f"{base_url(fleet)}/models")


def test_a_client_gone_mid_stream_ends_its_generation(fleet: LocalFleet, client: openai.OpenAI) -> None:
    stream = client.completions.create(model="llm", prompt="abc", max_tokens=2000, temperature=0, stream=True)
    for i, _ in enumerate(stream):
        if i == 3:
            break
    stream.close()
    # Logged once the generation is closed, the workers told to drop its state.
    wait_until(lambda: "finish=none" in fleet.log("coordinator"), 20, "the generation to end")
    assert "http_client_gone" in fleet.log("coordinator")
    assert "tokens=2000" not in fleet.log("coordinator")


def test_a_chat_uses_the_template_of_the_tokenizer_config(client: openai.OpenAI, llm: Path) -> None:
    rendered = "^[SYSTEM] Be brief.\n[USER] Hello there\n[ASSISTANT] "
    _, want = expected(llm, rendered, 10)
    chat = client.chat.completions.create(
        model="llm-templated", messages=MESSAGES, max_tokens=10, temperature=0
    )
    assert chat.choices[0].message.content == want
    assert chat.usage is not None and chat.usage.prompt_tokens == len(byte_tokenizer().encode(rendered).ids)
