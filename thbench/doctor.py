"""`invoke doctor`: what this machine has and lacks for every spec, one table, changing nothing.

Each line is OK, INFO, WARN or ERROR with a TIP; only an ERROR (something a setup or a run will
certainly trip over) makes the exit status non-zero. The checks of tools, Pythons, GPUs and disk
are in doctor_checks.py; the network, the local config (loaded once) and the envs are here.
Every host is asked once, all at the same time, with reach.py's probe and a short timeout,
while the other checks run.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlparse, urlsplit
from urllib.request import url2pathname

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from thbench import doctor_checks as checks
from thbench import envs, gpu, local_config, reach, specs, weights
from thbench.doctor_checks import GITHUB_ROOT, Line, Status
from thbench.errors import UserError
from thbench.redaction import redact
from thbench.specs import DEFAULT_PROFILE, Kind, Spec, pin_name

SCHEMA = 1
PROBE_TIMEOUT = 4.0  # seconds; a host that answers at all answers well within this
PYPI = "https://pypi.org/simple/"
STYLE = {Status.OK: "green", Status.INFO: "blue", Status.WARN: "yellow", Status.ERROR: "bold red"}


class Probes:
    """Each URL's host asked once, in the background; ``get`` waits for the answer."""

    def __init__(self, timeout: float = PROBE_TIMEOUT) -> None:
        self.timeout = timeout
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="doctor-probe")
        self._asked: dict[str, Future] = {}

    def start(self, url: str) -> None:
        if url not in self._asked:
            self._asked[url] = self._pool.submit(reach.probe, url, self.timeout)

    def get(self, url: str) -> str | None:
        self.start(url)
        return self._asked[url].result()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


@dataclass(frozen=True)
class Target:
    check: str
    url: str  # asked with HEAD (a host's root, or an index), or a file:// folder
    why: str  # who needs it, and which variable put it there
    tip: str


def _root(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/"


def targets(all_specs: list[Spec]) -> list[Target]:
    """PyPI, GitHub, the Hub, every torch index and every weight host, mirrors applied."""
    found: list[Target] = []
    var = next((v for v in ("UV_DEFAULT_INDEX", "UV_INDEX_URL") if os.environ.get(v)), None)
    index = os.environ[var].strip() if var else PYPI
    found.append(Target("PyPI", index, f"uv's index (from {var})" if var else "uv's index",
                        "set UV_DEFAULT_INDEX to a PyPI mirror (uv also reads UV_INDEX_URL)"))
    if os.environ.get("PIP_INDEX_URL"):
        found.append(Target("PyPI (pip)", os.environ["PIP_INDEX_URL"].strip(),
                            "pip's index (from PIP_INDEX_URL)", "set PIP_INDEX_URL to a PyPI mirror"))
    github = weights.rewrite_url(GITHUB_ROOT)
    mirrored = f" (from {weights.MIRROR_VAR})" if github != GITHUB_ROOT else ""
    found.append(Target("GitHub", github, "checkouts and release downloads" + mirrored,
                        f"set {weights.MIRROR_VAR} to a GitHub mirror prefix (README: Mirrors)"))
    hub = (weights._hub_endpoint() or reach.HUB) + "/"
    found.append(Target("Hub", hub, "Hugging Face weights" + (
        f" (from {reach.HUB_VAR})" if weights._hub_endpoint() else ""),
        f"set {reach.HUB_VAR} to a Hub mirror (README: Mirrors)"))
    torch_users: dict[str, list[str]] = {}
    for spec in all_specs:
        for name in spec.profile_names:
            torch = spec.with_profile(name).torch
            if torch and torch.index:
                key = torch.index if torch.index.startswith("file:") else _root(torch.index)
                torch_users.setdefault(key, []).append(spec.env_id)
    for url, users in torch_users.items():
        found.append(Target("PyTorch index", url, "torch for " + ", ".join(sorted(set(users))),
                            "the spec's [torch] index names it: mirror it, or point `index` at a "
                            "folder of wheels (file://)"))
    asked = {t.url for t in found}
    by_host: dict[str, tuple[reach.Host, set[str]]] = {}
    for spec in all_specs:
        items = [weights.Item(w, Path(w.dest), weights.rewrite_url(w.url) if w.url else "",
                              False, 0, w.size, None, False) for w in spec.weights]
        for host in reach.hosts(items):
            by_host.setdefault(host.name, (host, set()))[1].add(spec.env_id)
    for host, users in by_host.values():
        if host.probe_url in asked or reach.HUB_VAR in host.variables:
            continue  # the GitHub and Hub lines ask these already
        tip = (f"set {weights.MIRROR_VAR} to a GitHub mirror prefix" if host.variables
               else "check the network, DNS and proxy (HTTPS_PROXY)")
        found.append(Target(f"weights: {host.name}", host.probe_url,
                            "weights of " + ", ".join(sorted(users)), tip))
    return found


def network(found: list[Target], probes: Probes) -> list[Line]:
    lines = []
    for target in found:
        if target.url.startswith("file:"):
            folder = Path(url2pathname(urlparse(target.url).path))
            why = None if folder.is_dir() else f"no folder {folder}"
        elif target.url.startswith(("http://", "https://")):
            why = probes.get(target.url)
        else:
            why = "not an http(s) or file:// URL"
        if why:
            lines.append(Line("network", target.check, Status.WARN,
                              f"{target.url} does not answer: {why} ({target.why})", target.tip))
        else:
            lines.append(Line("network", target.check, Status.OK,
                              f"{target.url} answers ({target.why})"))
    return lines


# --- envs ------------------------------------------------------------------------------------


def stale_fields(env: envs.Env, stamp: dict) -> list[str]:
    """What differs between the stamp's recorded parts and what the spec gives now."""
    spec, found = env.spec, []
    python = str(stamp.get("python") or "")
    if python and ".".join(python.split(".")[:2]) != spec.python:
        found.append(f"python {python} → {spec.python}")
    torch = stamp.get("torch") or {}
    pins = {pin_name(p): p.split("==", 1)[1] for p in spec.torch.packages} if spec.torch else {}
    want, have = pins.get("torch"), torch.get("version")
    if want and have and (have if "+" in want else have.split("+")[0]) != want:
        found.append(f"torch {have} → {want}")
    elif bool(want) != bool(have):
        found.append(f"torch {have or 'none'} → {want or 'none'}")
    if stamp.get("lock_sha256") != spec.lock_sha256:
        found.append(f"lock {spec.requirements.name} changed")
    recorded_repo = (stamp.get("repo") or {}).get("commit")
    if (spec.repo.commit if spec.repo else None) != recorded_repo:
        found.append(f"repo commit {str(recorded_repo)[:12]} → "
                     f"{spec.repo.commit[:12] if spec.repo else 'none'}")
    recorded = {w["dest"]: w.get("sha256") for w in stamp.get("weights") or []}
    if recorded:  # a rehearsal's stamp lists no fetched weights
        changed = [w.dest for w in spec.weights
                   if w.dest not in recorded or (w.sha256 and recorded[w.dest] != w.sha256)]
        if changed or set(recorded) - {w.dest for w in spec.weights}:
            found.append("weights changed: " + (", ".join(changed) or "some removed"))
    gone = [w.dest for w in spec.weights if not w.unpack and not (env.weights_root / w.dest).exists()]
    if gone:
        found.append("weights deleted since: " + ", ".join(gone))
    dist = torch.get("dist", have)
    if not env.python.exists():
        found.append("the venv is gone")
    elif dist and (now := envs._torch_dist_version(env.venv)) != dist:
        found.append(f"torch replaced after setup: {dist} → {now or 'none'}")
    if not found and stamp.get("identity") != env.identity:
        found.append("identity: imports, build constraints, excluded repo paths or weight "
                     "sources changed")
    return found or ["the interpreter does not run"]


def config_line(all_specs: list[Spec]) -> tuple[Line, UserError | None]:
    """The local config (thb.local.toml, THB_ENV_<MODEL>), loaded once: every problem in it as
    one ERROR line, and that error, so the env lines need not repeat it."""
    path = local_config.config_path()
    models = sorted(s.name for s in all_specs if s.kind is Kind.MODEL)
    try:
        found = {name: e for name, e in local_config.load(models).items() if e.env}
    except UserError as err:
        return Line("envs", "local config", Status.ERROR, err.message, err.tip), err
    where = str(path) if path.is_file() else f"no {path.name}"
    if not found:
        return Line("envs", "local config", Status.OK,
                    f"{where}: every model uses the project's own uv env"), None
    named = ", ".join(f"{name} → {e.env} (from {e.source})" for name, e in sorted(found.items()))
    return Line("envs", "local config", Status.OK, f"{where}: existing envs for {named}"), None


def env_line(spec: Spec, config_error: UserError | None = None) -> Line:
    """Ready, stale (and why), missing or rehearsal: the env as setup would find it."""
    setup = f"uv run nox -s {spec.setup_session}"
    if config_error and spec.kind is Kind.MODEL:  # it may name an existing env for this model
        return Line("envs", spec.env_id, Status.WARN, "not known: the local config has problems",
                    "fix the local config (its ERROR line above), then `invoke doctor` again")
    try:
        found = envs.Env.of(spec)
    except UserError as err:  # the local config names an env that is not there
        return Line("envs", spec.env_id, Status.ERROR, err.message, err.tip)
    if type(found) is not envs.Env:  # an existing env the local config names (external_env.py)
        try:
            python = found.python  # resolves it: an unknown conda env, or not a Python at all
        except UserError as err:
            return Line("envs", spec.env_id, Status.ERROR, err.message, err.tip)
        if found.is_ready():
            return Line("envs", spec.env_id, Status.OK, f"existing env {python}: checked")
        return Line("envs", spec.env_id, Status.WARN,
                    f"existing env {python}: not checked since it last changed",
                    f"`{setup}` checks it (and changes nothing in it)")
    stamp = found.read_stamp()
    if stamp is None:
        half = found.venv.exists()
        return Line("envs", spec.env_id, Status.INFO,
                    "missing" + (" (a venv without a stamp: its setup did not finish)" if half else ""),
                    f"`{setup}` when you need it")
    rehearse = bool(stamp.get("rehearsal"))
    profile = stamp.get("profile", DEFAULT_PROFILE)
    if profile not in spec.profile_names or (rehearse and spec.rehearsal is None):
        return Line("envs", spec.env_id, Status.WARN,
                    f"stale: its {'rehearsal' if rehearse else f'profile {profile}'} is gone "
                    "from the spec", f"`{setup}`")
    env = envs.Env.of(spec.with_profile(profile), rehearse=rehearse)
    torch = stamp.get("torch") or {}
    facts = (f"profile {profile}, Python {stamp.get('python', '?')}"
             + (f", torch {torch.get('version')} (CUDA {torch.get('cuda')})" if torch else "")
             + f", set up {stamp.get('created', '?')}")
    if not env.is_ready():
        return Line("envs", spec.env_id, Status.WARN,
                    "stale: " + "; ".join(stale_fields(env, stamp)) + f" ({facts})",
                    f"`{setup}{' -- --rehearse' if rehearse else ''}` rebuilds it")
    if rehearse:
        return Line("envs", spec.env_id, Status.INFO, f"rehearsal: stand-in weights ({facts})",
                    f"`{setup}` for the real weights")
    return Line("envs", spec.env_id, Status.OK, f"ready ({facts})")


# --- the report ------------------------------------------------------------------------------


def collect() -> list[Line]:
    """Every check's lines, in table order."""
    lines: list[Line] = []
    try:
        loaded = specs.load_all()
        all_specs = [s for kind in specs.Kind for s in loaded[kind].values()]
    except UserError as err:  # the rest still tells what the machine has
        lines.append(Line("specs", "spec files", Status.ERROR, err.message, err.tip))
        all_specs = []
    probes = Probes()
    try:
        found = targets(all_specs)
        for target in found:  # in the background while the local checks run
            if target.url.startswith(("http://", "https://")):
                probes.start(target.url)
        # Loaded once, first: a broken config is one ERROR line, and no check below trips on it.
        config, config_error = config_line(all_specs) if all_specs or not lines else (None, None)
        lines += checks.package_managers()
        lines += checks.pythons(all_specs, probes.get)
        lines += checks.tools(all_specs)
        lines += checks.gpus(all_specs, gpu.detect())
        lines += checks.disk(all_specs, checks.uv_cache_dir())
        lines += network(found, probes)
        lines += [config] if config else []
        lines += [env_line(s, config_error) for s in all_specs]
    finally:
        probes.close()
    return lines


def to_json(lines: list[Line]) -> dict:
    counts = {s.value: sum(line.status is s for line in lines) for s in Status}
    return {"schema": SCHEMA, "ok": counts["ERROR"] == 0, "counts": counts,
            "lines": [line.to_dict() for line in lines]}


def print_table(lines: list[Line], console: Console) -> None:
    table = Table(show_lines=False, pad_edge=False)
    for column in ("check", "status", "detail", "tip"):
        table.add_column(column, overflow="fold")
    group = None
    for line in lines:
        if line.group != group:
            table.add_section()
            table.add_row(f"[bold]{line.group}[/]", "", "", "")
            group = line.group
        table.add_row(escape(line.check), f"[{STYLE[line.status]}]{line.status.value}[/]",
                      escape(line.detail), escape(line.tip))
    console.print(table)
    counts = to_json(lines)["counts"]
    console.print(", ".join(f"{n} {s}" for s, n in counts.items() if n))


def main(as_json: bool = False) -> int:
    """Print the report (a table, or JSON on stdout); 1 if any line is an ERROR, else 0."""
    status = Console(stderr=True, highlight=False)
    with status.status("doctor: asking the tools, the driver and the hosts…"):
        lines = collect()
    # Mirrors are shown as applied, so their credentials would be too.
    lines = [replace(line, check=redact(line.check), detail=redact(line.detail), tip=redact(line.tip))
             for line in lines]
    if as_json:
        print(json.dumps(to_json(lines), indent=2, ensure_ascii=False))
    else:
        out = Console(highlight=False, soft_wrap=False)
        # Piped into a file or a pager, the table keeps room for its details, not 80 columns.
        print_table(lines, out if out.is_terminal else Console(highlight=False, width=160))
    return 1 if any(line.status is Status.ERROR for line in lines) else 0
