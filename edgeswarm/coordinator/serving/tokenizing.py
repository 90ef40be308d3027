"""Text in and out of a decoder: its Hugging Face tokenizer file, detokenized as tokens come, and the
chat template that turns messages into one prompt.

Streamed text equals the decoded whole: each token's text is what decoding every token so far adds
to the text already sent, held back while it ends in an incomplete character (a byte-level token
that is part of a multi-byte one decodes to U+FFFD until the rest arrives).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer

from edgeswarm.errors import InvalidRequest

INCOMPLETE = "\ufffd"


def load_tokenizer(data: bytes, name: str = "") -> Tokenizer:
    """The tokenizer in `data` (tokenizer.json); InvalidRequest when it is not one."""
    try:
        return Tokenizer.from_str(data.decode())
    except Exception as exc:  # the tokenizers library raises its own Exception for a bad file
        raise InvalidRequest(
            f"the tokenizer for {name or 'the model'} is not a tokenizer.json: {exc}"
        ) from exc


def encode(tokenizer: Tokenizer, text: str) -> list[int]:
    return list(tokenizer.encode(text, add_special_tokens=False).ids)


class Detokenizer:
    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.text = ""  # sent so far

    def push(self, token_id: int) -> str:
        """The text `token_id` adds; "" while it ends in an incomplete character."""
        self.ids.append(token_id)
        whole = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if whole.endswith(INCOMPLETE) or not whole.startswith(self.text):
            return ""
        delta, self.text = whole[len(self.text) :], whole
        return delta

    def flush(self) -> str:
        """Whatever decoding the whole adds to what was sent (at the end, incomplete or not)."""
        whole = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        delta = whole[len(self.text) :] if whole.startswith(self.text) else ""
        self.text = whole if delta else self.text
        return delta


ChatTemplate = Callable[[Sequence[Mapping[str, object]]], str]


def chat_template(config: bytes, name: str = "") -> ChatTemplate | None:
    """The chat template of a tokenizer_config.json (Jinja, rendered sandboxed as Hugging Face
    renders it, with the reply's prompt added); None when it has none."""
    try:
        document = json.loads(config)
    except ValueError as exc:
        raise InvalidRequest(f"the tokenizer config of {name or 'the model'} is not JSON: {exc}") from exc
    source = document.get("chat_template") if isinstance(document, dict) else None
    if isinstance(source, list):  # named templates: the default one
        source = next(
            (t.get("template") for t in source if isinstance(t, dict) and t.get("name") == "default"), None
        )
    if not isinstance(source, str):
        return None

    def token(key: str) -> str:
        value = document.get(key)
        return str(value.get("content", "")) if isinstance(value, dict) else str(value or "")

    def raise_exception(message: str) -> None:
        raise InvalidRequest(f"the chat template refused the messages: {message}")

    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    environment.globals["raise_exception"] = raise_exception
    try:
        template = environment.from_string(source)
    except TemplateError as exc:
        raise InvalidRequest(f"the chat template of {name or 'the model'} does not parse: {exc}") from exc

    def render(messages: Sequence[Mapping[str, object]]) -> str:
        _check_messages(messages)
        try:
            return template.render(
                messages=list(messages), add_generation_prompt=True,
                bos_token=token("bos_token"), eos_token=token("eos_token"),
            )  # fmt: skip
        except TemplateError as exc:
            raise InvalidRequest(f"the chat template failed on these messages: {exc}") from exc

    return render


def _check_messages(messages: Sequence[Mapping[str, object]]) -> None:
    for i, message in enumerate(messages):
        role, content = message.get("role"), message.get("content")
        if role not in ("system", "user", "assistant", "tool") or not isinstance(content, str):
            raise InvalidRequest(
                f"messages[{i}] needs a role (system, user, assistant, tool) and content as text"
            )
    if not messages:
        raise InvalidRequest("messages must hold at least one message")


def chat_prompt(messages: Sequence[Mapping[str, object]], template: ChatTemplate | None = None) -> str:
    """The prompt for `messages`: by the tokenizer's own template where it has one, else the plain
    one: each message as `<|ROLE|>\\nCONTENT\\n`, then `<|assistant|>\\n` for the reply."""
    if template is not None:
        return template(messages)
    _check_messages(messages)
    parts = [f"<|{message['role']}|>\n{message['content']}\n" for message in messages]
    return "".join(parts) + "<|assistant|>\n"


def stop_at(text: str, stops: Sequence[str]) -> int | None:
    """Where the first of `stops` begins in `text`; None when none occurs."""
    found = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return min(found) if found else None


class TextStream:
    """A generation's text as it may be sent: detokenized incrementally, cut before the first stop
    string, and holding back a tail that could still become the start of one, so that what is sent
    is exactly the final text, stop string excluded (as OpenAI's API returns it)."""

    def __init__(self, tokenizer: Tokenizer, stops: Sequence[str] = ()) -> None:
        self.detokenizer = Detokenizer(tokenizer)
        self.stops = [s for s in stops if s]
        self.sent = ""
        self.stopped = False

    def push(self, token_id: int) -> str:
        """The text to send with `token_id`; sets `stopped` once a stop string appears."""
        self.detokenizer.push(token_id)
        return self._release(self.detokenizer.text, final=False)

    def finish(self) -> str:
        """The text still held back, at the end of the generation."""
        self.detokenizer.flush()
        return self._release(self.detokenizer.text, final=True)

    def _release(self, text: str, final: bool) -> str:
        cut = stop_at(text, self.stops)
        if cut is not None:
            self.stopped, text, final = True, text[:cut], True
        hold = 0 if final else max((len(s) - 1 for s in self.stops), default=0)
        ready = text[: max(len(self.sent), len(text) - hold)]
        delta, self.sent = ready[len(self.sent) :], ready
        return delta
