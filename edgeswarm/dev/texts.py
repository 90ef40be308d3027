"""A tokenizer for the zoo's tiny LLM: byte-level, token id = byte value (256, its vocabulary), no
merges. A real tokenizer.json in the Hugging Face format, so text takes the same path as any model's."""

from __future__ import annotations

import random

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers


def _byte_chars() -> list[str]:
    """The character byte-level BPE uses for each byte (GPT-2's table): printable Latin-1 as itself,
    every other byte as a character from 256 on."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            chars[byte] = chr(byte)
        else:
            chars[byte] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def byte_tokenizer() -> Tokenizer:
    vocab = {char: byte for byte, char in enumerate(_byte_chars())}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


_WORD_LINES = (
    "the a one every some small large quick slow old new red green blue bright dark",
    "fleet worker model token stage pipeline replica cache session graph tensor layer node machine",
    "office lab runs sends keeps splits serves measures places answers streams moves holds learns",
    "waits and but so then while because after before over under through across into from with",
)
WORDS = [word for line in _WORD_LINES for word in line.split()]


def corpus(sentences: int = 4000, seed: int = 0) -> list[str]:
    """Sentences made by code from a small vocabulary: what the built-in tokenizer is trained on."""
    rng = random.Random(seed)
    lines = []
    for _ in range(sentences):
        words = [rng.choice(WORDS) for _ in range(rng.randint(4, 14))]
        lines.append(" ".join(words).capitalize() + rng.choice(".!?"))
    return lines


def trained_tokenizer(vocab_size: int = 512) -> Tokenizer:
    """A byte-level BPE tokenizer trained at build time on `corpus()`: deterministic, `vocab_size`
    tokens (the 256 bytes first, then merges), `<|endoftext|>` as its last."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 1,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus(), trainer)
    tokenizer.add_special_tokens(["<|endoftext|>"])
    return tokenizer
