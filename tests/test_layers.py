"""The layers point down: lint-imports checks the contracts in pyproject.toml (imports inside functions count)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Contracts: 4 kept, 0 broken." in result.stdout


def test_a_package_importing_upwards_breaks_a_contract(tmp_path):
    # The contract is not vacuous: the same check over a copy of physics/ that imports Django fails.
    copy = tmp_path / "physics"
    copy.mkdir()
    for source in (ROOT / "physics").glob("*.py"):
        (copy / source.name).write_text(source.read_text())
    (copy / "vocab.py").write_text((ROOT / "physics" / "vocab.py").read_text() + "\nimport django  # noqa\n")
    config = tmp_path / ".importlinter"
    config.write_text(
        "[importlinter]\nroot_package = physics\ninclude_external_packages = True\n\n"
        "[importlinter:contract:django-free]\nname = Physics is Django-free\ntype = forbidden\n"
        "source_modules = physics\nforbidden_modules = django\n"
    )
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--no-cache", "--config", str(config)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 1, result.stdout[-2000:]
    assert "physics.vocab -> django" in result.stdout
