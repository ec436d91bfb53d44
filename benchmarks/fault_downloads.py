"""Download faults against the loopback server, through the project's own download code.

Each fault is served to a plain-URL weight (weights_http.py) and to a Hub file (weights_hub.py,
huggingface_hub's code against the stand-in as HF_ENDPOINT), each in an empty folder of its own:
the connection dropped mid-body, 404, 500 then 200, a body that stalls, a file longer or shorter
than pinned, other bytes of the pinned length. Each must end as expected — resumed (a later
request asks for a Range), retried, a clear error or a rejection (one UserError) — with no file
kept at the weight's path unless it verifies; then, with the server mended, the same fetch must
verify, so nothing left behind poisons the next run.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from tests.weight_server import COMMIT, Standin
from thbench import library_logs, weights
from thbench.errors import UserError
from thbench.specs import Weight

POLICY = weights.HttpPolicy(attempts=4, connect_timeout=2.0, read_timeout=1.0, backoff=0.05,
                            backoff_max=0.2)
HUB_TIMEOUT = 1.0  # seconds of silence before huggingface_hub drops a read (default 10)
# huggingface_hub writes whole 10 MB chunks: a Hub file is cut after its first chunk, so the
# resume has bytes to resume from (a cut inside the first chunk starts over, and says "retried").
SIZE = {"url": 1_500_000, "hub": 24_000_000}
CUT = {"url": 600_000, "hub": 15_000_000}

# fault → (how the server misbehaves, what the bytes are, the expected end)
FAULTS = {
    "dropped mid-body": ({"mode": "cut_once"}, "good", "resumed"),
    "404": ({"mode": "404"}, "good", "clear error"),
    "500 then 200": ({"mode": "500_once"}, "good", "retried"),
    "stalled body": ({"mode": "stall_once", "delay": 3.0}, "good", "resumed"),
    "longer than pinned": ({}, "longer", "rejected"),
    "shorter than pinned": ({}, "shorter", "rejected"),
    "wrong bytes": ({}, "other", "rejected"),
}


@dataclass
class Fault:
    transport: str
    fault: str
    expected: str
    outcome: str = ""
    said: str = ""
    requests: str = ""
    kept_bad: bool = False
    then: str = ""
    ok: bool = False


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def served(kind: str, data: bytes, rng: random.Random) -> bytes:
    return {"good": data, "longer": data + b"\0" * 1000, "shorter": data[:-1000],
            "other": rng.randbytes(len(data))}[kind]


def one(server: Standin, transport: str, fault: str, n: int, rng: random.Random) -> Fault:
    how, kind, expected = FAULTS[fault]
    data = rng.randbytes(SIZE[transport])
    if "mode" in how and how["mode"].endswith(("cut_once", "stall_once")):
        how = {**how, "cut": CUT[transport]}
    result = Fault(transport, fault, expected)
    if transport == "url":
        path = f"/faults/{n}.bin"
        weight = Weight(f"w/{n}.bin", len(data), sha(data), url=server.base + path)
    else:
        repo = f"thb-faults/f{n}"
        path = f"/{repo}/resolve/{COMMIT}/model.bin"
        weight = Weight(f"w/{n}.bin", len(data), sha(data), hf_repo=repo, hf_file="model.bin",
                        hf_revision=COMMIT)
        server.serve_hub_folder(repo, COMMIT, "", {"model.bin": data}, lfs={"model.bin"})
    server.serve(path, served(kind, data, rng), **how)
    with tempfile.TemporaryDirectory(prefix="thb-fault-") as tmp:
        root = Path(tmp)
        try:
            fetch(weight, root)
            gets = [s.range for s in server.log(path) if s.method == "GET"]
            result.outcome = ("resumed" if any(gets[1:]) else "retried" if len(gets) > 1
                              else "fetched at once")
        except UserError as err:
            result.said = err.message[:90]
            result.outcome = "rejected" if "mismatch" in err.message or \
                "does not match" in err.message else "clear error"
        result.requests = " ".join(r or "GET" for r in
                                   (s.range for s in server.log(path) if s.method == "GET"))
        dest = root / weight.dest
        result.kept_bad = dest.exists() and sha(dest.read_bytes()) != weight.sha256
        server.serve(path, data)  # mended: the same fetch must now verify
        try:
            fetch(weight, root)
            result.then = "verified" if sha(dest.read_bytes()) == weight.sha256 else "BAD BYTES"
        except UserError as err:
            result.then = f"ERROR {err.message[:60]}"
    result.ok = result.outcome in expected.split("|") and not result.kept_bad \
        and result.then == "verified"
    return result


def fetch(weight: Weight, root: Path) -> None:
    weights.fetch_all([weight], root, console=Console(file=io.StringIO()), policy=POLICY)


def run_all(server: Standin, seed: int, log: Path) -> list[Fault]:
    """Every fault on both transports; huggingface_hub's and urllib3's logging go to ``log``."""
    from huggingface_hub import constants  # settings it read at import, as their variables would

    constants.HF_HUB_DISABLE_TELEMETRY = True
    constants.HF_HUB_DISABLE_IMPLICIT_TOKEN = True
    constants.HF_HUB_OFFLINE = False
    constants.HF_HUB_DOWNLOAD_TIMEOUT = HUB_TIMEOUT
    os.environ["HF_ENDPOINT"] = server.base
    rng = random.Random(seed)
    with library_logs.to_file(log):
        return [one(server, transport, fault, n, rng)
                for n, (transport, fault) in enumerate(
                    (t, f) for t in ("url", "hub") for f in FAULTS)]
