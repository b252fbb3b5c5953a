"""Model list and model pages: catalog facts, the VRAM table at the visitor's context, and the GPUs that fit."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlencode

from django.http import Http404
from django.shortcuts import redirect, render
from mistral_common.protocol.instruct.messages import UserMessage
from mistral_common.protocol.instruct.request import ChatCompletionRequest
from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

from inference.results import measured_results
from models.models import LanguageModel
from models.resolver import resolve_model
from planner import charts, published
from planner.forms import DEFAULT_QUANT, DEFAULT_RAM_BANDWIDTH_GB_S, DEFAULT_RAM_GB, CapacityForm, ModelGPUForm
from planner.inputs import model_arch
from planner.lookup import NotFound, find_model
from planner.pagecache import catalog_page
from planner.services import gpu_ranking, memory_table, model_capacity, workload_of
from web.fragments import gpu_cards, published_section

# The request the reference page tokenizes; we run it through mistral-common and show the real ids.
EXAMPLE_PROMPT = "Explain Machine Learning to me in a nutshell."
MISTRAL_COMMON_SNIPPET = """from mistral_common.tokens.tokenizers.mistral import MistralTokenizer
from mistral_common.protocol.instruct.messages import UserMessage
from mistral_common.protocol.instruct.request import ChatCompletionRequest

tokenizer = MistralTokenizer.v1()
request = ChatCompletionRequest(messages=[UserMessage(content="{prompt}")])
tokens = tokenizer.encode_chat_completion(request).tokens"""


@dataclass(frozen=True)
class Command:
    """One way to run the model, with the tool it needs."""

    tool: str
    command: str


@catalog_page
def model_list(request):
    models = LanguageModel.objects.order_by("family", "total_params")
    return render(request, "models/model_list.html", {"models": models})


def run_commands(model: LanguageModel, quant: str, context: int) -> list[Command]:
    """Returns the commands that run ``model`` at ``quant`` with ``context`` tokens, built from its catalog row."""
    out = []
    if model.ollama_tag:
        out.append(Command("Ollama", f"ollama run {model.ollama_tag}"))
    gguf = f"{model.slug}.{quant}.gguf"
    out.append(Command("llama.cpp", f"llama-server -m ./{gguf} --ctx-size {context} --n-gpu-layers 999 --port 8080"))
    if model.hf_repo:
        out.append(Command("vLLM", f"vllm serve {model.hf_repo} --max-model-len {context}"))
        out.append(
            Command(
                "transformers",
                "from transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
                f'model_id = "{model.hf_repo}"\n'
                "tokenizer = AutoTokenizer.from_pretrained(model_id)\n"
                'model = AutoModelForCausalLM.from_pretrained(model_id, dtype="auto", device_map="auto")\n'
                'messages = [{"role": "user", "content": "' + EXAMPLE_PROMPT + '"}]\n'
                'inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt")\n'
                "outputs = model.generate(inputs.to(model.device), max_new_tokens=64)\n"
                "print(tokenizer.decode(outputs[0][inputs.shape[-1]:], skip_special_tokens=True))",
            )
        )
    return out


@lru_cache(maxsize=1)
def mistral_tokens(prompt: str = EXAMPLE_PROMPT) -> tuple[int, ...]:
    """Returns the token ids mistral-common's v1 (Mixtral) tokenizer gives the example chat request."""

    request = ChatCompletionRequest(messages=[UserMessage(content=prompt)])
    return tuple(MistralTokenizer.v1().encode_chat_completion(request).tokens)


def _tokenization(model: LanguageModel) -> dict | None:
    # The v1 tokenizer is Mixtral-8x7B's (and Mistral-7B v0.1's); other models use other tokenizers.
    if model.family != "mixtral" or "8x7b" not in model.slug:
        return None
    try:
        tokens = mistral_tokens()
    except ImportError:
        tokens = ()
    return {"code": MISTRAL_COMMON_SNIPPET.format(prompt=EXAMPLE_PROMPT), "tokens": tokens}


def _named_as(name: str, model: LanguageModel) -> dict | None:
    """Returns how a bare Ollama library name the visitor typed was read, with the other models it fits."""
    name = name.strip()[:200]
    if not name:
        return None
    found = resolve_model(name)
    if not found.latest_tag or found.model.pk != model.pk:
        return None
    return {"name": name, "tag": found.latest_tag, "others": found.candidates}


@catalog_page
def model_detail(request, slug: str):
    try:
        # Kept per catalog version, VRAM table and benchmarks prefetched (planner.lookup.find_model).
        model = find_model(slug)
    except NotFound:
        raise Http404(f"No model is called {slug!r}.") from None
    if model.slug != slug:
        # Another name for a model (an alias, an Ollama tag, a different case) moves to its canonical page; a bare
        # Ollama library name keeps itself in the address, so that the page says how it was read.
        named = f"?{urlencode({'named': slug})}" if resolve_model(slug).latest_tag else ""
        return redirect(model.get_absolute_url() + named, permanent=not named)
    form = ModelGPUForm.from_query(request.GET, model=model)
    context: dict = {
        "model": model,
        "named": _named_as(request.GET.get("named", ""), model),
        "form": form,
        "context_choices": _context_choices(model),
        "offload_ram": (DEFAULT_RAM_GB, DEFAULT_RAM_BANDWIDTH_GB_S),
    }
    if form.is_valid():
        data = form.cleaned_data
        workload = workload_of(data)
        memory = memory_table(model, model_arch(model), workload)
        ranking = gpu_ranking(model, data, list(measured_results(model, workload.backend)), sort=data["sort"])
        context.update(
            data=data,
            memory=memory,
            memory_chart=charts.memory_breakdown(memory),
            ranking=ranking,
            cards={
                "fits": gpu_cards(ranking.fits),
                "two_cards": gpu_cards(ranking.two_cards),
                "offload": gpu_cards(ranking.offload),
            },
            notes=[m for m in memory if m.row.note],
        )
    capacity_form = CapacityForm(
        {k[4:]: v for k, v in request.GET.items() if k.startswith("cap-")} or None, prefix=None
    )
    context["capacity_form"] = capacity_form
    if capacity_form.is_bound and capacity_form.is_valid():
        c = capacity_form.cleaned_data
        quant = form.cleaned_data.get("quant") if form.is_valid() else None
        quant = quant if isinstance(quant, str) and quant != "best" else DEFAULT_QUANT
        capacity = model_capacity(model, quant, c["gpu"], c["count"], c["context"], c["min_tok_s"])
        context.update(capacity=capacity, capacity_quant=quant, capacity_chart=charts.capacity_curve(capacity))
    if request.headers.get("HX-Request"):
        status = 400 if form.errors else 200
        return render(request, "models/_results.html", context, status=status)
    context.update(
        benchmarks=list(model.benchmarks.all()),
        commands=run_commands(model, *_command_settings(form)),
        tokenization=_tokenization(model),
        published_html=published_section(f"model:{model.pk}", published.for_model(model)),
    )
    return render(request, "models/model_detail.html", context)


def _command_settings(form: ModelGPUForm) -> tuple[str, int]:
    """Returns the format and context the run commands use: the visitor's when valid, else the form's defaults."""
    data = form.cleaned_data if form.is_valid() else {}
    row = data.get("quant_row")
    return (row.quant.name if row else DEFAULT_QUANT, data.get("context") or form.fields["context"].initial)


def _context_choices(model: LanguageModel) -> list[int]:
    """Returns the context lengths offered by the page's control: 2K doubling up to the model's full context."""
    out, ctx = [], 2048
    while ctx < model.context_length:
        out.append(ctx)
        ctx *= 2
    out.append(model.context_length)
    return out
