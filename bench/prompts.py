"""Real prompt text, tokenized with Mixtral's tokenizer, cut to exactly N tokens for benchmarks.

mistral-common is optional at run time: the GPU hosts do not carry it, so the same texts ship pre-tokenized in
inference/data/prompt_tokens.json (a test checks the file against a fresh tokenization, so it cannot drift).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

DATA_FILE = Path(__file__).resolve().parent / "data" / "prompt_tokens.json"
BOS_ID = 1  # <s> in Mixtral's SentencePiece vocabulary

# Our own prose about GPUs and inference, one user turn each.
TEXTS: tuple[str, ...] = (
    "I have a single graphics card with 24 GB of memory and I would like to run a mixture-of-experts model "
    "at home. Explain why the whole model has to fit in memory even though each token only uses two of the "
    "eight experts, and what happens to the speed when some layers spill over into system RAM.",
    "When a language model generates text one token at a time, every step reads the active weights from "
    "memory once. Walk me through how memory bandwidth, batch size and quantization together decide how many "
    "tokens per second a GPU can produce, and when the arithmetic units become the limit instead.",
    "Compare an 80 GB data-centre accelerator with two consumer cards joined by PCIe for serving a 47-billion "
    "parameter model to a small team. Consider the key-value cache at long contexts, the cost of moving "
    "activations between cards, power draw and the price per million generated tokens.",
    "Write a short checklist for benchmarking inference honestly: warm the device up before timing, "
    "synchronise before reading the clock, report the median of several repeats, keep prompt processing and "
    "generation apart, and write down the peak memory, the driver version and the exact model shapes.",
)


def tokenize(text: str) -> list[int]:
    """Returns the ids of one user turn in Mixtral's chat format (<s> [INST] text [/INST]) via mistral-common."""
    from mistral_common.protocol.instruct.messages import UserMessage
    from mistral_common.protocol.instruct.request import ChatCompletionRequest
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

    tokenizer = _tokenizer(MistralTokenizer)
    return list(tokenizer.encode_chat_completion(ChatCompletionRequest(messages=[UserMessage(content=text)])).tokens)


@lru_cache(maxsize=1)
def _tokenizer(cls):
    return cls.v1()


def fresh_token_ids() -> list[list[int]] | None:
    """Returns every text tokenized now, or None where mistral-common (with sentencepiece) is not installed."""
    try:
        return [tokenize(t) for t in TEXTS]
    except ImportError:
        return None


def shipped_token_ids() -> list[list[int]]:
    """Returns the pre-tokenized ids shipped in DATA_FILE (same texts, same tokenizer)."""
    data = json.loads(DATA_FILE.read_text())
    if data["texts"] != list(TEXTS):
        raise ValueError(f"{DATA_FILE} holds other texts than bench.prompts.TEXTS; rewrite it with write_data_file()")
    return data["ids"]


def token_ids() -> list[list[int]]:
    """Returns the tokenized texts, from mistral-common when importable, else from the shipped file."""
    return fresh_token_ids() or shipped_token_ids()


def prompt(n_tokens: int, offset: int = 0) -> list[int]:
    """Returns exactly n_tokens ids: BOS, then the chat turns (without their own BOS) repeated and truncated.

    offset starts the body at another turn, so the rows of a batch are different prompts of the same length.
    """
    if n_tokens < 1:
        raise ValueError("a prompt needs at least one token (the BOS)")
    turns = token_ids()
    bodies = [ids[1:] if ids and ids[0] == BOS_ID else ids for ids in turns]
    body: list[int] = []
    i = offset
    while len(body) < n_tokens - 1:
        body.extend(bodies[i % len(bodies)])
        i += 1
    return [BOS_ID, *body[: n_tokens - 1]]


def prompt_batch(batch: int, n_tokens: int) -> list[list[int]]:
    """Returns batch prompts of exactly n_tokens ids each, each starting at a different turn."""
    return [prompt(n_tokens, offset=row) for row in range(batch)]


def write_data_file() -> Path:
    """Returns DATA_FILE after rewriting it from a fresh tokenization (needs mistral-common)."""
    ids = fresh_token_ids()
    if ids is None:
        raise RuntimeError("mistral-common[sentencepiece] is needed to write the prompt token file")
    payload = {"tokenizer": "mistral-common MistralTokenizer.v1() (Mixtral-8x7B)", "texts": list(TEXTS), "ids": ids}
    DATA_FILE.write_text(json.dumps(payload, indent=1) + "\n")
    return DATA_FILE


if __name__ == "__main__":
    print(write_data_file())
