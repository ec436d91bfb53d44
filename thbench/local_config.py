"""This machine's own settings, never committed: per model, an existing env to run it in.

The file is ``thb.local.toml`` at the repo root (git-ignored), or the one ``THB_LOCAL_CONFIG``
names::

    [models.wav2lip]
    env = "conda:wav2lip"                    # a conda env by name, or "conda:/opt/envs/wav2lip"
    repo = "/path/to/src/Wav2Lip"            # optional: an existing upstream checkout
    weights = "/path/to/weights/wav2lip"     # optional: a folder laid out as the spec's dests

    [models.still]
    env = "python:/path/to/venvs/still/bin/python"

``env = "uv"`` (the default) is the project's own uv env. ``THB_ENV_<MODEL>`` (``THB_ENV_STILL``,
``THB_ENV_V_EXPRESS``) sets one model's ``env`` and wins over the file; ``repo`` and
``weights`` still come from the file. Unknown keys and models (in the file or a ``THB_ENV_*``
name) are errors, all reported together.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from thbench import paths
from thbench.errors import UserError
from thbench.spec_checks import _near

FILE_NAME = "thb.local.toml"
KEYS = ("env", "repo", "weights")
EXAMPLE = 'env = "conda:wav2lip" (or "python:/path/to/bin/python", or "uv")'
EnvKind = Literal["conda", "python"]


@dataclass(frozen=True)
class EnvRef:
    """Where an existing env is: a conda env (name or prefix) or an interpreter's path."""

    kind: EnvKind
    value: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"


@dataclass(frozen=True)
class ModelLocal:
    model: str
    env: EnvRef | None  # None: the project's own uv env
    repo: Path | None = None
    weights: Path | None = None
    source: str = ""  # where `env` was set: the file, or THB_ENV_<MODEL>


def config_path() -> Path:
    named = os.environ.get("THB_LOCAL_CONFIG")
    return Path(named).expanduser() if named else paths.REPO_ROOT / FILE_NAME


def env_var(model: str) -> str:
    return "THB_ENV_" + model.upper().replace("-", "_")


def parse_env(text: str) -> EnvRef | None | str:
    """An ``env`` value as an EnvRef (None for "uv"), or why it is wrong."""
    if text == "uv":
        return None
    kind, sep, value = text.partition(":")
    if not sep or kind not in ("conda", "python") or not value.strip():
        return "must be conda:<name-or-prefix>, python:/path/to/bin/python or uv"
    if kind == "python" and not Path(value).expanduser().is_absolute():
        return "python: needs an absolute path to the interpreter"
    return EnvRef(kind, str(Path(value).expanduser()) if "/" in value else value)  # type: ignore[arg-type]


def load(models: list[str]) -> dict[str, ModelLocal]:
    """Every model's local settings (file, then env variables); ERROR listing every problem."""
    path, problems, tables = config_path(), [], {}
    if path.is_file():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
            raise UserError(f"{path}: not readable TOML: {err}",
                            f"fix the file; an entry looks like [models.still] {EXAMPLE}") from None
        for key in data:
            if key != "models":
                problems.append(f"{path}: {key}: unknown table; allowed: [models.<name>]")
        found = data.get("models", {})
        if not isinstance(found, dict):
            problems.append(f"{path}: models must be tables, e.g. [models.still] {EXAMPLE}")
            found = {}
        for name, table in found.items():
            where = f"{path}: models.{name}"
            if name not in models:
                close = _near(name, models)
                problems.append(f"{where}: unknown model" + (f"; did you mean '{close}'?" if close
                                else f" (known: {', '.join(sorted(models))})"))
            elif not isinstance(table, dict):
                problems.append(f"{where}: must be a table, e.g. [models.{name}] {EXAMPLE}")
            else:
                tables[name] = _entry(name, table, where, problems)
    elif "THB_LOCAL_CONFIG" in os.environ:
        problems.append(f"THB_LOCAL_CONFIG names {path}, which is not a file")
    for name in models:
        value = os.environ.get(env_var(name))
        if value is None:
            continue
        parsed = parse_env(value)
        if isinstance(parsed, str):
            problems.append(f"{env_var(name)}={value!r}: {parsed} (e.g. {env_var(name)}="
                            f"python:/path/to/bin/python)")
            continue
        base = tables.get(name, ModelLocal(name, None))
        tables[name] = ModelLocal(name, parsed, base.repo, base.weights, env_var(name))
    known = {env_var(name): name for name in models}
    for key in sorted(k for k in os.environ if k.startswith("THB_ENV_") and k not in known):
        close = _near(key[8:], [k[8:] for k in known])  # a typo would leave it in our own env
        problems.append(f"{key}: names no model" + (f"; did you mean THB_ENV_{close}?" if close
                        else f" (known: {', '.join(sorted(known))})"))
    if problems:
        count = len(problems)
        raise UserError(f"{count} problem{'s' if count != 1 else ''} in the local config: "
                        + "; ".join(problems),
                        f"fix them; an entry looks like [models.still] {EXAMPLE} (README: "
                        "'Existing environments')")
    return tables


def _entry(name: str, table: dict, where: str, problems: list[str]) -> ModelLocal:
    for key in table:
        if key not in KEYS:
            close = _near(key, KEYS)
            problems.append(f"{where}.{key}: unknown key; allowed: {', '.join(KEYS)}"
                            + (f" (did you mean '{close}'?)" if close else ""))
    env: EnvRef | None = None
    if "env" in table:
        value = table["env"]
        parsed = parse_env(value) if isinstance(value, str) else "must be a string"
        if isinstance(parsed, str):
            problems.append(f"{where}.env = {value!r}: {parsed} (e.g. {EXAMPLE})")
        else:
            env = parsed
    folders: dict[str, Path | None] = {"repo": None, "weights": None}
    for key in folders:
        if key not in table:
            continue
        value = table[key]
        folder = Path(value).expanduser() if isinstance(value, str) and value else None
        if folder is None or not folder.is_absolute():
            problems.append(f"{where}.{key} = {value!r}: must be an absolute folder path "
                            f'(e.g. {key} = "/path/to/src/{name}")')
        elif not folder.is_dir():
            problems.append(f"{where}.{key} = {value!r}: no such folder")
        else:
            folders[key] = folder.resolve()
    if env is None and any(folders.values()):
        problems.append(f"{where}: repo and weights are for an existing env; add {EXAMPLE}")
    return ModelLocal(name, env, folders["repo"], folders["weights"], str(config_path()))


def for_model(model: str, models: list[str]) -> ModelLocal | None:
    """The local settings of ``model`` when they name an existing env, else None."""
    entry = load(models).get(model)
    return entry if entry and entry.env else None
