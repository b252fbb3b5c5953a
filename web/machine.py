"""The "my machine" page: every catalog model that runs on a machine, in its best format, with speeds."""

from __future__ import annotations

from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from hardware.machine import match_machine, parse_machine
from physics.estimator import Workload
from planner.forms import MACHINE_SORTS, MachineForm, PasteForm
from planner.pagecache import catalog_page
from planner.services import machine_models

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
        key, reverse = SORT_KEYS[data["sort"]]
        rows.sort(key=key, reverse=reverse)
        context.update(data=data, rows=rows, families=families, offloaded=sum(m.offload for m in rows))
    elif form.is_bound:
        status = 400
    return render(request, "machine/machine.html", context, status=status)


@require_POST
def paste(request):
    """Reads pasted tool output: a clean match goes to the machine page; anything else shows what was understood."""
    form = PasteForm(request.POST)
    if not form.is_valid():
        return render(request, "machine/paste.html", {"paste": form}, status=400)
    parsed = parse_machine(form.cleaned_data["text"])
    machine = match_machine(parsed)
    context = {"paste": form, "parsed": parsed, "machine": machine}
    if not machine.gpus:
        context["problem"] = "No GPU in the text matched the catalog."
    elif machine.mixed:
        context["problem"] = "These are different GPU models; the machine page estimates one model at a time."
    elif machine.unmatched:
        context["problem"] = "Some GPUs did not match the catalog; check them below."
    else:
        return redirect(f"{reverse('machine')}?{machine.query_string()}")
    return render(request, "machine/paste.html", context, status=422)
