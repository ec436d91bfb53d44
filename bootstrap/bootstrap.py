"""Install what talking-head-bench needs on a fresh Debian/Ubuntu machine: apt packages and uv.

    python3 bootstrap/bootstrap.py [--dry-run] [--no-apt] [--uv-from pypi|installer] [-- COMMAND...]

Standard library only: it runs before anything is installed. It converges: inspect the machine,
print a status table, install only what is missing, print a summary; a second run changes
nothing. After `--`, COMMAND runs as `uv run COMMAND` from the repo root with the uv it found
or installed, even when that uv is not on PATH yet.

Where apt cannot be used (no apt-get, not root and no passwordless sudo, or --no-apt), a missing
ffmpeg comes from the imageio-ffmpeg wheel instead (its static binary, into the tools folder
.tools/bin, see thbench.tools); PyAV, a project dependency, stands in for a missing ffprobe.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# The system python3 runs this, not the project's; thbench.proc needs 3.10 (Debian 12+).
if sys.version_info < (3, 10):  # noqa: UP036
    sys.exit(f"ERROR: Python 3.10 or newer needed, this is {platform.python_version()}\n"
             "TIP: run it with Python 3.10 or newer, e.g. `python3.11 bootstrap/bootstrap.py`")
if __name__ == "__main__" and not __package__:  # run as a script: make thbench importable
    sys.path.insert(0, str(REPO_ROOT))

from bootstrap import rootless
from bootstrap.wheels import (  # noqa: F401 (PEP691_JSON, PYPI_SIMPLE, wheel_matches: for tests)
    PEP691_JSON,
    PYPI_SIMPLE,
    download_wheel,
    fetch,
    index_url,
    wheel_matches,
)
from thbench import proc, tools  # stdlib-only, like thbench.errors
from thbench.errors import UserError, print_error

UV_VERSION = "0.13.9"  # what bootstrap installs
UV_MIN_VERSION = (0, 13, 0)  # an existing uv at least this new is kept
UV_SOURCES = ("pypi", "installer")
PACKAGES_FILE = Path(__file__).with_name("apt-packages.txt")
MIRROR_KNOBS = ("UV_INSTALLER_GITHUB_BASE_URL", "UV_INSTALLER_GHE_BASE_URL", "UV_DOWNLOAD_URL",
                "UV_INDEX_URL", "PIP_INDEX_URL")

EPILOG = """\
environment:
  UV_INSTALL_DIR                 where uv is installed (default ~/.local/bin)
  UV_INDEX_URL, PIP_INDEX_URL    simple index for --uv-from pypi (default https://pypi.org/simple;
                                 it must serve the PEP 691 JSON API)
  THB_UV_INSTALLER_URL           installer for --uv-from installer
                                 (default https://astral.sh/uv/<version>/install.sh)
  UV_INSTALLER_GITHUB_BASE_URL, UV_INSTALLER_GHE_BASE_URL, UV_DOWNLOAD_URL
                                 mirror knobs of Astral's installer, passed through unchanged
  UV_PYTHON_INSTALL_MIRROR       mirror for the Pythons uv downloads later (not set by bootstrap)
  THB_TOOLS_DIR                  where ffmpeg goes without apt (default .tools in the checkout)

examples:
  python3 bootstrap/bootstrap.py --dry-run
  python3 bootstrap/bootstrap.py --no-apt       # no root: ffmpeg from a wheel
  python3 bootstrap/bootstrap.py -- invoke demo
  python3 bootstrap/bootstrap.py -- nox -s tests
"""


@dataclass(frozen=True)
class Row:
    item: str
    state: str
    action: str = "-"


@dataclass(frozen=True)
class Step:
    """One change to the machine: ``text`` is printed (and is all a dry run shows)."""

    text: str
    run: Callable[[], None]


# --- apt -----------------------------------------------------------------------------------------

def read_packages(path: Path) -> list[str]:
    """Package names from ``path``: one a line, `#` starts a comment."""
    if not path.is_file():
        raise UserError(f"package list not found: {path}",
                        f"give a file with one Debian package a line, like {PACKAGES_FILE}")
    names = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        name = line.split("#", 1)[0].strip()
        if name and not re.fullmatch(r"[a-z0-9][a-z0-9+.-]+", name):
            raise UserError(f"{path}:{number}: {name!r} is not a Debian package name",
                            "one package a line, e.g. `git-lfs  # why it is needed`")
        if name:
            names.append(name)
    return names


def is_installed(package: str) -> bool:
    status = proc.run(["dpkg-query", "-W", "-f=${Status}\n", package],
                      capture=True, check=False, timeout=60)
    # "install ok installed", "hold ok installed"; removed ones end in "config-files" etc.
    # One line per architecture: installed for any of them counts.
    lines = status.stdout.splitlines() if status.returncode == 0 else []
    return any(line.split()[-1:] == ["installed"] for line in lines)


def privilege_prefix(is_root: bool, sudo: str | None, packages: list[str]) -> list[str]:
    if is_root:
        return []
    if sudo:
        return ["sudo", "-n"]  # -n: never prompt (we have no terminal to prompt on), fail instead
    raise UserError(f"need root to install {', '.join(packages)}, and sudo is not installed",
                    "run bootstrap as root, or install the packages as root: "
                    f"`apt-get install {' '.join(packages)}`, then run bootstrap again")


def apt_steps(missing: list[str]) -> list[Step]:
    prefix = privilege_prefix(os.geteuid() == 0, shutil.which("sudo"), missing)
    apt = [*prefix, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]
    commands = [[*apt, "update"], [*apt, "install", "-y", "--no-install-recommends", *missing]]
    return [Step(shlex.join(argv), lambda argv=argv: _run_apt(argv)) for argv in commands]


def _run_apt(argv: list[str]) -> None:
    tip = f"fix the cause above, or run it yourself in a terminal: `{shlex.join(argv)}`; " \
          "then run bootstrap again"
    proc.run(argv, inherit_output=True, timeout=3600, tip=tip)


# --- uv ------------------------------------------------------------------------------------------

def install_dir() -> Path:
    return Path(os.environ.get("UV_INSTALL_DIR") or Path.home() / ".local" / "bin").expanduser()


def uv_version(path: Path | str) -> tuple[int, ...] | None:
    """``(0, 13, 9)`` from `uv --version`, or None when ``path`` is not a working uv."""
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        return None
    result = proc.run([path, "--version"], capture=True, check=False, timeout=60)
    found = re.match(r"uv (\d+)\.(\d+)\.(\d+)", result.stdout)
    return tuple(int(part) for part in found.groups()) if found and result.returncode == 0 else None


def find_uv(folder: Path) -> tuple[Path | None, Row]:
    """The first uv new enough, the install folder's before PATH's, and its status row."""
    too_old = []
    for candidate in dict.fromkeys([str(folder / "uv"), shutil.which("uv")]):
        version = uv_version(candidate) if candidate else None
        if version and version >= UV_MIN_VERSION:
            return Path(candidate), Row("uv", f"{_dotted(version)} at {candidate}")
        if version:
            too_old.append(f"{_dotted(version)} at {candidate}")
    state = f"too old: {', '.join(too_old)}" if too_old else "missing"
    return None, Row("uv", state, f"install {UV_VERSION} into {folder}")


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


def install_uv_from_pypi(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    # Everything is staged next to its destination, so os.replace is atomic and a failure
    # (bad hash, broken zip) leaves the folder as it was.
    with tempfile.TemporaryDirectory(dir=folder, prefix=".uv-download-") as staging:
        wheel_path, _, _ = download_wheel("uv", UV_VERSION, Path(staging), "use --uv-from installer")
        staged = {}
        with zipfile.ZipFile(wheel_path) as archive:
            for name in ("uvx", "uv"):  # uv last: a uv binary in place means a whole install
                member = f"uv-{UV_VERSION}.data/scripts/{name}"
                staged[name] = Path(staging) / name
                try:
                    with archive.open(member) as src, staged[name].open("wb") as out:
                        shutil.copyfileobj(src, out)
                except KeyError:
                    raise UserError(f"{wheel_path.name} has no {member}",
                                    "use --uv-from installer") from None
                staged[name].chmod(0o755)
        for name, path in staged.items():
            os.replace(path, folder / name)


def install_uv_with_installer(folder: Path) -> None:
    url = os.environ.get("THB_UV_INSTALLER_URL") or f"https://astral.sh/uv/{UV_VERSION}/install.sh"
    with tempfile.TemporaryDirectory(prefix="thb-uv-installer-") as staging:
        script = Path(staging) / "install.sh"
        fetch(url, dest=script, tip="check the network; set THB_UV_INSTALLER_URL to a mirror, "
                                    "or try --uv-from pypi")
        # The mirror knobs (UV_INSTALLER_GITHUB_BASE_URL, ...) reach the script unchanged.
        proc.run(["sh", script], env={"UV_INSTALL_DIR": str(folder), "UV_NO_MODIFY_PATH": "1"},
                 inherit_output=True, timeout=900,
                 tip="read the installer's output above; or try --uv-from pypi")


def uv_step(folder: Path, source: str) -> Step:
    if source == "pypi":
        text = (f"download the uv {UV_VERSION} wheel from {index_url().rstrip('/')}/uv/, check its "
                f"sha256, unpack uv and uvx into {folder}")
        return Step(text, lambda: install_uv_from_pypi(folder))
    url = os.environ.get("THB_UV_INSTALLER_URL") or f"https://astral.sh/uv/{UV_VERSION}/install.sh"
    return Step(f"download {url}, then run: UV_INSTALL_DIR={shlex.quote(str(folder))} "
                "UV_NO_MODIFY_PATH=1 sh install.sh", lambda: install_uv_with_installer(folder))


# --- the converge loop ---------------------------------------------------------------------------

def format_table(rows: list[Row]) -> str:
    lines = [("ITEM", "STATE", "ACTION"), *((r.item, r.state, r.action) for r in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(2)]
    return "\n".join(f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c}".rstrip() for a, b, c in lines)


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    command = argv[argv.index("--") + 1:] if "--" in argv else []
    own = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(
        prog="bootstrap.py", description=__doc__.split("\n\n", 2)[2],
        usage="python3 bootstrap/bootstrap.py [options] [-- COMMAND...]",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true",
                        help="print the status table and the commands; change nothing")
    parser.add_argument("--uv-from", choices=UV_SOURCES, default="pypi",
                        help="how to install uv if it is missing: the wheel from the PyPI index "
                             "(default) or Astral's installer script")
    parser.add_argument("--no-apt", action="store_true",
                        help="never use apt, even as root: what a host without root gets "
                             "(ffmpeg from the imageio-ffmpeg wheel into .tools/bin)")
    parser.add_argument("--apt-packages", type=Path, default=PACKAGES_FILE, metavar="FILE",
                        help=f"Debian packages to ensure (default: {PACKAGES_FILE.name})")
    return parser.parse_args(own), command


def converge(args: argparse.Namespace) -> Path:
    """Inspect, print the table, act on what is missing; the uv to hand off to."""
    packages = read_packages(args.apt_packages)
    use_apt, apt_state = rootless.apt_access(args.no_apt)
    rows, steps, done = [], [], []
    if use_apt:
        missing = [p for p in packages if not is_installed(p)]
        rows += [Row(f"apt: {p}", "missing" if p in missing else "installed",
                     "apt-get install" if p in missing else "-") for p in packages]
        steps += apt_steps(missing) if missing else []
        done += [f"apt packages {', '.join(missing)}"] if missing else []
    else:
        rows += _rootless_rows(apt_state, packages, steps, done)
    folder = install_dir()
    uv, uv_row = find_uv(folder)
    rows.append(uv_row if uv else Row(uv_row.item, uv_row.state, f"{uv_row.action} "
                                      f"(from {args.uv_from})"))
    if uv is None:
        steps.append(uv_step(folder, args.uv_from))

    print(format_table(rows))
    if steps:
        print("\nWould run:" if args.dry_run else "\nRunning:")
        for step in steps:
            print(f"  {step.text}", flush=True)
            if not args.dry_run:
                step.run()
    if uv is None and not args.dry_run:
        uv = folder / "uv"
        version = uv_version(uv)
        if version is None:
            raise UserError(f"uv was installed into {folder}, but `{uv} --version` fails",
                            "run it by hand to see why; or try the other --uv-from")
        done.append(f"uv {_dotted(version)} at {uv}")
    _advise(uv or folder / "uv")
    if not shutil.which("ffmpeg") and tools.installed("ffmpeg"):
        print(f"\nnote: thbench and the models it runs find {tools.bin_dir() / 'ffmpeg'} by "
              f"themselves; for your shell: export PATH=\"{tools.bin_dir()}:$PATH\"")
    if args.dry_run:
        print("\nDry run: nothing changed.")
    else:
        print(f"\nDone: installed {' and '.join(done)}." if done else
              "\nEverything is present; nothing changed.")
    return uv or folder / "uv"


def _rootless_rows(apt_state: str, packages: list[str], steps: list[Step],
                   done: list[str]) -> list[Row]:
    """Rows for a host where apt cannot be used; the ffmpeg step joins ``steps``."""
    dpkg = bool(shutil.which("dpkg-query"))  # asking works without root
    action = ("install the packages below another way" if apt_state == "not found"
              else "-")
    rows = [Row("apt-get", apt_state, action)]
    for package in packages:
        if package == "ffmpeg":
            continue  # its own rows below
        present = is_installed(package) if dpkg else None
        state = {True: "installed", False: "missing", None: "not checked (no dpkg)"}[present]
        rows.append(Row(f"package: {package}", state, "-" if present
                        else rootless.advice(package)))
    if "ffmpeg" in packages:
        tool_rows, install = rootless.ffmpeg_rows()
        rows += [Row(*row) for row in tool_rows]
        if install:
            def run() -> None:
                version = rootless.install_ffmpeg()
                done.append(f"ffmpeg {version} ({rootless.FFMPEG_SOURCE}) at "
                            f"{tools.bin_dir() / 'ffmpeg'}")
            steps.append(Step(rootless.ffmpeg_step_text(), run))
    return rows


def _advise(uv: Path) -> None:
    on_path = shutil.which("uv")
    if on_path != str(uv):
        where = f"`uv` on PATH is {on_path}, not {uv}" if on_path else f"{uv.parent} is not on PATH"
        print(f"\nnote: {where}; add to your shell profile: export PATH=\"{uv.parent}:$PATH\"")
    if any(os.environ.get(k) for k in MIRROR_KNOBS) and not os.environ.get(
            "UV_PYTHON_INSTALL_MIRROR"):
        print("\nnote: uv downloads the Pythons the model envs need from GitHub "
              "(python-build-standalone); where GitHub is blocked, set UV_PYTHON_INSTALL_MIRROR "
              "to a mirror of https://github.com/astral-sh/python-build-standalone/releases/"
              "download (file:// works)")


def main(argv: list[str] | None = None) -> int:
    """Bootstrap, then hand off to `uv run COMMAND` if one follows `--`; the exit status."""
    args, command = parse_args(sys.argv[1:] if argv is None else list(argv))
    try:
        uv = converge(args)
        if not command:
            return 0
        argv_out = [uv, "run", *command]
        print(f"\n{'Would run' if args.dry_run else 'Running'}: {shlex.join(map(str, argv_out))}",
              flush=True)
        if args.dry_run:
            return 0
        return proc.run(argv_out, cwd=REPO_ROOT, inherit_output=True, check=False).returncode
    except UserError as err:
        print_error(err)
        return err.exit_code
    except KeyboardInterrupt:
        print("ERROR: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
