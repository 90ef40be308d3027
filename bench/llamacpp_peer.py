"""Runs under a Python with `llama-cpp-python` and `gguf` (not edgeswarm's): writes the tiny LLM's
weights (an .npz that bench/llamacpp.py made from the ONNX model) as a llama GGUF file, generates
greedily from token ids with llama.cpp on one thread, and prints one JSON line: the tokens and the
median ms between them.

    python bench/llamacpp_peer.py WEIGHTS.npz CONFIG.json OUT.gguf
"""

from __future__ import annotations

import itertools
import json
import statistics
import sys
import time

import gguf
import numpy as np
from llama_cpp import Llama


def permuted(weight: np.ndarray, heads: int) -> np.ndarray:
    """[out, in] of a query or key projection, each head's rotary halves interleaved: llama.cpp's
    rotary pairs neighbours where the ONNX model (as Hugging Face's Llama) rotates halves."""
    return weight.reshape(heads, 2, weight.shape[0] // heads // 2, -1).swapaxes(1, 2).reshape(weight.shape)


def write_gguf(weights: np.lib.npyio.NpzFile, config: dict, path: str) -> None:
    writer = gguf.GGUFWriter(path, "llama")
    d, layers, heads, kv = config["d_model"], config["layers"], config["heads"], config["kv_heads"]
    writer.add_context_length(config["context"])
    writer.add_embedding_length(d)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(config["d_ff"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv)
    writer.add_rope_dimension_count(d // heads)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_file_type(0)  # all float32
    # Token ids go in and come out; the vocabulary is only what llama.cpp needs to load.
    vocab = config["vocab"]
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list([f"<{i}>" for i in range(vocab)])
    writer.add_token_types([1] * vocab)
    writer.add_token_merges(["< 0"])
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(vocab - 1)
    writer.add_tensor("token_embd.weight", weights["embed"])
    for i in range(layers):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", weights[f"{i}.attn_norm"])
        writer.add_tensor(f"blk.{i}.attn_q.weight", permuted(weights[f"{i}.q"].T.copy(), heads))
        writer.add_tensor(f"blk.{i}.attn_k.weight", permuted(weights[f"{i}.k"].T.copy(), kv))
        writer.add_tensor(f"blk.{i}.attn_v.weight", weights[f"{i}.v"].T.copy())
        writer.add_tensor(f"blk.{i}.attn_output.weight", weights[f"{i}.o"].T.copy())
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", weights[f"{i}.ffn_norm"])
        writer.add_tensor(f"blk.{i}.ffn_gate.weight", weights[f"{i}.gate"].T.copy())
        writer.add_tensor(f"blk.{i}.ffn_up.weight", weights[f"{i}.up"].T.copy())
        writer.add_tensor(f"blk.{i}.ffn_down.weight", weights[f"{i}.down"].T.copy())
    writer.add_tensor("output_norm.weight", weights["output_norm"])  # the head is tied to token_embd
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def main() -> None:
    weights_path, config_path, out = sys.argv[1:4]
    with open(config_path) as file:
        config = json.load(file)
    write_gguf(np.load(weights_path), config, out)
    llm = Llama(out, n_ctx=config["context"], n_threads=1, n_threads_batch=1, verbose=False)
    stamps, tokens = [], []
    for token in llm.generate(config["prompt"], top_k=1, temp=0.0, repeat_penalty=1.0, reset=True):
        stamps.append(time.perf_counter())
        tokens.append(int(token))
        if len(tokens) == config["tokens"]:
            break
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    print(json.dumps({"tokens": tokens, "ms_per_token": 1000 * statistics.median(gaps)}))


if __name__ == "__main__":
    main()
