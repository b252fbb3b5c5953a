"""python manage.py estimate — the estimator from the command line, for catalog or custom models and hardware."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from planner.calibration import calibration_factors
from planner.estimator import BACKENDS, Build, GPUSpec, ModelArch, Quant, Workload, estimate
from planner.inputs import gpu_spec, model_arch, quant_of
from planner.lookup import NotFound, find_format, find_gpu, find_model


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be at least 1")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError("must be more than 0")
    return value


class Command(BaseCommand):
    help = (
        "Estimates fit, speed and cost for a model on a GPU or a build. Give --model (slug, name or HF repo id) or "
        "the architecture (--params-b, --layers, --kv-heads, --head-dim …); --gpu (name, slug or alias) or custom "
        "hardware (--bandwidth-gb-s, --memory-gb). Unknown names exit with code 2 and the closest matches."
    )

    def add_arguments(self, parser):
        m = parser.add_argument_group("model")
        m.add_argument("--model", help="catalog model: slug, name or Hugging Face repo id")
        m.add_argument("--params-b", type=positive_float, help="total parameters, billions (custom model)")
        m.add_argument("--active-params-b", type=positive_float, help="active parameters per token, billions")
        m.add_argument("--layers", type=positive_int)
        m.add_argument("--kv-heads", type=positive_int)
        m.add_argument("--head-dim", type=positive_int)
        m.add_argument("--heads", type=positive_int, help="query heads (default: kv heads × 4)")
        m.add_argument("--hidden", type=positive_int)
        m.add_argument("--vocab", type=positive_int, default=32000)
        m.add_argument("--experts", type=int, default=0)
        m.add_argument("--experts-per-token", type=int, default=0)
        q = parser.add_argument_group("quantization")
        q.add_argument("--quant", help="catalog format name (Q4_K_M, Q8_0, FP8, MXFP4 …)")
        q.add_argument("--bits-per-weight", type=positive_float, help="for a format the catalog lacks")
        h = parser.add_argument_group("hardware")
        h.add_argument("--gpu", help="catalog GPU: name, slug or alias")
        h.add_argument("--bandwidth-gb-s", type=positive_float)
        h.add_argument("--memory-gb", type=positive_float)
        h.add_argument("--tflops", type=positive_float, help="dense FP16 tensor TFLOPS (custom hardware)")
        h.add_argument("--unified", action="store_true", help="custom hardware shares system memory")
        h.add_argument("--gpus", type=positive_int, default=1)
        h.add_argument("--split", choices=["layer", "tensor"], default="layer")
        h.add_argument("--offload-ram-gb", type=float, default=0.0)
        h.add_argument("--ram-bandwidth-gb-s", type=float, default=0.0)
        w = parser.add_argument_group("workload")
        w.add_argument("--context", type=positive_int, default=4096)
        w.add_argument("--prompt-tokens", type=positive_int, default=512)
        w.add_argument("--batch", type=positive_int, default=1)
        w.add_argument("--kv-cache", choices=["fp16", "q8", "q4"], default="fp16")
        w.add_argument("--backend", choices=list(BACKENDS), default="llama.cpp")
        parser.add_argument("--json", action="store_true", help="print JSON")

    def handle(self, *args, **o):
        try:
            model, quant = self._model_and_quant(o)
            gpu = self._gpu(o)
        except NotFound as exc:
            raise CommandError(str(exc), returncode=2) from exc
        if o["context"] > model.context_length:
            raise CommandError(
                f"--context {o['context']} is longer than {model.name}'s {model.context_length}-token context.",
                returncode=2,
            )
        if (o["offload_ram_gb"] > 0) != (o["ram_bandwidth_gb_s"] > 0):
            raise CommandError("--offload-ram-gb and --ram-bandwidth-gb-s go together.", returncode=2)
        build = Build(
            gpu=gpu,
            count=o["gpus"],
            split=o["split"],
            offload_ram_gb=o["offload_ram_gb"],
            ram_bandwidth_gb_s=o["ram_bandwidth_gb_s"],
        )
        workload = Workload(
            context=o["context"],
            prompt_tokens=o["prompt_tokens"],
            batch=o["batch"],
            kv_cache=o["kv_cache"],
            backend=o["backend"],
        )
        result = estimate(model, quant, build, workload, calibration_factors())
        data = {"model": model.name, "quant": quant.name, "gpu": gpu.name, "gpus": o["gpus"], **result.to_dict()}
        if o["json"]:
            self.stdout.write(json.dumps(data, indent=2, default=str))
            return
        mem = data["memory"]
        self.stdout.write(
            f"{model.name} @ {quant.name} on {o['gpus']}× {gpu.name} ({o['split']} split), context {o['context']}"
        )
        self.stdout.write(
            f"  memory: weights {mem['weights_gb']:.1f} + KV {mem['kv_cache_gb']:.1f} + overhead {mem['overhead_gb']:.1f} "
            f"= {mem['total_gb']:.1f} GB of {mem['usable_gb']:.1f} usable → {'fits' if data['fits'] else 'does NOT fit'}"
        )
        self.stdout.write(
            f"  decode {data['decode_tok_s']:.1f} tok/s ({data['decode_tok_s_low']:.1f}–{data['decode_tok_s_high']:.1f}), "
            f"{data['decode_bound']}-bound; prefill {data['prefill_tok_s']:.0f} tok/s, TTFT {data['ttft_s']:.2f} s"
        )
        for note in data["notes"]:
            self.stdout.write(f"  note: {note}")

    def _model_and_quant(self, o) -> tuple[ModelArch, Quant]:
        if o["model"]:
            row = find_model(o["model"])
            model = model_arch(row)
            vram = {r.quant.name.lower(): r for r in row.vram_rows.all()}
        else:
            missing = [f"--{k.replace('_', '-')}" for k in ("params_b", "layers", "kv_heads", "head_dim") if not o[k]]
            if missing:
                raise CommandError(f"Give --model, or a custom model with {', '.join(missing)}.", returncode=2)
            total = int(o["params_b"] * 1e9)
            active = int((o["active_params_b"] or o["params_b"]) * 1e9)
            if active > total:
                raise CommandError("--active-params-b cannot exceed --params-b.", returncode=2)
            if o["experts_per_token"] > o["experts"]:
                raise CommandError("--experts-per-token cannot exceed --experts.", returncode=2)
            heads = o["heads"] or o["kv_heads"] * 4
            hidden = o["hidden"] or heads * o["head_dim"]
            expert_params = (
                (total - active) // max(o["experts"] - o["experts_per_token"], 1) // o["layers"] if o["experts"] else 0
            )
            model = ModelArch(
                name="custom model",
                total_params=total,
                active_params=active,
                layers=o["layers"],
                hidden=hidden,
                heads=heads,
                kv_heads=o["kv_heads"],
                head_dim=o["head_dim"],
                vocab=o["vocab"],
                context_length=max(o["context"], 4096),
                experts=o["experts"],
                experts_per_token=o["experts_per_token"],
                expert_params=expert_params,
                moe_layers=o["layers"] if o["experts"] else 0,
                embedding_params=o["vocab"] * hidden,
            )
            vram = {}
        if not o["quant"] and not o["bits_per_weight"]:
            raise CommandError("Give --quant NAME and/or --bits-per-weight X.", returncode=2)
        if o["quant"]:
            row = vram.get(o["quant"].lower())
            if row is not None:
                quant = quant_of(row)
            else:
                fmt = find_format(o["quant"])
                quant = Quant(name=fmt.name, bits_per_weight=fmt.bits_per_weight, kind=fmt.kind)
            if o["bits_per_weight"]:
                quant = Quant(name=quant.name, bits_per_weight=o["bits_per_weight"], kind=quant.kind)
        else:
            quant = Quant(name=f"{o['bits_per_weight']} bpw", bits_per_weight=o["bits_per_weight"], kind="custom")
        return model, quant

    def _gpu(self, o) -> GPUSpec:
        if o["gpu"]:
            return gpu_spec(find_gpu(o["gpu"]))
        if not (o["bandwidth_gb_s"] and o["memory_gb"]):
            raise CommandError(
                "Give --gpu NAME, or custom hardware with --bandwidth-gb-s and --memory-gb.", returncode=2
            )
        return GPUSpec(
            name="custom hardware",
            vendor="other",
            segment="integrated-soc" if o["unified"] else "consumer",
            memory_gb=o["memory_gb"],
            bandwidth_gb_s=o["bandwidth_gb_s"],
            fp16_tflops=o["tflops"],
            unified_memory=o["unified"],
        )
