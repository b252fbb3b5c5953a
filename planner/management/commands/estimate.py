"""python manage.py estimate — the estimator from the command line, for catalog or custom models and hardware."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from physics.vocab import Engine, KVCache, Split, values
from planner.queries import EstimateQuery


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
        h.add_argument("--split", choices=values(Split), default=Split.LAYER)
        h.add_argument("--offload-ram-gb", type=float, default=0.0)
        h.add_argument("--ram-bandwidth-gb-s", type=float, default=0.0)
        w = parser.add_argument_group("workload")
        w.add_argument("--context", type=positive_int, default=4096)
        w.add_argument("--prompt-tokens", type=positive_int, default=512)
        w.add_argument("--batch", type=positive_int, default=1)
        w.add_argument("--kv-cache", choices=values(KVCache), default=KVCache.FP16)
        w.add_argument("--backend", choices=values(Engine), default=Engine.LLAMA_CPP)
        parser.add_argument("--json", action="store_true", help="print JSON")
        parser.add_argument(
            "--capacity",
            action="store_true",
            help="serving capacity instead: the most concurrent users at --context tokens each and --min-tok-s",
        )
        parser.add_argument("--min-tok-s", type=float, default=10.0, help="slowest decode a user accepts (tok/s)")

    def handle(self, *args, **o):
        fields = set(EstimateQuery.base_fields)
        query = EstimateQuery({k: v for k, v in o.items() if k in fields}, option_style="cli")
        if not query.is_valid():
            # Unknown names first: their message carries the closest matches.
            if query.not_found:
                raise CommandError(str(query.not_found[0]), returncode=2)
            raise CommandError(" ".join(query.messages()), returncode=2)
        if o["capacity"]:
            self._capacity(query.inputs().capacity(o["min_tok_s"]), o)
            return
        data = query.inputs().run()
        if o["json"]:
            self.stdout.write(json.dumps(data, indent=2, default=str))
            return
        mem = data["memory"]
        self.stdout.write(
            f"{data['model']} @ {data['quant']} on {o['gpus']}× {data['gpu']} ({o['split']} split), context {o['context']}"
        )
        self.stdout.write(
            f"  memory: weights {mem['weights_gb']:.1f} + KV {mem['kv_cache_gb']:.1f} + overhead {mem['overhead_gb']:.1f} "
            f"= {mem['total_gb']:.1f} GB of {mem['usable_gb']:.1f} usable → {'fits' if data['fits'] else 'does NOT fit'}"
        )
        self.stdout.write(
            f"  decode {data['decode_tok_s']:.1f} tok/s ({data['decode_tok_s_low']:.1f}–{data['decode_tok_s_high']:.1f}), "
            f"{data['decode_bound']}-bound; prefill {data['prefill_tok_s']:.0f} tok/s "
            f"({data['prefill_tok_s_low']:.0f}–{data['prefill_tok_s_high']:.0f}), "
            f"TTFT {data['ttft_s']:.2f} s ({data['ttft_s_low']:.2f}–{data['ttft_s_high']:.2f})"
        )
        for note in data["notes"]:
            self.stdout.write(f"  note: {note}")

    def _capacity(self, data: dict, o: dict) -> None:
        if o["json"]:
            self.stdout.write(json.dumps(data, indent=2, default=str))
            return
        self.stdout.write(
            f"{data['model']} @ {data['quant']} on {data['gpus']}× {data['gpu']}, {data['context']} tokens per user, "
            f"at least {data['min_tok_s']:g} tok/s each"
        )
        if not data["users"]:
            why = "one user's cache does not fit" if data["binds"] == "memory" else "one user is already slower"
            self.stdout.write(f"  no users: {why}")
            return
        self.stdout.write(
            f"  {data['users']} concurrent users ({data['binds']} binds: memory holds {data['memory_users']}, "
            f"speed allows {data['speed_users']}); {data['per_user_tok_s']:.1f} tok/s each, "
            f"{data['total_tok_s']:.0f} tok/s in all; TTFT {data['ttft_s']:.2f} s for a new prompt"
        )
