"""The named step-time terms (physics/speed.py): each formula, and how decode and prefill combine them."""

from __future__ import annotations

import numpy as np
import pytest

from physics import speed


def test_memory_time_is_bytes_over_effective_bandwidth_and_tensor_parallel_shares_it():
    # 10 GB at 1,000 GB/s x 0.5 = 20 ms; two cards each reading half: 10 ms.
    assert float(speed.memory_s(10e9, 1000, 0.5)) == pytest.approx(0.020)
    assert float(speed.memory_s(10e9, 1000, 0.5, cards_sharing=2)) == pytest.approx(0.010)


def test_offload_time_is_zero_without_system_ram():
    # 6 GB in RAM at 80 GB/s x 0.6 = 125 ms; no RAM bandwidth given: nothing offloaded, no time.
    assert float(speed.offload_s(6e9, 80, 0.6)) == pytest.approx(0.125)
    assert float(speed.offload_s(0.0, 0.0, 0.6)) == 0.0


def test_layer_split_pays_one_hand_off_per_card_boundary():
    # 4 cards, hidden 4096, 1 token: activation 8,192 B; each hop 8,192 / 32e9 s + 40 us; three hops.
    hop = 8192 / 32e9 + 40e-6
    got = float(speed.comm_s(4096, 1, 32, 4, False, 32, 40e-6))
    assert got == pytest.approx(3 * hop)


def test_tensor_parallel_pays_two_all_reduces_per_layer():
    # 2 cards over NVLink (900 GB/s, 20 us), 32 layers: 2 x 32 x (20 us + 2 x 1/2 x 8,192 / 900e9).
    want = 2 * 32 * (20e-6 + 1.0 * 8192 / 900e9)
    assert float(speed.comm_s(4096, 1, 32, 2, True, 900, 20e-6)) == pytest.approx(want)
    assert float(speed.comm_s(4096, 1, 32, 1, True, 900, 20e-6)) == 0.0  # one card talks to nobody


def test_a_decode_step_adds_communication_to_the_data_path_and_overlaps_compute():
    # memory 10 ms + offload 2 ms + comm 1 ms = 13 ms against 5 ms of arithmetic: 13 ms, bandwidth-bound.
    step, bound = speed.decode_step_s(0.010, 0.002, 0.001, 0.005)
    assert float(step) == pytest.approx(0.013) and str(bound) == "bandwidth"
    # Arithmetic longer than the whole data path: the step is the arithmetic, and compute binds.
    step, bound = speed.decode_step_s(0.010, 0.0, 0.001, 0.020)
    assert float(step) == pytest.approx(0.020) and str(bound) == "compute"


def test_prefill_overlaps_reads_with_compute_then_adds_communication():
    # compute 50 ms, reads 30 ms, all-reduces 4 ms: 54 ms, compute-bound.
    step, bound = speed.prefill_s(0.050, 0.030, 0.004)
    assert float(step) == pytest.approx(0.054) and str(bound) == "compute"
    step, bound = speed.prefill_s(0.010, 0.030, 0.0)
    assert float(step) == pytest.approx(0.030) and str(bound) == "bandwidth"


def test_vector_time_is_weights_over_the_fp32_rate_and_nothing_without_one():
    assert speed.vector_s(1e9, 10.0) == pytest.approx(1e9 / 10e12)
    assert speed.vector_s(1e9, 10.0, cards_sharing=2) == pytest.approx(1e9 / 20e12)
    assert speed.vector_s(1e9, 0.0) == 0.0 and speed.vector_s(1e9, float("nan")) == 0.0


def test_a_layer_split_pipelines_a_prompt_of_several_micro_batches_and_nothing_else():
    # One card, or one micro-batch on any number of cards: the whole sequential time.
    assert speed.pipeline_share(8192, 1) == 1.0
    assert speed.pipeline_share(512, 4) == 1.0
    # A full batch of 2,048 tokens is four micro-batches: (4 + 4 - 1) / (4 x 4) over four cards.
    assert speed.pipeline_share(2048, 4) == pytest.approx(7 / 16)
    assert speed.pipeline_share(4096, 4) == pytest.approx(7 / 16)
    # Two micro-batches over two cards: (2 + 1) / 4.
    assert speed.pipeline_share(1024, 2) == pytest.approx(3 / 4)
    # A last, shorter batch counts by its own micro-batches: 2,048 tokens at 7/16 and 952 (two) at 5/8.
    assert speed.pipeline_share(3000, 4) == pytest.approx((2048 * 7 / 16 + 952 * 5 / 8) / 3000)
    # Never below what n cards working at once could do.
    shares = speed.pipeline_share(np.arange(1, 20000, 97), 8)
    assert (shares >= 1 / 8).all() and (shares <= 1).all()


def test_a_pcie_all_reduce_pays_its_ring_latency_per_card_and_an_nvlink_one_does_not():
    costs = {"step_s": 0.0, "layer_s": 0.0, "moe_layer_s": 0.0, "hop_s": 0.0, "allreduce_s": 5e-6}
    costs["allreduce_pcie_s"] = 100e-6
    # 80 layers, two all-reduces each: 160 per step.
    pcie = [float(speed.fixed_decode_s(80, False, n, True, True, costs)) for n in (2, 4, 8)]
    nvlink = [float(speed.fixed_decode_s(80, False, n, True, False, costs)) for n in (2, 4, 8)]
    assert pcie == pytest.approx([160 * 100e-6 * 1, 160 * 100e-6 * 3, 160 * 100e-6 * 7])
    assert nvlink == pytest.approx([160 * 5e-6] * 3)
    # One card, or a layer split, has no all-reduce.
    assert float(speed.fixed_decode_s(80, False, 1, True, True, costs)) == 0.0
    assert float(speed.fixed_decode_s(80, False, 4, False, True, costs)) == 0.0
    assert list(speed.allreduce_steps(np.array([1, 2, 8]))) == [0.0, 1.0, 7.0]
