"""tools/import_graph.py: the layers point one way in this repository, and the script notices
when they do not (an upward import, an import hidden in a function, a circle of modules)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "import_graph.py"


def graph(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=60, check=False)


def test_this_repository_points_down() -> None:
    found = graph()
    assert found.returncode == 0, found.stdout
    edges = {source.strip(): set(targets.split(", "))
             for source, targets in (line.split(" -> ") for line in found.stdout.splitlines()
                                     if " -> " in line)}
    below = {"dashboard", "alerts", "notifiers", "hooks", "storage"}
    assert edges["shell"] == below
    assert edges["storage"] == {"(nothing)"}
    assert all("shell" not in targets for source, targets in edges.items() if source in below)


def test_an_upward_import_and_a_hidden_circle_fail(tmp_path: Path) -> None:
    files = {
        "hookwatch/__init__.py": "",
        "hookwatch/app.py": "import hookwatch.storage.prune\n",
        "storage/__init__.py": "",
        "storage/prune.py": "def job():\n    from hookwatch.app import create_app\n",
        "dashboard/__init__.py": "",
        "dashboard/pages.py": "from hookwatch.dashboard import actions\n",
        "dashboard/actions.py": "def answer():\n    from hookwatch.dashboard.pages import x\n",
    }
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    found = graph(str(tmp_path))
    assert found.returncode == 1
    assert "WRONG: storage -> shell points up: hookwatch.storage.prune" in found.stdout
    assert "WRONG: packages in a circle: shell <-> storage" in found.stdout
    assert ("WRONG: modules in a circle: hookwatch.dashboard.actions <-> "
            "hookwatch.dashboard.pages") in found.stdout
