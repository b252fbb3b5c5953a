"""Weight-only int8 / int4 quantization of the torch Mixtral, as module swaps.

Rules (what is quantized and why):
- attention projections (wq, wk, wv, wo) and the three expert matrices: int8 per output channel, or int4 group-wise;
- experts are quantized per expert: every [out, in] matrix of the [E, out, in] stack has its own scales;
- the MoE router (gate, 8 x 4096) stays in the activation dtype: it is 0.03 % of a layer and a flipped top-2
  choice changes the output far more than any weight rounding;
- the token embedding stays in the activation dtype: a decode step reads only B rows of it;
- lm_head is int8 in both modes: it decides the next token directly, and int4 on it costs the most quality
  per byte saved (it is 131 M of Mixtral's 46.7 B parameters).
Activations stay in bf16/fp16/fp32; weights are dequantized on the fly (weight-only quantization).

Two ways to run a quantized matmul:
- the reference path dequantizes the codes and calls an ordinary matmul (any device, and the form torch.compile
  fuses); eager, it writes and re-reads a full-precision copy of every weight it touches;
- `use_fused_kernels` switches the modules to torch's fused weight-only kernels where the device has them
  (`aten._weight_int8pack_mm`; int4: `aten._weight_int4pack_mm_for_cpu` on the CPU, the tinygemm
  `aten._weight_int4pack_mm` on CUDA), which read the codes once. int4 codes are repacked into the kernel's
  layout. A kernel is used only after it matched the reference path on the device in a self-test; otherwise the
  modules stay on the reference path and the report says why.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bench.mixtral import Experts, Mixtral, RoutedFFN, matvec

MODES = ("int8", "int4")
INT8_KERNEL = "_weight_int8pack_mm"
INT4_KERNELS = {"cpu": "_weight_int4pack_mm_for_cpu", "cuda": "_weight_int4pack_mm"}
_INT4_CONVERT = {"cpu": "_convert_weight_to_int4pack_for_cpu", "cuda": "_convert_weight_to_int4pack"}
_CUDA_INNER_K_TILES = 8  # tinygemm's tiling of the reduction dimension (2, 4 or 8)
# Standard deviation of a uniform integer code, used to scale random codes to a target weight std.
_INT8_CODE_STD = ((255**2 - 1) / 12) ** 0.5  # codes uniform in [-127, 127]
_INT4_CODE_STD = ((16**2 - 1) / 12) ** 0.5  # nibbles uniform in [0, 15], centred at 8


def quantize_int8(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns (codes int8 [..., out, in], scales [..., out]) with w ~= codes * scales[..., None]."""
    scales = w.float().abs().amax(dim=-1).clamp(min=1e-8) / 127.0
    codes = torch.round(w.float() / scales[..., None]).clamp(-127, 127).to(torch.int8)
    return codes, scales.to(w.dtype)


def quantize_int4(w: torch.Tensor, group_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns (packed uint8 [..., out, in/2], scales [..., out, in/group]): two 4-bit codes per byte, zero at 8."""
    *lead, n_in = w.shape
    if n_in % group_size:
        raise ValueError(f"input width {n_in} is not a multiple of group size {group_size}")
    g = w.float().reshape(*lead, n_in // group_size, group_size)  # [..., out, G, group]
    scales = g.abs().amax(dim=-1).clamp(min=1e-8) / 7.0  # symmetric: codes -7..7 use 15 of the 16 levels
    codes = (torch.round(g / scales[..., None]).clamp(-8, 7) + 8).to(torch.uint8).reshape(*lead, n_in)
    packed = codes[..., 0::2] | (codes[..., 1::2] << 4)  # even input index in the low nibble
    return packed, scales.to(w.dtype)


def dequantize_int4(packed: torch.Tensor, scales: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Returns the [..., out, in] weight in dtype from packed codes and group scales."""
    low = (packed & 0x0F).to(dtype) - 8
    high = (packed >> 4).to(dtype) - 8
    w = torch.stack([low, high], dim=-1).flatten(-2)  # [..., out, in]: re-interleave even/odd inputs
    n_groups = scales.shape[-1]
    w = w.unflatten(-1, (n_groups, -1)) * scales.to(dtype)[..., None]  # [..., out, G, group]
    return w.flatten(-2)


def int4_matvec(x: torch.Tensor, packed: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Returns the int4 matrices (packed [..., out, in/2], scales [..., out, G]) applied to x [..., in]: float32.

    Under torch.compile the nibbles are unpacked, scaled and summed in one expression, so inductor reads the
    packed codes once and never writes a full-precision weight; eager, the weight is dequantized first.
    """
    if not torch.compiler.is_compiling():
        return matvec(x, dequantize_int4(packed, scales, x.dtype))
    xf = x.float()
    even, odd = xf[..., 0::2].unsqueeze(-2), xf[..., 1::2].unsqueeze(-2)  # [..., 1, in/2]
    low, high = (packed & 0x0F).float() - 8, (packed >> 4).float() - 8  # [..., out, in/2]
    per_group = (even * low + odd * high).unflatten(-1, (scales.shape[-1], -1)).sum(-1)  # [..., out, G]
    return (per_group * scales.float()).sum(-1)


def _one_row(x: torch.Tensor) -> bool:
    """Returns whether a compiled graph is multiplying a single activation row (a batch-1 decode step)."""
    return torch.compiler.is_compiling() and x.numel() == x.shape[-1]


def _has_kernel(op: str, device: torch.device) -> bool:
    """Returns whether aten::op has a kernel registered for the device's type in this torch build."""
    key = {"cpu": "CPU", "cuda": "CUDA"}.get(device.type)
    return key is not None and torch._C._dispatch_has_kernel_for_dispatch_key(f"aten::{op}", key)


def int8_mm(x: torch.Tensor, codes: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Returns x [..., in] @ (codes [out, in] * scales [out, None])^T with the fused int8 kernel."""
    flat = x.reshape(-1, x.shape[-1]).contiguous()
    return torch.ops.aten._weight_int8pack_mm(flat, codes, scales.to(x.dtype)).reshape(*x.shape[:-1], -1)


def int4_kernel_layout(
    packed: torch.Tensor, scales: torch.Tensor, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns (weight, scales_and_zeros) of one [out, in/2] packed matrix in the device kernel's layout.

    The kernels compute w = (q - 8) * scale + zero per group; our codes are symmetric around 8, so zero is 0.
    scales_and_zeros is [in/group, out, 2] in the activation dtype.
    """
    low, high = packed & 0x0F, packed >> 4
    convert = getattr(torch.ops.aten, _INT4_CONVERT[packed.device.type])
    if packed.device.type == "cpu":
        codes = torch.stack([low, high], dim=-1).flatten(-2).to(torch.int32)  # [out, in], one code per int32
        weight = convert(codes.contiguous(), 2)
    else:
        # tinygemm takes two codes per byte with the even input index in the high nibble.
        weight = convert((low << 4 | high).contiguous(), _CUDA_INNER_K_TILES)
    s = scales.to(dtype).transpose(0, 1)  # [G, out]
    return weight, torch.stack([s, torch.zeros_like(s)], dim=-1).contiguous()


def int4_mm(x: torch.Tensor, weight: torch.Tensor, scales_zeros: torch.Tensor, group_size: int) -> torch.Tensor:
    """Returns x [..., in] @ W^T with W in the device's int4 kernel layout (see int4_kernel_layout)."""
    kernel = getattr(torch.ops.aten, INT4_KERNELS[x.device.type])
    flat = x.reshape(-1, x.shape[-1]).contiguous()
    return kernel(flat, weight, group_size, scales_zeros).reshape(*x.shape[:-1], -1)


class Int8Linear(nn.Module):
    """y = x W^T with W stored as int8 codes and one scale per output channel."""

    def __init__(self, in_features: int, out_features: int, device=None, dtype=torch.bfloat16):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.register_buffer("weight", torch.empty(out_features, in_features, dtype=torch.int8, device=device))
        self.register_buffer("scales", torch.empty(out_features, dtype=dtype, device=device))

    @classmethod
    def from_linear(cls, lin: nn.Linear) -> Int8Linear:
        """Returns the int8 twin of lin (meta in, meta out: the codes are filled at materialisation)."""
        q = cls(lin.in_features, lin.out_features, device=lin.weight.device, dtype=lin.weight.dtype)
        if lin.weight.device.type != "meta":
            q.weight, q.scales = quantize_int8(lin.weight.data)
        return q

    fused = False  # set by use_fused_kernels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused and not torch.compiler.is_compiling():
            return int8_mm(x, self.weight, self.scales)
        if _one_row(x):  # compiled batch-1 decode: one reduction reading the int8 codes once
            return (matvec(x, self.weight) * self.scales.float()).to(x.dtype)
        # Scaling the output instead of the weight: same result, one multiply per output instead of per weight.
        return F.linear(x, self.weight.to(x.dtype)) * self.scales.to(x.dtype)

    def use_kernel(self) -> None:
        self.fused = True

    # init_random passes both stds to every quantized module; out_std is for QuantExperts' w2, and a linear's
    # std already comes chosen, so it goes unused here.
    @torch.no_grad()
    def fill_random_(self, gen: torch.Generator, std: float, out_std: float) -> None:  # noqa: ARG002
        self.weight.random_(-127, 128, generator=gen)
        self.scales.fill_(std / _INT8_CODE_STD)


class Int4Linear(nn.Module):
    """y = x W^T with W stored as packed 4-bit codes and one scale per group of group_size inputs."""

    def __init__(self, in_features: int, out_features: int, group_size: int, device=None, dtype=torch.bfloat16):
        super().__init__()
        if in_features % group_size:
            raise ValueError(f"input width {in_features} is not a multiple of group size {group_size}")
        self.in_features, self.out_features, self.group_size = in_features, out_features, group_size
        self.register_buffer("weight", torch.empty(out_features, in_features // 2, dtype=torch.uint8, device=device))
        self.register_buffer("scales", torch.empty(out_features, in_features // group_size, dtype=dtype, device=device))

    @classmethod
    def from_linear(cls, lin: nn.Linear, group_size: int) -> Int4Linear:
        """Returns the int4 twin of lin (meta in, meta out)."""
        q = cls(lin.in_features, lin.out_features, group_size, device=lin.weight.device, dtype=lin.weight.dtype)
        if lin.weight.device.type != "meta":
            q.weight, q.scales = quantize_int4(lin.weight.data, group_size)
        return q

    fused = False  # set by use_kernel: weight and scales are then in the device kernel's layout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused:
            return int4_mm(x, self.weight, self.scales, self.group_size)
        if _one_row(x):  # compiled batch-1 decode: one reduction reading the packed codes once
            return int4_matvec(x, self.weight, self.scales).to(x.dtype)
        return F.linear(x, dequantize_int4(self.weight, self.scales, x.dtype))

    @torch.no_grad()
    def use_kernel(self) -> None:
        """Repacks the codes into the device kernel's layout (same bytes; the scales gain their zero points)."""
        self.weight, self.scales = int4_kernel_layout(self.weight, self.scales, self.scales.dtype)
        self.fused = True

    # init_random passes both stds to every quantized module; out_std is for QuantExperts' w2, and a linear's
    # std already comes chosen, so it goes unused here.
    @torch.no_grad()
    def fill_random_(self, gen: torch.Generator, std: float, out_std: float) -> None:  # noqa: ARG002
        self.weight.random_(0, 256, generator=gen)
        self.scales.fill_(std / _INT4_CODE_STD)


class QuantExperts(RoutedFFN):
    """Expert stack with int8 (per channel) or int4 (group-wise) codes, quantized per expert."""

    def __init__(self, experts: Experts, mode: str, group_size: int):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.mode, self.group_size = mode, group_size
        self.n_experts, self.top_k = experts.n_experts, experts.top_k
        dtype, device = experts.w1.dtype, experts.w1.device
        for name in ("w1", "w2", "w3"):
            w = getattr(experts, name)
            e, out, n_in = w.shape
            if device.type != "meta":
                codes, scales = quantize_int8(w.data) if mode == "int8" else quantize_int4(w.data, group_size)
            elif mode == "int8":
                codes = torch.empty(e, out, n_in, dtype=torch.int8, device=device)
                scales = torch.empty(e, out, dtype=dtype, device=device)
            else:
                if n_in % group_size:
                    raise ValueError(f"input width {n_in} is not a multiple of group size {group_size}")
                codes = torch.empty(e, out, n_in // 2, dtype=torch.uint8, device=device)
                scales = torch.empty(e, out, n_in // group_size, dtype=dtype, device=device)
            self.register_buffer(name, codes)
            self.register_buffer(name + "_scales", scales)

    fused = False  # set by use_kernel

    def use_gather(self, n_tokens: int) -> bool:
        # A compiled decode step reads the chosen experts' codes in place (matvec): no copy, no host sync.
        if self.prefer_gather and torch.compiler.is_compiling():
            return n_tokens <= 16
        # Fused kernels read each touched expert's codes once per step: dispatching is then always cheaper.
        if self.fused:
            return False
        # Gathering copies k experts per token; beyond half the stack that reads more than dispatching does.
        return n_tokens * self.top_k <= self.n_experts // 2

    @torch.no_grad()
    def use_kernel(self) -> None:
        """Switches the expert matmuls to the fused kernel (int4 codes are repacked expert by expert)."""
        if self.mode == "int4":
            for name in ("w1", "w2", "w3"):
                codes, scales = getattr(self, name), getattr(self, name + "_scales")
                pairs = [int4_kernel_layout(codes[e], scales[e], scales.dtype) for e in range(codes.shape[0])]
                setattr(self, name, torch.stack([w for w, _ in pairs]))
                setattr(self, name + "_scales", torch.stack([sz for _, sz in pairs]))
        self.fused = True

    def _matmul(self, rows: torch.Tensor, name: str, e: int) -> torch.Tensor:
        """Returns rows @ W_e^T for expert e of matrix name, fused when switched to the kernel."""
        codes, scales = getattr(self, name)[e], getattr(self, name + "_scales")[e]
        if not self.fused:
            return F.linear(rows, self.weight(name, e, rows.dtype))
        if self.mode == "int8":
            return int8_mm(rows, codes, scales)
        return int4_mm(rows, codes, scales, self.group_size)

    def weight(self, name: str, index: torch.Tensor | int, dtype: torch.dtype) -> torch.Tensor:
        """Returns the dequantized weights of experts `index` for matrix name ('w1', 'w2', 'w3')."""
        codes, scales = getattr(self, name)[index], getattr(self, name + "_scales")[index]
        if self.mode == "int8":
            return codes.to(dtype) * scales.to(dtype)[..., None]
        return dequantize_int4(codes, scales, dtype)

    def _gathered(self, x: torch.Tensor, name: str, idx: torch.Tensor) -> torch.Tensor:
        """Returns matrix name of experts idx [T, k] applied to x [T, k or 1, in]: [T, k, out] float32."""
        codes, scales = getattr(self, name)[idx], getattr(self, name + "_scales")[idx]
        if self.mode == "int8":
            # Codes are exact in the activation dtype, so scaling the outputs gives the dequantized product.
            return matvec(x, codes) * scales.float()
        return int4_matvec(x, codes, scales)

    def forward_gather(self, x: torch.Tensor, idx: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Returns the MoE output from each token's gathered experts (a few tokens, or a compiled decode step)."""
        xt = x.unsqueeze(1)  # [T, 1, dim]: every chosen expert of a token reads the same row
        h = F.silu(self._gathered(xt, "w1", idx)) * self._gathered(xt, "w3", idx)  # [T, k, ffn]
        y = self._gathered(h.to(x.dtype), "w2", idx)  # [T, k, dim]
        return (y * weights.unsqueeze(-1)).sum(1).to(x.dtype)

    def _ffn(self, xs: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """Returns the SwiGLU output of rows xs grouped by expert, dequantizing one expert at a time."""
        out = torch.empty(xs.shape[0], self.w2.shape[1], dtype=xs.dtype, device=xs.device)
        start = 0
        for e, n in enumerate(counts.tolist()):  # host sync; experts with no tokens are never dequantized
            if n:
                rows = xs[start : start + n]
                h = F.silu(self._matmul(rows, "w1", e)) * self._matmul(rows, "w3", e)
                out[start : start + n] = self._matmul(h, "w2", e)
                start += n
        return out

    @torch.no_grad()
    def fill_random_(self, gen: torch.Generator, std: float, out_std: float) -> None:
        for name in ("w1", "w2", "w3"):
            codes, scales = getattr(self, name), getattr(self, name + "_scales")
            if self.mode == "int8":
                codes.random_(-127, 128, generator=gen)
                code_std = _INT8_CODE_STD
            else:
                codes.random_(0, 256, generator=gen)
                code_std = _INT4_CODE_STD
            scales.fill_((out_std if name == "w2" else std) / code_std)


@torch.no_grad()
def quantize_model(model: Mixtral, mode: str, group_size: int = 128) -> Mixtral:
    """Returns model with its linears and expert stacks swapped for int8/int4 modules (in place).

    On a meta model this only swaps shapes; init_random then fills the integer codes directly on the device, so the
    full-precision weights never exist (Mixtral-8x7B int4 never needs the 93 GB of bf16).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")

    def linear(lin: nn.Linear) -> nn.Module:
        return Int8Linear.from_linear(lin) if mode == "int8" else Int4Linear.from_linear(lin, group_size)

    for layer in model.layers:
        att = layer.attention
        att.wq, att.wk, att.wv, att.wo = linear(att.wq), linear(att.wk), linear(att.wv), linear(att.wo)
        layer.moe.experts = QuantExperts(layer.moe.experts, mode, group_size)
    model.output = Int8Linear.from_linear(model.output)
    return model


def kernel_self_test(mode: str, device: torch.device, dtype: torch.dtype, group_size: int = 128) -> str | None:
    """Returns None when the fused kernel for mode matches the reference path on device, else the reason it is not used.

    A 256 x 512 random matrix and 3 input rows; the kernel must agree within 2 % of the output's largest value
    (both paths round to the activation dtype, so a few tenths of a percent is normal; a wrong layout is off by
    the output's whole magnitude).
    """
    op = INT8_KERNEL if mode == "int8" else INT4_KERNELS.get(device.type, "")
    if (
        not op
        or not _has_kernel(op, device)
        or (mode == "int4" and not _has_kernel(_INT4_CONVERT[device.type], device))
    ):
        return f"this torch build has no {mode} weight-only kernel for {device.type}"
    gen = torch.Generator(device="cpu").manual_seed(0)
    lin = nn.Linear(512, 256, bias=False)
    lin.weight.data = (torch.randn(256, 512, generator=gen) * 0.05).to(device=device, dtype=dtype)
    x = torch.randn(3, 512, generator=gen).to(device=device, dtype=dtype)
    q = Int8Linear.from_linear(lin) if mode == "int8" else Int4Linear.from_linear(lin, min(group_size, 512))
    try:
        with torch.no_grad():
            ref = q(x).float()
            q.use_kernel()
            got = q(x).float()
    except RuntimeError as exc:  # also NotImplementedError: a kernel without this dtype or shape
        return f"{op} failed on {device.type} ({dtype}): {str(exc).splitlines()[0][:160]}"
    err = (got - ref).abs().max().item() / max(ref.abs().max().item(), 1e-6)
    if not err < 0.02:
        return f"{op} disagreed with the reference path on {device.type} ({dtype}): {err:.1%} of the output"
    return None


def _mode(module: nn.Module) -> str:
    return "int8" if isinstance(module, Int8Linear) else ("int4" if isinstance(module, Int4Linear) else module.mode)


@torch.no_grad()
def use_fused_kernels(model: Mixtral, dtype: torch.dtype, modes: tuple[str, ...] = MODES) -> str:
    """Switches the quantized modules of model in `modes` to the device's fused kernel when it passes the self-test.

    Returns what runs the quantized matmuls, for the benchmark report. A compiled decode step passes
    modes=("int8",): int8 keeps its layout in the kernel, so the compiled step still reads the codes; int4 would be
    repacked.
    """
    modules = [m for m in model.modules() if isinstance(m, (Int8Linear, Int4Linear, QuantExperts))]
    if not modules:
        return ""
    device = next(model.buffers()).device
    present = {_mode(m) for m in modules}
    group_size = getattr(modules[0], "group_size", 128)
    problems = {mode: kernel_self_test(mode, device, dtype, group_size) for mode in present if mode in modes}
    for m in modules:
        if problems.get(_mode(m), "") is None:
            m.use_kernel()
    parts = []
    for mode in sorted(present):
        op = INT8_KERNEL if mode == "int8" else INT4_KERNELS.get(device.type, "")
        if mode not in problems:
            parts.append(f"{mode}: dequantize + matmul")
        elif problems[mode] is None:
            parts.append(f"{mode}: aten.{op}")
        else:
            parts.append(f"{mode}: dequantize + matmul ({problems[mode]})")
    return "; ".join(parts)
