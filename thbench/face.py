"""The face check on an input image: the `face` check env's detector, before any model runs."""

from __future__ import annotations

import json
from pathlib import Path

from thbench import envs, proc, specs
from thbench.errors import UserError
from thbench.specs import Kind


def face_check(image: Path) -> dict:
    """The detector's result for ``image``; ERROR + TIP when it finds no face."""
    spec = specs.get(Kind.CHECK, "face")
    env = envs.require_ready(spec)
    argv = spec.command.expand({"python": str(env.python), "spec_dir": str(spec.folder),
                                "image": str(image)})
    out = proc.run(argv, capture=True, check=False, timeout=spec.command.timeout)
    try:
        result = json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        result = None
    if not isinstance(result, dict):  # the checker itself broke: not the photo's fault
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"the face check failed (exit status {out.returncode}): {last}",
                        f"rebuild it with `uv run nox -s {spec.setup_session} -- --force`, or "
                        "add --no-face-check to run without it")
    if result.get("error"):
        raise UserError(f"the face check could not read {image}: {result['error']}",
                        "pass a PNG or JPEG photo")
    if not result.get("faces"):
        raise UserError(
            f"no face found in {image}",
            "use a photo with one clearly visible face, or add --no-face-check to run anyway",
        )
    return result


