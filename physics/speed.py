"""The step-time terms of inference, one named function each; docs/estimator.md points here.

Every function takes numpy arrays (or scalars) and returns seconds per step, so the estimator's vectorised core
computes a whole ranking with the same formulas it uses for one estimate. GB is decimal (1e9 bytes).
"""

from __future__ import annotations

import numpy as np

GB = 1e9
# Engines take a long prompt in micro-batches of this many tokens (llama.cpp's default ubatch), reading the weights
# once per micro-batch.
PROMPT_CHUNK = 512
# ... and hand the engine a prompt in batches of this many tokens (llama.cpp's default n_batch), each of which a
# layer split pipelines over its cards micro-batch by micro-batch.
PROMPT_BATCH = 2048
# What binds a step, as the functions below name it; object arrays taken from these are cheaper than text arrays.
BOUNDS = np.array(["bandwidth", "compute"], dtype=object)


def memory_s(bytes_read, bandwidth_gb_s, efficiency, cards_sharing=1):
    """Returns the time to stream the bytes one step reads: bytes / (bandwidth x efficiency x cards sharing them).

    ``cards_sharing`` is n under tensor parallel (each card reads 1/n of every layer) and 1 under a layer split,
    where the cards take their layers one after another at batch 1, so bandwidth does not add.
    """
    return np.asarray(bytes_read, dtype=float) / (np.asarray(bandwidth_gb_s) * GB * efficiency * cards_sharing)


def offload_s(ram_bytes, ram_bandwidth_gb_s, ram_efficiency):
    """Returns the time to read the weights kept in system RAM: bytes / (RAM bandwidth x RAM efficiency); 0 without."""
    ram_bytes = np.asarray(ram_bytes, dtype=float)
    bandwidth = np.asarray(ram_bandwidth_gb_s, dtype=float) * GB * ram_efficiency
    return np.where(bandwidth > 0, ram_bytes / np.where(bandwidth > 0, bandwidth, 1.0), 0.0)


def comm_s(hidden, tokens, layers, count, tensor, link_gb_s, latency_s):
    """Returns the multi-GPU communication time of one step over ``tokens`` tokens (0 on one GPU).

    The activation is hidden x tokens x 2 bytes (fp16). Layer split: one hand-off per card boundary,
    (n - 1) x (activation / link + latency). Tensor parallel: two ring all-reduces per layer (after attention and
    after the MLP), 2 x layers x (latency + 2 (n - 1) / n x activation / link).
    """
    n = np.asarray(count, dtype=float)
    link = np.asarray(link_gb_s, dtype=float) * GB
    activation = hidden * tokens * 2.0
    hops = (n - 1) * (activation / link + latency_s)
    allreduce = 2 * layers * (latency_s + 2 * (n - 1) / n * activation / link)
    return np.where(n > 1, np.where(tensor, allreduce, hops), 0.0)


def row_split_gather_s(layers, tokens, out_width, count, link_gb_s):
    """Returns the link time of llama.cpp's row split (`-sm row`, and `-sm tensor` as measured) over ``tokens``.

    Each weight matrix is split by rows over the n cards and every matrix product's output is gathered on the main
    card in fp32: per layer, tokens x (summed output width of the layer's matrices) x 4 bytes, (n - 1) / n of it
    over the link. The summed output width is read as the layer's parameters / its input width. The estimator never
    plans such a build (a GGUF format runs as a layer split); the fit needs it to read the rows that measured one.
    """
    n = np.asarray(count, dtype=float)
    moved = np.asarray(layers, dtype=float) * tokens * np.asarray(out_width, dtype=float) * 4.0 * (n - 1) / n
    return np.where(n > 1, moved / (np.asarray(link_gb_s, dtype=float) * GB), 0.0)


def prompt_tflops(fp16_tflops, int8_tops):
    """Returns the dense tensor rate prompt kernels can reach: max(fp16 tensor figure, int8 TOPS / 2).

    The catalog's fp16 figure is the FP32-accumulate rate, which GeForce parts run at half speed; llama.cpp's
    prompt kernels accumulate in fp16 (cuBLAS) or int32 (int8 MMQ), whose dense rate is half the int8 TOPS on
    every tensor-core generation (RTX 4090: 165.2 fp16 figure, 660.6 int8 -> 330.3; A100: 312 and 624 -> 312).
    Without an int8 figure (Apple, most Radeons) the fp16 figure stands.
    """
    fp16 = np.asarray(fp16_tflops, dtype=float)
    half_int8 = np.asarray(int8_tops, dtype=float) / 2
    return np.where(np.nan_to_num(half_int8) > fp16, half_int8, fp16)


def compute_s(flops, tflops, efficiency, cards_sharing=1):
    """Returns the time of the step's arithmetic: FLOPs / (TFLOPS x efficiency x cards sharing the work)."""
    return np.asarray(flops, dtype=float) / (np.asarray(tflops) * 1e12 * efficiency * cards_sharing)


def vector_s(params, vector_tflops, cards_sharing=1):
    """Returns the per-weight arithmetic of a matrix-vector step: one unit of work per weight at the vector rate.

    A batch-1 step multiplies every weight it reads once (and a quantized one is unpacked first) on the GPU's vector
    units, not its tensor cores, so the time follows the FP32 rate (``vector_tflops``), which the fit scales per
    engine and hardware class. It matters where that rate is small beside the bandwidth (A100/H100, Apple M1-M3).
    0 where the rate is not known.
    """
    rate = np.nan_to_num(np.asarray(vector_tflops, dtype=float)) * 1e12 * cards_sharing
    return np.where(rate > 0, np.asarray(params, dtype=float) / np.where(rate > 0, rate, 1.0), 0.0)


def decode_step_s(memory, offload, comm, compute):
    """Returns (seconds per decode step, what binds): max(memory + offload + comm, compute).

    At small batch the weights stream while the arithmetic overlaps them, so the step is the longer of the two;
    communication waits on the data path (a hand-off or an all-reduce sits between reads), so it adds to the
    memory side. The bound is "compute" when the arithmetic is longer, else "bandwidth" ("offload" is set by the
    caller when weights live in system RAM).
    """
    data_path = np.asarray(memory) + offload + comm
    step = np.maximum(data_path, compute)
    return step, BOUNDS[(np.asarray(compute) > data_path).astype(np.intp)]


def prefill_s(compute, memory, comm):
    """Returns (seconds to process a prompt, what binds): max(compute, memory) + comm.

    A prompt's arithmetic and its weight reads overlap; the hand-offs or all-reduces of the whole prompt's
    activations come after each layer's work, so they add.
    """
    step = np.maximum(compute, memory) + comm
    return step, BOUNDS[(np.asarray(compute) >= memory).astype(np.intp)]


def fixed_decode_s(layers, moe, count, tensor, pcie, costs):
    """Returns the fitted time of a decode step that does not shrink with bandwidth (0 with no fitted costs).

    ``costs`` maps the fitted names to seconds: ``step_s`` once per step (launches, sampling, the host),
    ``layer_s`` per layer, ``moe_layer_s`` per layer of a mixture-of-experts model (routing and expert
    dispatch), ``hop_s`` per card boundary of a layer split, and ``allreduce_s`` per all-reduce of tensor parallel
    (two per layer) over NVLink, ``allreduce_pcie_s`` per all-reduce step over PCIe. A decode step's all-reduce
    moves a few kilobytes, so its time is latency: over NVLink (NVSwitch or a direct link) the cards exchange in one
    step, while over PCIe the all-reduce is a ring whose 2 (n - 1) steps each pay the link's latency, so its cost
    there grows with n - 1 (``allreduce_steps``).
    """
    n = np.asarray(count, dtype=float)
    several = n > 1
    tensor = np.asarray(tensor, dtype=bool) & several
    allreduces = np.where(tensor, 2.0 * layers, 0.0)
    hops = np.where(several & ~tensor, n - 1, 0.0)
    per_allreduce = np.where(pcie, costs["allreduce_pcie_s"] * allreduce_steps(n), costs["allreduce_s"])
    return (
        costs["step_s"]
        + layers * costs["layer_s"]
        + np.where(moe, layers * costs["moe_layer_s"], 0.0)
        + hops * costs["hop_s"]
        + allreduces * per_allreduce
    )


def allreduce_steps(count):
    """Returns the latency steps of a ring all-reduce over PCIe on ``count`` cards, counted from two cards' one:
    n - 1 (0 on one card)."""
    return np.maximum(np.asarray(count, dtype=float) - 1, 0.0)


def prompt_depth(context, prompt_tokens):
    """Returns the cache a prompt follows: the context before it (context - prompt, never below 0), which
    `llama-bench -d` sets and the prompt's attention and micro-batch re-reads cover."""
    return max(float(context) - max(float(prompt_tokens), 1.0), 0.0)


def pipeline_share(prompt_tokens, count):
    """Returns the share of a prompt's sequential time that llama.cpp's layer split takes over ``count`` cards.

    Since March 2024 (pipeline parallelism, CUDA and HIP backends) a batch of u micro-batches flows through the n
    cards as a pipeline: card k starts micro-batch j while card k + 1 runs micro-batch j - 1, so the batch takes
    u + n - 1 card-slots of 1/n of the work each instead of u x n: a share of (u + n - 1) / (u n). A prompt of one
    micro-batch (P <= 512) gains nothing; every full batch of PROMPT_BATCH tokens gains alike, and the last,
    shorter batch by its own micro-batches. 1 on one card.
    """
    p = np.asarray(prompt_tokens, dtype=float)
    n = np.maximum(np.asarray(count, dtype=float), 1.0)
    full, rest = np.floor(p / PROMPT_BATCH), np.mod(p, PROMPT_BATCH)

    def share(tokens):
        u = np.maximum(np.ceil(tokens / PROMPT_CHUNK), 1.0)
        return (u + n - 1) / (u * n)

    summed = full * PROMPT_BATCH * share(PROMPT_BATCH) + rest * share(rest)
    return np.where(p > 0, summed / np.where(p > 0, p, 1.0), 1.0)


def chunked_weights_s(prompt_tokens, weights_read_s):
    """Returns the time of reading the weights once per prompt micro-batch: ceil(P / PROMPT_CHUNK) x one read."""
    return np.ceil(np.asarray(prompt_tokens, dtype=float) / PROMPT_CHUNK) * weights_read_s


def attention_flops(layers, q_dim, prompt_tokens, depth):
    """Returns the attention FLOPs of a prompt of P tokens after D cached ones.

    Each prompt token's query heads score and mix D + (its position) keys: 4 x layers x q_dim x P x (D + P / 2),
    where q_dim = query heads x head dim (grouped-query attention shares K and V, not the arithmetic).
    """
    p = np.asarray(prompt_tokens, dtype=float)
    return 4.0 * layers * np.asarray(q_dim, dtype=float) * p * (np.asarray(depth, dtype=float) + p / 2)
