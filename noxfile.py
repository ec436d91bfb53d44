"""talking-head-bench sessions, generated from the specs in solutions/, tts/, checks/ and metrics/."""

# Each setup session builds its env with uv under .envs/ (thbench/envs.py) rather than in a
# nox-managed venv, so `invoke run` finds it without guessing nox's folder names; the sessions
# themselves therefore need no venv of their own (venv_backend "none").

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import nox

from thbench import specs  # light: TOML and dataclasses; the rest is imported on first use
from thbench.errors import DISK_ERRORS, UserError, disk_error, print_error
from thbench.specs import Kind

nox.options.default_venv_backend = "none"
nox.options.sessions = ["tests"]

try:
    SPECS = specs.load_all()
except UserError as err:  # a broken spec stops everything, loudly, with every problem listed
    print_error(err)
    sys.exit(2)


@contextmanager
def _errors_end(session: nox.Session) -> Iterator[None]:
    """A UserError becomes its ERROR + TIP lines and a failed session, not a traceback; so does
    a disk that cannot be written (full, read-only, a file where a folder should be)."""
    try:
        yield
    except UserError as err:
        _fail(session, err)
    except OSError as err:
        if err.errno not in DISK_ERRORS:
            raise
        _fail(session, disk_error(err))


def _fail(session: nox.Session, err: UserError) -> None:
    print_error(err)
    session.error(err.message)


def _setup_options(session: nox.Session) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"nox -s {session.name} --", exit_on_error=False,
                                     add_help=False)
    parser.add_argument("--dry-run", action="store_true",
                        help="print the plan (commands, URLs, sizes, profile); change nothing")
    parser.add_argument("--profile", help="force a profile instead of choosing by GPU")
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    parser.add_argument("--rehearse", action="store_true",
                        help="stand-in weights from the model's rehearse.py; nothing downloaded")
    options = "options: --dry-run, --profile NAME, --force, --rehearse"
    try:
        known, unknown = parser.parse_known_args(session.posargs)
    except argparse.ArgumentError as err:
        _fail(session, UserError(str(err), options))
    if unknown:
        _fail(session, UserError(f"unknown option {' '.join(unknown)}", options))
    return known


def _setup_session(kind: Kind, spec: specs.Spec) -> None:
    def session(s: nox.Session) -> None:
        options = _setup_options(s)
        with _errors_end(s):
            from thbench import cli

            cli.setup_for_run(kind, spec.name, force=options.force, profile=options.profile,
                              dry_run=options.dry_run, rehearse=options.rehearse)

    what = kind.label
    session.__doc__ = f"Set up the {what} '{spec.name}' (Python {spec.python}): {spec.description}"
    nox.session(name=spec.setup_session, tags=["setup", kind.value])(session)


for _kind in Kind:
    for _spec in SPECS[_kind].values():
        _setup_session(_kind, _spec)


REHEARSAL_TEXT = "This is a rehearsal."  # short: some models take minutes per second on a CPU


def _rehearse_session(spec: specs.Spec) -> None:
    def session(s: nox.Session) -> None:
        unknown = [a for a in s.posargs if a not in ("--force", "--offline")]
        if unknown:
            _fail(s, UserError(f"unknown option {' '.join(unknown)}", "options: --force, --offline"))
        with _errors_end(s):
            from thbench import cli

            result = cli.rehearse(spec.name, text=REHEARSAL_TEXT, force="--force" in s.posargs,
                                  offline="--offline" in s.posargs)
        if result is None or not result.ok:
            s.error(f"the {spec.name} rehearsal did not reach its expected end; see "
                    f"solutions/{spec.name}/rehearsal.json")

    session.__doc__ = (f"Rehearse '{spec.name}': real checkout and installs, random stand-in "
                       "weights, the real entry point; writes its rehearsal.json")
    nox.session(name=f"rehearse-{spec.name}", tags=["rehearse"])(session)


for _spec in SPECS[Kind.MODEL].values():
    if _spec.rehearsal:
        _rehearse_session(_spec)


@nox.session
def smoke(session: nox.Session) -> None:
    """CPU-only, offline end-to-end run: set up still + Piper, speak assets/sample.txt, check the video."""
    with _errors_end(session):
        from thbench import cli

        result = cli.demo()
    if not result.ok:
        session.error(f"smoke run failed: {result.record['failure']['reason']}")


@nox.session(name="bench-baselines")
def bench_baselines(session: nox.Session) -> None:
    """Set up still, mouth and the offline metric envs; bench them on assets/cases.toml; report."""
    with _errors_end(session):
        from thbench import cli

        summary = cli.bench_baselines()
    if not summary.complete or summary.counts["failed"]:
        session.error(f"bench {summary.bench.id}: not every cell ran ok")


@nox.session(name="bench-install")
def bench_install(session: nox.Session) -> None:
    """Install speed: each spec's lock (default still, mouth) with uv and pip, empty and warm caches."""
    # The script prints its own ERROR + TIP; a failed run fails the session.
    session.run(sys.executable, "benchmarks/install.py", *session.posargs, external=True)


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite (pytest); pass pytest arguments after --."""
    session.run("pytest", *session.posargs)


@nox.session
def locks(session: nox.Session) -> None:
    """Re-resolve every requirements.lock from its [lock] source; `-- --update` rewrites them."""
    from thbench import locks as lockfiles  # this session's name shadows the module's

    update = "--update" in session.posargs
    with_lock = [variant for kind in Kind for spec in SPECS[kind].values()
                 for variant in map(spec.with_profile, spec.profile_names) if variant.lock]
    outcomes = lockfiles.check_all(with_lock, update=update)
    if err := lockfiles.verdict(outcomes, updated=update):
        _fail(session, err)


def _asked_sessions(argv: list[str]) -> list[str]:
    """The session names given with -s/-e/--session(s) on nox's own command line."""
    asked, taking = [], False
    for arg in argv[1:]:
        if arg == "--":
            break
        if arg in ("-s", "-e", "--session", "--sessions"):
            taking = True
        elif arg.startswith(("--session=", "--sessions=")):
            asked += arg.split("=", 1)[1].split(",")
        elif arg.startswith("-"):
            taking = False
        elif taking:
            asked += arg.split(",")
    return [name for name in asked if name]


def _refuse_unknown_sessions() -> None:
    """`nox -s setup-stil` is one ERROR + TIP with the near names, not nox's bare "Sessions not
    found" (nox reads this file before it looks the names up)."""
    import difflib

    known = set(nox.registry.get())
    unknown = [name for name in _asked_sessions(sys.argv) if name not in known]
    if unknown:
        near = list(dict.fromkeys(n for name in unknown  # closest first
                                  for n in difflib.get_close_matches(name, known, 2, 0.8)))
        print_error(UserError(f"no session {', '.join(unknown)}" + (
            f"; did you mean {', '.join(near)}?" if near else ""),
            "list them with `uv run nox -l`"))
        sys.exit(2)


_refuse_unknown_sessions()
