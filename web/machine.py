"""The "my machine" page: every catalog model that runs on a machine, in its best format, with speeds."""

from __future__ import annotations

from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from hardware.machine import MIXED_GPUS, match_machine, parse_machine
from physics.estimator import Workload
from planner import charts, published
from planner.forms import MACHINE_SIZES, MACHINE_SORTS, MachineForm, PasteForm
from planner.pagecache import catalog_page
from planner.services import machine_models, model_capacity
from web.fragments import machine_rows, published_section

SORT_KEYS = {
    "speed": (lambda m: m.decode_tok_s, True),
    "size": (lambda m: m.model.total_params, True),
    "name": (lambda m: m.model.name.lower(), False),
}


@catalog_page
def machine(request):
    form = MachineForm(request.GET or None)
    context: dict = {"form": form, "sorts": MACHINE_SORTS, "paste": PasteForm()}
    status = 200
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        workload = Workload(context=data["context"], batch=data["users"])
        rows = machine_models(data["gpu"], data["count"], data["ram"], data["ram_bandwidth_gb_s"], workload)
        families = sorted({m.model.family for m in rows if m.model.family})
        if data["family"]:
            rows = [m for m in rows if m.model.family == data["family"]]
        if data["moe"]:
            rows = [m for m in rows if m.model.is_moe == (data["moe"] == "moe")]
        if data["use"]:
            rows = [m for m in rows if data["use"] in m.model.tag_list]
        if data["size"]:
            _, lowest, below = MACHINE_SIZES[data["size"]]
            rows = [m for m in rows if lowest <= m.model.total_params / 1e9 < below]
        key, reverse_ = SORT_KEYS[data["sort"]]
        rows.sort(key=key, reverse=reverse_)
        # The links that open one model's serving capacity keep every other setting of this view.
        query = request.GET.copy()
        query.pop("serve", None)
        context.update(
            data=data,
            rows=rows,
            families=families,
            offloaded=sum(m.offload for m in rows),
            query=query.urlencode(),
            rows_html=machine_rows(rows, data["count"], query.urlencode()),
            published_html=published_section(
                f"machine:{data['gpu'].pk}x{data['count']}",
                [p for p in published.for_gpu(data["gpu"]) if p.count == data["count"]],
                show_model=True,
            ),
        )
        serving = next((m for m in rows if m.model.slug == data["serve"]), None) if data["serve"] else None
        if serving is not None:
            context.update(_serving(serving, data))
    elif form.is_bound:
        status = 400
    return render(request, "machine/machine.html", context, status=status)


def _serving(row, data: dict) -> dict:
    """Returns the serving capacity of the machine for one listed model, in the format the table shows for it."""
    capacity = model_capacity(
        row.model,
        row.quant,
        data["gpu"],
        data["count"],
        data["context"],
        data["min_tok_s"],
        split="layer",
        offload_ram_gb=data["ram"],
        ram_bandwidth_gb_s=data["ram_bandwidth_gb_s"],
    )
    return {"serving": row, "capacity": capacity, "capacity_chart": charts.capacity_curve(capacity)}


@require_POST
def paste(request):
    """Reads pasted tool output: a clean match goes to the machine page; anything else shows what was understood."""
    form = PasteForm(request.POST)
    if not form.is_valid():
        return render(request, "machine/paste.html", {"paste": form}, status=400)
    parsed = parse_machine(form.cleaned_data["text"])
    machine = match_machine(parsed)
    if form.cleaned_data["ram"] is not None:
        machine.ram_gb = form.cleaned_data["ram"]
    context = {"paste": form, "parsed": parsed, "machine": machine}
    if not machine.gpus:
        context["problem"] = "No GPU in the text matched the catalog."
        if any(u.candidates for u in machine.unmatched):
            context["problem"] = "The text names a Mac whose chip comes in several configurations; pick yours below."
    elif machine.mixed:
        context["problem"] = MIXED_GPUS
    elif machine.unmatched:
        context["problem"] = "Some GPUs did not match the catalog; check them below."
    else:
        return redirect(f"{reverse('machine')}?{machine.query_string()}")
    return render(request, "machine/paste.html", context, status=422)
