"""A tokenizer for the zoo's tiny LLM: byte-level, token id = byte value (256, its vocabulary), no
merges. A real tokenizer.json in the Hugging Face format, so text takes the same path as any model's."""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers


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
