"""Fault injection (benchmarks/faults.py), a few kills of each kind: a setup or a bench killed
with kill -9 is followed by a command that finishes and verifies (or names the one to run),
never by a half-built env, a partial weight or a half-written record; setups and benches at
once; every download fault. A failing trial is named with why."""

from __future__ import annotations

import json
import sys

import pytest

from thbench import paths, proc

pytestmark = pytest.mark.slow
SCRIPT = paths.REPO_ROOT / "benchmarks" / "faults.py"


def test_kills_concurrency_and_download_faults_all_end_well(tmp_path):
    report = tmp_path / "faults.json"
    done = proc.run([sys.executable, SCRIPT, "--kills", "5", "--seed", "7", "--json", report],
                    cwd=paths.REPO_ROOT, capture=True, check=False, timeout=1200)
    assert report.is_file(), done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(report.read_text())
    failing = [f"{t['group']} kill {t['n']} ({t['aim']}, {t['phase']}): {t['why']}"
               for group in ("setup_kills", "bench_kills") for t in result[group] if not t["ok"]]
    failing += [f"{f['transport']} {f['fault']}: {f['outcome']} {f['said']} then {f['then']}"
                for f in result["download_faults"] if not f["ok"]]
    failing += [f"at once: {name} {c}" for name, c in result["concurrent"].items() if not c["ok"]]
    assert not failing, "\n".join(failing)
    assert result["tallies"] == {"setup kills": "5/5", "bench kills": "5/5",
                                 "4 setups of one env at once": "1/1",
                                 "2 benches into one outputs folder": "1/1",
                                 "download faults": "14/14"}
    # The kill aimed into the download landed there (one of 5 is; a download lasts seconds).
    assert any(t["phase"].startswith("download") for t in result["setup_kills"]
               if t["aim"].startswith("download"))
    assert done.returncode == 0
