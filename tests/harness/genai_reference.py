"""What openvino-genai itself answers, in this process: the reference served answers must equal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openvino_genai as genai


def greedy_chat(model: Path, messages: list[Any], tokens: int) -> str:
    """The model's greedy reply to ``messages`` (its own chat template), exactly ``tokens``
    tokens long, as kubevino-serve is asked for it with ``ignore_eos``."""
    pipeline = genai.LLMPipeline(str(model), "CPU")
    tokenizer = pipeline.get_tokenizer()
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
    ids = tokenizer.encode(prompt, add_special_tokens=False).input_ids
    config = genai.GenerationConfig(max_new_tokens=tokens, do_sample=False, ignore_eos=True)
    result = pipeline.generate(ids, config)
    text: str = tokenizer.decode([int(token) for token in result.tokens[0]])
    return text


def greedy_completion(model: Path, prompt: str, tokens: int) -> str:
    """The greedy continuation of ``prompt`` (encoded with the tokenizer's special tokens, as
    the completions endpoint does), exactly ``tokens`` tokens long."""
    pipeline = genai.LLMPipeline(str(model), "CPU")
    tokenizer = pipeline.get_tokenizer()
    ids = tokenizer.encode(prompt, add_special_tokens=True).input_ids
    config = genai.GenerationConfig(max_new_tokens=tokens, do_sample=False, ignore_eos=True)
    result = pipeline.generate(ids, config)
    text: str = tokenizer.decode([int(token) for token in result.tokens[0]])
    return text
