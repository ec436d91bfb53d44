"""Regenerate ``tts/piper/catalogue.json``, the committed snapshot of Piper's voice catalogue.

Reads Piper's ``voices.json`` (a file given on the command line, or by default the Hub's
``rhasspy/piper-voices`` at the pinned revision, through huggingface_hub and ``HF_ENDPOINT``) and
writes our reduced, sorted form: per voice its language, quality, speakers, aliases and, per
file, size and md5. Listing voices then needs no network; each download is still checked against
the Hub's own listing at the revision (thbench/piper_voices.py).

    uv run python tts/piper/make_catalogue.py                     # from the Hub
    uv run python tts/piper/make_catalogue.py voices.json --source "where it came from"
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from thbench import piper_voices
from thbench.files import atomic_write_text

OUT = Path(__file__).with_name("catalogue.json")


def from_hub() -> tuple[dict, str]:
    """voices.json of the pinned revision, and where it came from."""
    from huggingface_hub import hf_hub_download

    endpoint = os.environ.get("HF_ENDPOINT", "").strip().rstrip("/") or None  # read at import
    got = hf_hub_download(piper_voices.REPO, "voices.json", revision=piper_voices.REVISION,
                          endpoint=endpoint)
    source = f"hf://{piper_voices.REPO}@{piper_voices.REVISION}/voices.json"
    return json.loads(Path(got).read_text(encoding="utf-8")), source


def reduce(voices: dict) -> dict[str, dict]:
    """Piper's voices.json entries in our form; keys sorted, so the snapshot diffs cleanly."""
    out = {}
    for key, entry in sorted(voices.items()):
        language = entry["language"]
        speakers = entry.get("speaker_id_map") or {}
        out[key] = {
            "language": language["code"],
            "language_english": language["name_english"],
            "quality": entry["quality"],
            "speakers": dict(sorted(speakers.items(), key=lambda kv: (kv[1], kv[0]))),
            "aliases": sorted(entry.get("aliases") or []),
            "files": {path: {"size": f["size_bytes"], "md5": f["md5_digest"]}
                      for path, f in sorted(entry["files"].items())},
        }
    return out


def render(voices: dict, source: str, note: str | None) -> str:
    catalogue = {"repo": piper_voices.REPO, "revision": piper_voices.REVISION, "source": source,
                 "note": note, "voices": reduce(voices)}
    piper_voices.parse(catalogue, "the regenerated catalogue")  # the loader's own checks
    return json.dumps(catalogue, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("voices_json", nargs="?", type=Path,
                        help="a voices.json file (default: the Hub's, at the pinned revision)")
    parser.add_argument("--source", help="where the file came from (recorded; required with a "
                        "file: a machine path would say nothing to a reader)")
    parser.add_argument("--note", help="anything a reader should know about the source")
    parser.add_argument("--out", type=Path, default=OUT, help=f"default: {OUT.name} beside this")
    args = parser.parse_args(argv)
    if args.voices_json is None:
        voices, source = from_hub()
    elif not args.source:
        parser.error("--source is required with a voices.json file")
    else:
        voices, source = json.loads(args.voices_json.read_text(encoding="utf-8")), args.source
    atomic_write_text(args.out, render(voices, source, args.note))
    print(f"{len(voices)} voices from {source} -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
