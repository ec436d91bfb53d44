"""The bad-input catalogue (benchmarks/bad_inputs.py), run whole on real envs: every mistake one
ERROR + TIP with a non-zero exit, no traceback, nothing earlier touched; every odd-but-valid
input works. A failing case is named with what it printed."""

from __future__ import annotations

import json
import sys

import pytest

from thbench import paths, proc

pytestmark = pytest.mark.slow
SCRIPT = paths.REPO_ROOT / "benchmarks" / "bad_inputs.py"


def test_every_bad_input_is_refused_cleanly_and_every_odd_one_works(ready_envs, tmp_path):
    report = tmp_path / "bad-inputs.json"
    done = proc.run([sys.executable, SCRIPT, "--json", report], cwd=paths.REPO_ROOT,
                    env={"THB_ENVS_DIR": str(ready_envs)}, capture=True, check=False,
                    timeout=900)
    assert report.is_file(), done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(report.read_text(encoding="utf-8"))
    summary, outcomes = result["summary"], result["cases"]
    names = [o["name"] for o in outcomes]
    assert len(set(names)) == len(names) == summary["cases"]
    assert summary["ran"] >= 30 and summary["valid"] >= 10 and summary["mistakes"] >= 30
    assert summary["commands"] == ["bench", "run", "score", "setup"]
    failing = [f"{o['name']}: {o['why']}\n  argv: {o['argv']}\n{o['tail']}"
               for o in outcomes if o["verdict"] == "FAIL"]
    assert not failing, f"{len(failing)} failing:\n\n" + "\n\n".join(failing)
    assert done.returncode == 0
    assert f"{summary['passed']} pass, 0 FAIL" in done.stdout
