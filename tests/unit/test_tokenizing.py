"""Streamed text: equal to the decoded whole, a multi-byte character held until it is complete, and
cut before a stop string that may span tokens."""

from __future__ import annotations

import json

import pytest

from edgeswarm.coordinator.serving.tokenizing import (
    Detokenizer,
    TextStream,
    chat_prompt,
    chat_template,
    load_tokenizer,
)
from edgeswarm.dev.texts import byte_tokenizer
from edgeswarm.errors import InvalidRequest


def test_a_character_of_several_bytes_is_sent_once_complete() -> None:
    tokenizer = byte_tokenizer()
    ids = tokenizer.encode("a✓b").ids  # ✓ is 3 bytes, 3 tokens
    detokenizer = Detokenizer(tokenizer)
    deltas = [detokenizer.push(i) for i in ids]
    assert deltas == ["a", "", "", "✓", "b"]


def test_stop_strings_spanning_tokens_cut_the_text_and_what_was_sent_is_the_final_text() -> None:
    tokenizer = byte_tokenizer()
    stream = TextStream(tokenizer, ["END", "zz"])
    sent = ""
    for token in tokenizer.encode("hello wENDorld").ids:
        sent += stream.push(token)
        if stream.stopped:
            break
    sent += stream.finish()
    assert stream.stopped and sent == "hello w"


def test_without_a_stop_everything_is_sent_by_the_end() -> None:
    tokenizer = byte_tokenizer()
    stream = TextStream(tokenizer, ["never"])
    text = "".join(stream.push(t) for t in tokenizer.encode("héllo ✓ nev").ids) + stream.finish()
    assert text == "héllo ✓ nev" and not stream.stopped


def test_the_plain_chat_template_and_bad_inputs() -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert chat_prompt(messages) == "<|system|>\nBe brief.\n<|user|>\nHi\n<|assistant|>\n"
    with pytest.raises(InvalidRequest, match="messages\\[0\\] needs a role"):
        chat_prompt([{"role": "robot", "content": "x"}])
    with pytest.raises(InvalidRequest, match=r"not a tokenizer\.json"):
        load_tokenizer(b"{not json", "llm")


def test_a_tokenizer_configs_chat_template_is_rendered_sandboxed_and_bad_ones_refused() -> None:
    config = {
        "chat_template": "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}",
        "bos_token": {"content": "<s>"},
    }
    template = chat_template(json.dumps(config).encode())
    assert template is not None
    assert chat_prompt([{"role": "user", "content": "Hi"}], template) == "<s><user>Hi<assistant>"
    assert chat_template(b"{}") is None  # no template of its own: the plain one is used
    with pytest.raises(InvalidRequest, match="does not parse"):
        chat_template(json.dumps({"chat_template": "{% for %}"}).encode())
    refusing = chat_template(
        json.dumps({"chat_template": "{{ raise_exception('no system role') }}"}).encode()
    )
    assert refusing is not None
    with pytest.raises(InvalidRequest, match="no system role"):
        refusing([{"role": "system", "content": "x"}])
    escaping = chat_template(json.dumps({"chat_template": "{{ ''.__class__.__mro__ }}"}).encode())
    assert escaping is not None
    with pytest.raises(InvalidRequest):  # the sandbox refuses attribute access to internals
        escaping([{"role": "user", "content": "x"}])
