"""Folders the weights step puts in place: claimed only when ours, swapped in whole, archives
unpacked safely.

A folder is *ours* when it holds one of our markers (an unpacked archive's ``.thb-unpacked``, a
Hub folder's ``.thb-folder.json``) or is empty: only such a folder is ever replaced, and always
by renaming a complete new one into place. An archive with a member that would land outside its
folder (absolute name, ``..``, a link pointing out, a device file) is refused whole.
"""

from __future__ import annotations

import glob
import os
import posixpath
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from thbench.errors import UserError

UNPACKED_MARKER = ".thb-unpacked"  # inside an unpacked folder; holds the archive's sha256
FOLDER_MANIFEST = ".thb-folder.json"  # inside a Hub folder weight: source, files, sizes, sha256
CHUNK = 1024 * 1024


def unpacked(target: Path, digest: str | None) -> bool:
    try:
        return digest is not None and (target / UNPACKED_MARKER).read_text().strip() == digest
    except OSError:
        return False



def _ours(target: Path) -> bool:
    """``target`` is a folder this module put there (or an empty one): safe to replace."""
    return target.is_dir() and not target.is_symlink() and (
        (target / UNPACKED_MARKER).is_file() or (target / FOLDER_MANIFEST).is_file()
        or not any(target.iterdir()))


def claim(target: Path, what: str) -> None:
    """Refuse, touching nothing, when ``target`` holds something that is not ours to replace."""
    if (target.exists() or target.is_symlink()) and not _ours(target):
        raise UserError(f"{target} already exists and was not {what}",
                        f"move {target} away (or delete it) and run the same command again")


def clear_leftovers(target: Path, keep: Path | None = None) -> None:
    """Remove what a killed unpack or swap left beside ``target``: the temporary folders this
    module names after it (``.<name>.<mkdtemp's 8>.unpacking``, ``.<name>.<pid>.old``), all but
    ``keep``. Callers hold the env's setup lock, so no other process is writing them."""
    ours = re.compile(rf"\.{re.escape(target.name)}\.([a-z0-9_]{{8}}\.unpacking|\d+\.old)")
    for path in target.parent.glob(f".{glob.escape(target.name)}.*"):
        if ours.fullmatch(path.name) and path != keep and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)


def swap_in(new: Path, target: Path, what: str) -> None:
    """Rename folder ``new`` to ``target``, replacing an earlier folder of ours there."""
    claim(target, what)
    target.parent.mkdir(parents=True, exist_ok=True)
    clear_leftovers(target, keep=new)
    if target.exists():
        old = target.with_name(f".{target.name}.{os.getpid()}.old")
        os.rename(target, old)
        os.rename(new, target)
        shutil.rmtree(old)
    else:
        os.rename(new, target)


# --- archives ----------------------------------------------------------------------------------


def _refuse(archive: Path, name: str, why: str) -> UserError:
    return UserError(
        f"refusing to unpack {archive}: member {name!r} {why}; nothing was extracted",
        "the archive verified against the spec's sha256, so this is upstream's doing: report it "
        "and do not unpack it by hand",
    )


def _check_name(archive: Path, name: str) -> None:
    """Refuse a member name that is absolute or climbs out with ``..`` (either separator)."""
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise _refuse(archive, name, "has an absolute path")
    if ".." in re.split(r"[\\/]", name):
        raise _refuse(archive, name, "climbs out of the folder with '..'")


def _extract_zip(archive: Path, into: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        for info in members:
            _check_name(archive, info.filename)
            kind = stat.S_IFMT(info.external_attr >> 16)  # 0: no Unix file type recorded
            if kind == stat.S_IFLNK:
                raise _refuse(archive, info.filename, "is a symbolic link")
            if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise _refuse(archive, info.filename, "is a device or other special file")
        base = into.resolve()
        for info in members:
            out = into.joinpath(*PurePosixPath(info.filename).parts)
            if not out.resolve().is_relative_to(base):
                raise _refuse(archive, info.filename, "lands outside the folder")
            if info.is_dir():
                out.mkdir(parents=True, exist_ok=True)
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, out.open("wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK)


def _extract_tar(archive: Path, into: Path) -> None:
    with tarfile.open(archive) as tf:  # compression detected from the content
        members = tf.getmembers()
        for m in members:
            _check_name(archive, m.name)
            if m.issym() or m.islnk():
                # A symlink resolves from its own folder, a hard link from the archive's root.
                start = posixpath.dirname(m.name) if m.issym() else ""
                target = posixpath.normpath(posixpath.join(start, m.linkname))
                if m.linkname.startswith("/") or target == ".." or target.startswith("../"):
                    raise _refuse(archive, m.name, f"links outside the folder ({m.linkname})")
            elif not (m.isfile() or m.isdir()):
                raise _refuse(archive, m.name, "is a device or other special file")
        if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: the standard library checks too
            tf.extractall(into, members=members, filter="data")
        else:  # pragma: no cover
            tf.extractall(into, members=members)


def unpack_archive(archive: Path, target: Path, digest: str) -> None:
    """Make ``target`` hold exactly the members of ``archive`` (sha256 ``digest``), once.

    .zip, .tar, .tar.gz/.tgz, .tar.xz and .tar.bz2. Extracts into a temporary folder beside
    ``target`` and renames it into place, with the marker; a folder we unpacked from another
    archive is replaced, anything else already at ``target`` is an error (nothing is touched).
    Raises UserError, extracting nothing, if any member would land outside ``target``.
    """
    if unpacked(target, digest):
        return
    what = f"unpacked from {archive.name}"
    claim(target, what)
    target.parent.mkdir(parents=True, exist_ok=True)
    clear_leftovers(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".unpacking", dir=target.parent))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp's 0700 would stick to target
        try:
            if archive.name.endswith(".zip"):
                _extract_zip(archive, tmp)
            else:
                _extract_tar(archive, tmp)
        except (zipfile.BadZipFile, tarfile.TarError, EOFError) as err:
            raise UserError(f"cannot unpack {archive}: {err}",
                            "the archive matches the spec's sha256, so the spec names a file that "
                            "is not a readable archive: report it") from None
        (tmp / UNPACKED_MARKER).write_text(digest + "\n")
        swap_in(tmp, target, what)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
