"""Hosts where apt cannot be used (not root and no passwordless sudo, no apt-get, or --no-apt).

- ffmpeg: the static binary in the imageio-ffmpeg wheel (FFmpeg 9.0.2, a GPL build with
  libx264, aac, libmp3lame and the PCM codecs), sha256-checked from the index and unpacked to
  the tools folder's ``bin/ffmpeg`` (``thbench.tools``), where thbench and, through PATH, the
  models' upstream code find it.
- ffprobe: no wheel ships a trusted one; PyAV (``av``, a project dependency that ``uv run``
  installs) stands in for it in ``thbench.media``.
- git-lfs: optional: thbench checks repositories out with LFS smudging off and downloads
  weights over HTTPS itself. chromium: only one test opens a browser, and it skips without.
- anything else missing: an administrator (or a `module load`) has to provide it.

Standard library only, like bootstrap.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from bootstrap.wheels import download_wheel, index_url
from thbench import proc, tools
from thbench.errors import UserError

FFMPEG_WHEEL, FFMPEG_WHEEL_VERSION = "imageio-ffmpeg", "0.8.1"
FFMPEG_SOURCE = f"{FFMPEG_WHEEL} {FFMPEG_WHEEL_VERSION} wheel"  # recorded; a change re-installs
BINARY_PREFIX = "imageio_ffmpeg/binaries/ffmpeg-"  # e.g. ffmpeg-linux-x86_64-v9.0.2
NOT_NEEDED = {
    "ffmpeg": "see the ffmpeg rows",
    "git-lfs": "optional: thbench never runs it (LFS smudge off; weights come over HTTPS)",
    "chromium": "skipped: only the browser test needs it, and it skips without",
}
ASK_ADMIN = "ask an administrator, or `module load` it; bootstrap cannot install it without root"
OTHER_WAY = ("put an ffmpeg on PATH another way (`module load ffmpeg`, or "
             "`conda install -c conda-forge ffmpeg` into an env on PATH)")


def apt_access(no_apt: bool) -> tuple[bool, str]:
    """Can bootstrap install Debian packages here, and the words for the status table."""
    if no_apt:
        return False, "not used (--no-apt)"
    if not (shutil.which("apt-get") and shutil.which("dpkg-query")):
        return False, "not found"
    if os.geteuid() == 0:
        return True, "usable (root)"
    sudo = shutil.which("sudo")
    if not sudo:
        return False, "not usable: not root, and no sudo"
    # -n: fail rather than prompt; bootstrap has no terminal to prompt on.
    if proc.run([sudo, "-n", "true"], capture=True, check=False, timeout=60).returncode != 0:
        return False, "not usable: not root, and sudo asks for a password"
    return True, "usable (passwordless sudo)"


def advice(package: str) -> str:
    """What to do about a missing Debian package where apt cannot be used."""
    return NOT_NEEDED.get(package, ASK_ADMIN)


def ffmpeg_rows() -> tuple[list[tuple[str, str, str]], bool]:
    """Status rows (item, state, action) for ffmpeg and ffprobe; and whether ffmpeg is to be
    installed into the tools folder."""
    rows, install = [], False
    on_path = shutil.which("ffmpeg")
    local = tools.installed("ffmpeg")
    recorded = tools.read_record().get("ffmpeg", {})
    if on_path:
        rows.append(("ffmpeg", f"on PATH: {on_path}", "-"))
    elif local and recorded.get("source") == FFMPEG_SOURCE:
        rows.append(("ffmpeg", f"{recorded.get('version', '?')} at {local}", "-"))
    else:
        state = f"not on PATH; {local} is not from the {FFMPEG_SOURCE}" if local else "not on PATH"
        rows.append(("ffmpeg", state, f"unpack the {FFMPEG_SOURCE}'s static ffmpeg into "
                                      f"{tools.bin_dir()}"))
        install = True
    probe = tools.which("ffprobe")
    if probe:
        rows.append(("ffprobe", f"found: {probe}", "-"))
    else:
        conda = next((n for n in ("conda", "mamba", "micromamba") if shutil.which(n)), None)
        also = (f"; for a real one: `{conda} install -c conda-forge ffmpeg` into an env on PATH"
                if conda else "")
        rows.append(("ffprobe", "not found", "none needed: PyAV (`av`, a project dependency) "
                                             f"stands in{also}"))
    return rows, install


def ffmpeg_step_text() -> str:
    return (f"download the {FFMPEG_SOURCE} from {index_url().rstrip('/')}/{FFMPEG_WHEEL}/, check "
            f"its sha256, unpack its ffmpeg to {tools.bin_dir() / 'ffmpeg'}")


def install_ffmpeg() -> str:
    """Unpack the wheel's ffmpeg into the tools folder, check it runs, record it; its version.

    Staged beside its destination: a failure (hash, zip, a binary this libc cannot run) leaves
    the folder as it was.
    """
    folder = tools.bin_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".ffmpeg-download-") as staging:
        wheel, page, sha256 = download_wheel(FFMPEG_WHEEL, FFMPEG_WHEEL_VERSION, Path(staging),
                                             OTHER_WAY)
        binary = Path(staging) / "ffmpeg"
        with zipfile.ZipFile(wheel) as archive:
            members = [n for n in archive.namelist()
                       if n.startswith(BINARY_PREFIX) and not n.endswith((".py", ".md"))]
            if len(members) != 1:
                raise UserError(f"{wheel.name} has {len(members)} files named {BINARY_PREFIX}*, "
                                "expected one ffmpeg binary", OTHER_WAY)
            with archive.open(members[0]) as src, binary.open("wb") as out:
                shutil.copyfileobj(src, out)
        binary.chmod(0o755)
        version = ffmpeg_version(binary)
        os.replace(binary, folder / "ffmpeg")
    tools.write_record("ffmpeg", {"source": FFMPEG_SOURCE, "wheel": wheel.name, "index": page,
                                  "sha256": sha256, "member": members[0], "version": version})
    return version


def ffmpeg_version(binary: Path) -> str:
    """The version word of `binary -version`; a binary that does not run is a UserError."""
    result = proc.run([binary, "-hide_banner", "-version"], capture=True, check=False, timeout=60)
    words = result.stdout.split()
    if result.returncode != 0 or words[:2] != ["ffmpeg", "version"] or len(words) < 3:
        why = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise UserError(f"the ffmpeg from the {FFMPEG_SOURCE} does not run here: {why[0]}",
                        OTHER_WAY)
    return words[2]
