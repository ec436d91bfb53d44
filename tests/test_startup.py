"""Listing tasks and sessions imports only what listing needs (issue: start-up). The times are
benchmarks/startup.py's; this checks the cause: which modules a bare import of tasks.py and
noxfile.py pulls in."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from thbench import paths

HEAVY = ("requests", "rich", "huggingface_hub", "psutil", "filelock", "submitit", "urllib3",
         "platformdirs", "av", "pynvml", "thbench.runs", "thbench.cli", "thbench.weights",
         "thbench.envs", "thbench.speech")


@pytest.mark.parametrize("module", ["tasks", "noxfile"])
def test_listing_imports_nothing_heavy(module):
    probe = (f"import json, sys; import {module}; "
             f"print(json.dumps(sorted(n for n in sys.modules if n in {HEAVY!r} "
             f"or n.split('.')[0] in {HEAVY!r})))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=paths.REPO_ROOT, capture_output=True,
                          text=True, timeout=60, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
