"""Tiny generative models built in pure Python, for tests and demos that must not download.

* ``write_llama_gguf``: a Llama-architecture GGUF file with random F16 weights and a byte-level
  GPT-2 style tokenizer in its metadata (with a chat template), which openvino-genai reads as
  it reads any GGUF model.
* ``write_llama_ir``: the same model as an OpenVINO GenAI model directory (``openvino_model``,
  ``openvino_tokenizer`` and ``openvino_detokenizer``), the IR openvino-genai converts the GGUF
  into.
* ``write_embedding_model`` / ``write_rerank_model``: OpenVINO IR directories in the layout
  ``optimum-cli export openvino`` writes (``openvino_model.xml`` next to
  ``openvino_tokenizer.xml``), the network made with OpenVINO's opset API and the tokenizer
  with openvino-tokenizers' pipeline steps (a WordPiece vocabulary).

The weights are random (seeded): the outputs mean nothing, but they are deterministic, which
is what comparing a served result with an in-process one needs.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import openvino as ov
import openvino.opset13 as ops

LLAMA_FILE: Final = "tiny-llama.gguf"
END_OF_TEXT: Final = "<|endoftext|>"
# A template in the common role-tag style; GenAI renders it with its own Jinja engine.
CHAT_TEMPLATE: Final = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
# A few merges so the tokenizer really is BPE, not only bytes.
_MERGES: Final = ("Ġ t", "h e", "i n", "e r", "a n", "Ġ a", "o n", "r e")
_TOKEN_NORMAL, _TOKEN_CONTROL = 1, 3

WORDS: Final = (
    "the",
    "a",
    "cat",
    "dog",
    "sat",
    "on",
    "mat",
    "paris",
    "is",
    "capital",
    "of",
    "france",
    "what",
    "hello",
    "world",
)


def byte_level_alphabet() -> list[str]:
    """GPT-2's printable stand-in for each of the 256 byte values, in byte order."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    shifted = 0
    chars: dict[int, str] = {}
    for byte in range(256):
        if byte in printable:
            chars[byte] = chr(byte)
        else:
            chars[byte] = chr(256 + shifted)
            shifted += 1
    return [chars[byte] for byte in range(256)]


def _f16(random: np.random.Generator, *shape: int, scale: float = 0.2) -> npt.NDArray[np.float16]:
    return (random.standard_normal(shape) * scale).astype(np.float16)


def write_llama_gguf(
    directory: Path,
    *,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    context: int = 2048,
    seed: int = 7,
    feed_forward: int | None = None,
    vocab_size: int | None = None,
    weight_scale: float = 0.2,
) -> Path:
    """A Llama GGUF whose tokenizer is byte-level BPE with ``<|endoftext|>`` as BOS and EOS.
    Matrices are F16 and norms F32, as in real GGUF files: openvino-genai 2026.4 refuses F32
    matrices ("Unsupported quantization type") and fails on F16 norm weights.

    Tiny by default; the size parameters shape it like a real model for benchmarks:
    ``feed_forward`` (default twice ``hidden``), ``vocab_size`` (default the 265 tokens the
    tokenizer needs; more adds plain word tokens, so the embedding and output matrices are as
    large as a real vocabulary's), and ``weight_scale``, the weights' standard deviation (about
    1/sqrt(hidden) keeps a deep model's activations finite)."""
    import gguf

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LLAMA_FILE
    alphabet = byte_level_alphabet()
    merged = [merge.replace(" ", "") for merge in _MERGES]
    base = [*alphabet, *merged]
    # Filler words ("Ġ" is the byte-level space) keep end-of-text the last token.
    fillers = [f"\u0120w{index}" for index in range(max(0, (vocab_size or 0) - len(base) - 1))]
    tokens = [*base, *fillers, END_OF_TEXT]
    vocab = len(tokens)
    types = [_TOKEN_NORMAL] * (vocab - 1) + [_TOKEN_CONTROL]
    feed_forward = feed_forward or hidden * 2
    head_size = hidden // heads

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("kubevino tiny llama")
    writer.add_context_length(context)
    writer.add_embedding_length(hidden)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(feed_forward)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_dimension_count(head_size)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(list(_MERGES))
    writer.add_bos_token_id(vocab - 1)
    writer.add_eos_token_id(vocab - 1)
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)

    random = np.random.default_rng(seed)
    writer.add_tensor("token_embd.weight", _f16(random, vocab, hidden, scale=1.0))
    for layer in range(layers):
        block = f"blk.{layer}"
        writer.add_tensor(f"{block}.attn_norm.weight", np.ones(hidden, np.float32))
        writer.add_tensor(
            f"{block}.attn_q.weight", _f16(random, hidden, hidden, scale=weight_scale)
        )
        writer.add_tensor(
            f"{block}.attn_k.weight", _f16(random, kv_heads * head_size, hidden, scale=weight_scale)
        )
        writer.add_tensor(
            f"{block}.attn_v.weight", _f16(random, kv_heads * head_size, hidden, scale=weight_scale)
        )
        writer.add_tensor(
            f"{block}.attn_output.weight", _f16(random, hidden, hidden, scale=weight_scale)
        )
        writer.add_tensor(f"{block}.ffn_norm.weight", np.ones(hidden, np.float32))
        writer.add_tensor(
            f"{block}.ffn_gate.weight", _f16(random, feed_forward, hidden, scale=weight_scale)
        )
        writer.add_tensor(
            f"{block}.ffn_up.weight", _f16(random, feed_forward, hidden, scale=weight_scale)
        )
        writer.add_tensor(
            f"{block}.ffn_down.weight", _f16(random, hidden, feed_forward, scale=weight_scale)
        )
    writer.add_tensor("output_norm.weight", np.ones(hidden, np.float32))
    writer.add_tensor("output.weight", _f16(random, vocab, hidden, scale=1.0))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_llama_ir(directory: Path, *, seed: int = 7) -> Path:
    """The tiny Llama as the model directory openvino-genai converts its GGUF into (its
    ``enable_save_ov_model``), without the GGUF. The saved weights are FP16-compressed, so
    greedy answers match the GGUF's on short prompts only: compare with GenAI on this
    directory."""
    import openvino_genai as genai

    gguf = write_llama_gguf(directory, seed=seed)
    genai.LLMPipeline(str(gguf), "CPU", enable_save_ov_model=True)
    gguf.unlink()
    return directory


# --- encoders: embeddings and rerank ------------------------------------------------------------

_SPECIALS: Final = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")
MAX_TOKENS: Final = 512


def wordpiece_vocabulary() -> list[str]:
    return [*_SPECIALS, *WORDS]


def _write_wordpiece_tokenizer(directory: Path, vocabulary: list[str]) -> None:
    """``openvino_tokenizer.xml``: lower-case, split like BERT, WordPiece,
    ``[CLS] text [SEP]``, padded with ``[PAD]`` — what a BERT tokenizer converts to."""
    from openvino_tokenizers.constants import PROCESSED_POST_PROCESSOR_NAME
    from openvino_tokenizers.tokenizer_pipeline import (
        AddToken,
        CaseFoldStep,
        CombineSegmentsStep,
        PaddingStep,
        RegexSplitStep,
        Sequence,
        SpecialTokensSplit,
        TokenizerPipeline,
        TruncationStep,
        WordPieceTokenizationStep,
    )
    from openvino_tokenizers.utils import change_outputs_type

    pipeline = TokenizerPipeline()
    pipeline.add_steps(
        [
            # Also adds the per-word "is special" flag the WordPiece step expects.
            SpecialTokensSplit.from_string_iter(_SPECIALS),
            CaseFoldStep(),
            *RegexSplitStep.bert_splitter(),
            WordPieceTokenizationStep(vocab=vocabulary, unk_token="[UNK]"),
            # GenAI widens the template to a text pair only where a Truncate feeds it.
            TruncationStep(max_length=MAX_TOKENS - 3),
            CombineSegmentsStep(
                inputs=[
                    AddToken(token="[CLS]", token_type_id=0),
                    Sequence(token_type_id=0),
                    AddToken(token="[SEP]", token_type_id=0),
                ]
            ),
            PaddingStep(token="[PAD]", token_type_id=0),
        ]
    )
    pipeline.vocab = vocabulary
    tokenizer = pipeline.get_tokenizer_ov_subgraph()
    change_outputs_type(tokenizer, ov.Type.i64)  # what converted tokenizers give models
    tokenizer.set_rt_info(vocabulary.index("[PAD]"), "pad_token_id")
    # BERT's pair template ([CLS] A [SEP] B [SEP]), from which GenAI adds the second input a
    # cross-encoder needs (negative ids stand for the texts).
    cls, sep = vocabulary.index("[CLS]"), vocabulary.index("[SEP]")
    template = {
        "single": {"ids": [cls, -1, sep], "type_ids": [0, 0, 0]},
        "pair": {"ids": [cls, -1, sep, -2, sep], "type_ids": [0, 0, 0, 1, 1]},
    }
    tokenizer.set_rt_info(json.dumps(template), PROCESSED_POST_PROCESSOR_NAME)
    ov.save_model(tokenizer, directory / "openvino_tokenizer.xml")


def _encoder(
    vocabulary: int, hidden: int, random: np.random.Generator
) -> tuple[ov.Output, list[ov.Node]]:
    """Token embeddings through one tanh layer: [batch, tokens, hidden]."""
    input_ids = ops.parameter([-1, -1], ov.Type.i64, name="input_ids")
    attention_mask = ops.parameter([-1, -1], ov.Type.i64, name="attention_mask")
    token_type_ids = ops.parameter([-1, -1], ov.Type.i64, name="token_type_ids")
    for parameter, name in (
        (input_ids, "input_ids"),
        (attention_mask, "attention_mask"),
        (token_type_ids, "token_type_ids"),
    ):
        parameter.output(0).get_tensor().set_names({name})
    table = ops.constant(random.standard_normal((vocabulary, hidden)).astype(np.float32))
    embedded = ops.gather(table, input_ids, ops.constant(0, ov.Type.i64))
    segments = ops.constant(random.standard_normal((2, hidden)).astype(np.float32))
    embedded = ops.add(embedded, ops.gather(segments, token_type_ids, ops.constant(0, ov.Type.i64)))
    weight = ops.constant(
        (random.standard_normal((hidden, hidden)) / hidden**0.5).astype(np.float32)
    )
    hidden_states = ops.tanh(ops.matmul(embedded, weight, False, False))
    mask = ops.unsqueeze(ops.convert(attention_mask, ov.Type.f32), ops.constant([-1]))
    return ops.multiply(hidden_states, mask).output(0), [input_ids, attention_mask, token_type_ids]


def _write_config(directory: Path, model_type: str) -> None:
    config = {"model_type": model_type, "max_position_embeddings": MAX_TOKENS}
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def write_embedding_model(directory: Path, *, hidden: int = 32, seed: int = 11) -> Path:
    """An encoder whose ``last_hidden_state`` TextEmbeddingPipeline pools (CLS by default)."""
    directory.mkdir(parents=True, exist_ok=True)
    vocabulary = wordpiece_vocabulary()
    states, parameters = _encoder(len(vocabulary), hidden, np.random.default_rng(seed))
    states.get_tensor().set_names({"last_hidden_state"})
    ov.save_model(
        ov.Model([states], parameters, "tiny_embedding"), directory / "openvino_model.xml"
    )
    _write_wordpiece_tokenizer(directory, vocabulary)
    _write_config(directory, "bert")
    return directory


def write_rerank_model(directory: Path, *, hidden: int = 32, seed: int = 13) -> Path:
    """A cross-encoder: one relevance logit per query+document pair."""
    directory.mkdir(parents=True, exist_ok=True)
    vocabulary = wordpiece_vocabulary()
    random = np.random.default_rng(seed)
    states, parameters = _encoder(len(vocabulary), hidden, random)
    # The encoder does not mix tokens, so the first token alone would score every pair alike:
    # average the states of the pair's own tokens instead (not of the padding a batch adds,
    # so a pair scores the same alone as beside longer ones, as with a real cross-encoder).
    tokens = ops.reduce_sum(
        ops.convert(parameters[1], ov.Type.f32), ops.constant([1]), keep_dims=True
    )
    pooled = ops.divide(ops.reduce_sum(states, ops.constant([1]), keep_dims=False), tokens)
    head = ops.constant(random.standard_normal((hidden, 1)).astype(np.float32) * 4)
    logits = ops.matmul(pooled, head, False, False).output(0)
    logits.get_tensor().set_names({"logits"})
    ov.save_model(ov.Model([logits], parameters, "tiny_rerank"), directory / "openvino_model.xml")
    _write_wordpiece_tokenizer(directory, vocabulary)
    _write_config(directory, "bert")
    return directory


def main(argv: Sequence[str] | None = None) -> int:
    """``kubevino-demo-generative DIR``: write the three tiny models under DIR."""
    parser = argparse.ArgumentParser(prog="kubevino-demo-generative", description=__doc__)
    parser.add_argument("directory", type=Path)
    args = parser.parse_args(argv)
    print(write_llama_gguf(args.directory / "llm"))
    print(write_embedding_model(args.directory / "embeddings"))
    print(write_rerank_model(args.directory / "rerank"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
