"""The repeated fragments of the longest pages, written in Python: GPU cards, the GPU page's model rows and the
machine page's rows.

Django's template engine costs a few microseconds per variable; a model page shows up to 60 cards of twenty
figures and a GPU page up to a thousand table rows, which made rendering most of a page's time
(docs/performance.md, "Page speed targets"). These functions write the same markup with every text escaped;
the figures arrive formatted (``show``) from the services. The page templates place the fragments.
"""

from __future__ import annotations

from functools import lru_cache
from html import escape

from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe

from planner.lookup import remembered


@lru_cache(maxsize=4096)
def _e(value: object) -> str:
    # Names, formats and bounds repeat on every page (a model has up to 18 formats), so their escaping is kept.
    return escape(str(value), quote=True)


def gpu_card(row: dict) -> str:
    """Returns one GPU card of a ranking row (``planner.services`` records: plain values and ``show`` texts)."""
    show = row["show"]
    count = row.get("count") or 1
    measured = row.get("measured")
    if row.get("offloaded_gb"):
        room = f"{show['offloaded_gb']} GB of weights in system RAM"
    else:
        room = f"headroom {show['headroom_gb']} GB of {show['usable_gb']} usable"
    if row.get("price_usd") is not None:
        price = f"${show['price_usd']}" + (" each" if count > 1 else "")
    else:
        price = '<span class="muted">no price</span>'
    return (
        f'<article class="gpu-card{" measured" if measured else ""}" data-memory-gb="{_e(row["memory_gb"])}">\n'
        f'  <h3><a href="/gpus/{_e(row["slug"])}/">{f"{count}× " if count > 1 else ""}{_e(row["name"])}</a>\n'
        + ('    <span class="badge-measured" title="A benchmark ran on this GPU">measured</span>' if measured else "")
        + "</h3>\n"
        f'  <p class="spec">{show["memory_gb"]} GB VRAM · {show["bandwidth_gb_s"]} GB/s · '
        f'<span class="vendor">{_e(str(row["vendor"]).upper())}</span></p>\n'
        f'  <p class="speed"><strong>{show["decode_tok_s"]}</strong> tok/s\n'
        f'    <span class="muted small">({show["decode_tok_s_low"]}–{show["decode_tok_s_high"]}, '
        f"{_e(row['decode_bound'])}-bound)</span></p>\n"
        f'  <p class="small">\n    {room}\n    · {_e(row["quant"])}\n    · {price}\n  </p>\n'
        "</article>"
    )


def gpu_cards(rows: list[dict]) -> SafeString:
    """Returns the cards of ranking rows, in order."""
    return mark_safe("".join(gpu_card(row) for row in rows))


def model_row(row: dict) -> str:
    """Returns one row of the GPU page's model table (``planner.services.gpu_models`` rows)."""
    show = row["show"]
    name = _e(row["model"])
    link = f'<a href="{_e(row["url"])}">{name}</a>' if row.get("url") else name
    cost = show["usd_per_million_tokens"]
    nofit = "" if row["fits"] else ' class="nofit"'
    return (
        f"<tr{nofit}>\n"
        f"<td>{link}</td><td>{_e(row['quant'])}</td>\n"
        f'<td class="num">{show["total_gb"]} GB</td><td class="num">{show["headroom_gb"]} GB</td>\n'
        f'<td class="num">{show["decode_tok_s"]} <span class="muted small">({show["decode_tok_s_low"]}–'
        f"{show['decode_tok_s_high']})</span></td>\n"
        f'<td class="num">{show["prefill_tok_s"]}</td><td class="num">{show["ttft_s"]} s '
        f'<span class="muted small">({show["ttft_s_low"]}–{show["ttft_s_high"]})</span></td>'
        f"<td>{_e(row['decode_bound'])}</td>\n"
        f'<td class="num">{"$" if cost != "—" else ""}{cost}</td></tr>\n'
    )


def model_rows(rows: list[dict]) -> SafeString:
    """Returns the GPU page's table rows, in order."""
    return mark_safe("".join(model_row(row) for row in rows))


def machine_row(m, count: int, query: str) -> str:
    """Returns one row of the machine page's table (a ``planner.services.MachineModel``); ``query`` is the page's
    query string without ``serve``, which the row's serving-capacity link adds."""
    show = m.show
    if m.offload:
        runs, serving = f"offload {show['offloaded_gb']} GB", '<span class="muted small">—</span>'
    else:
        runs = "on the GPUs" if count > 1 else "on the GPU"
        serving = f'<a class="serve-link" href="?{_e(query)}&amp;serve={_e(m.model.slug)}#serving">users</a>'
    return (
        f'<tr>\n<td><a href="{_e(m.url)}">{_e(m.model.name)}</a></td><td>{_e(m.quant)} '
        f'<span class="muted small">{show["bits_per_weight"]} bpw</span></td>\n'
        f'<td class="num">{show["total_gb"]} GB</td>\n'
        f'<td class="num">{show["decode_tok_s"]} <span class="muted small">({show["decode_tok_s_low"]}–'
        f"{show['decode_tok_s_high']})</span></td>\n"
        f'<td class="num">{show["ttft_s"]} s <span class="muted small">({show["ttft_s_low"]}–{show["ttft_s_high"]})'
        f"</span></td>\n<td>{runs}</td>\n"
        f'<td class="num">{show["quality_pct"]}</td>\n<td>{serving}</td></tr>\n'
    )


def machine_rows(rows: list, count: int, query: str) -> SafeString:
    """Returns the machine page's table rows, in order."""
    return mark_safe("".join(machine_row(m, count, query) for m in rows))


def published_section(key: str, rows: list, show_model: bool = False) -> SafeString:
    """Returns the published-measurements section for ``rows`` (planner.published), rendered once per catalog version.

    The rows and their estimates depend on the catalog only, not on the visitor's settings, so the section is kept
    under ``key`` (the GPU, model or machine it belongs to) until the catalog fingerprint changes.
    """

    def render() -> SafeString:
        html = render_to_string("partials/_published.html", {"published": rows, "show_model": show_model})
        return mark_safe(html)  # noqa: S308 - the template escapes every value

    return remembered("published-section", f"{key}|{show_model}", render)
