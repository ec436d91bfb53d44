"""Text into pieces a TTS backend speaks one at a time: sentences, and long ones cut shorter.

Pieces are synthesised separately and joined with set silences (thbench/speech_audio.py), so a
long text never makes one huge synthesis call, and a wrong cut costs a pause, not a word. The
rules, in order, all deterministic:

1. A blank line always ends a sentence. A single line break does too, unless the next line
   starts with a lowercase letter (hard-wrapped prose: the sentence goes on).
2. Within a line, a sentence ends after a run of ``. ! ? …`` (plus closing quotes or brackets)
   followed by a space or the end. A full stop or ellipsis does not end one before a lowercase
   letter, after an ABBREVIATIONS entry (``Dr.``, ``e.g.``) or after a single letter (initials);
   ``3.14`` has no space after its dot. ``。！？`` and the other CJK_ENDS end a sentence at once.
3. A sentence over ``max_piece_chars`` is cut at clause marks (``, ; : 、 ，``), else at spaces,
   else every ``max_piece_chars`` characters; the parts are packed back up to that length.
4. Whitespace runs become one space; a piece with no letter or digit (``...``) joins the piece
   before it (even past ``max_piece_chars``), so no backend is asked to speak punctuation alone.
"""

from __future__ import annotations

import re

MAX_PIECE_CHARS = 400  # ~25 s of speech: short enough for any backend, long enough for a sentence
ABBREVIATIONS = frozenset({
    "mr.", "mrs.", "ms.", "dr.", "prof.", "sr.", "jr.", "st.", "mt.", "vs.", "etc.", "e.g.", "i.e.",
    "cf.", "approx.", "no.", "fig.", "inc.", "ltd.", "co.", "z.b.", "bzw.", "usw.", "ca.", "nr.",
})
CJK_ENDS = "。！？｡．!?‼⁇⁈⁉।॥۔؟։።။"  # end a sentence with or without a space after
_LATIN_ENDS = ".!?…"
_CLOSERS = "\"'”’»)]}」』）】〉》"
_OPENERS = "\"'“‘«([{"

_END = re.compile(rf"[{re.escape(_LATIN_ENDS)}]+[{re.escape(_CLOSERS)}]*(?=\s|$)"
                  rf"|[{re.escape(CJK_ENDS)}]+[{re.escape(_CLOSERS)}]*(?![0-9０-９])")
_CLAUSE = re.compile(r"(?<=[,;:、，；：])")  # cut after a clause mark; the next part keeps its space
_SPACE = re.compile(r"(?<=\s)(?=\S)")
_LOOSE_DOT = re.compile(r"(\.|…)[\"'”’»)\]]*$")


def normalise_space(text: str) -> str:
    return " ".join(text.split())


def _lines(text: str) -> list[str]:
    """Rule 1: paragraphs and lines, with hard-wrapped lines joined back."""
    blocks: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\r", "\n")):
        for line in paragraph.split("\n"):
            line = normalise_space(line)
            if not line:
                continue
            if blocks and not blocks[-1].endswith("\n\n") and line[0].islower():
                blocks[-1] += " " + line
            else:
                blocks.append(line)
        if blocks:
            blocks[-1] += "\n\n"  # paragraph end: never joined to the next line
    return [block.strip() for block in blocks]


def _ends_sentence(line: str, match: re.Match[str]) -> bool:
    """Rule 2's exceptions for a full stop or ellipsis followed by a space."""
    mark = match.group()
    if not _LOOSE_DOT.search(mark) or any(ch in mark for ch in "!?" + CJK_ENDS):
        return True
    after = line[match.end():].lstrip()
    if after[:1].islower():
        return False
    word = line[: match.end()].rsplit(" ", 1)[-1].lower().rstrip(_CLOSERS).lstrip(_OPENERS)
    letters = word.rstrip(".")
    return word not in ABBREVIATIONS and not (len(letters) == 1 and letters.isalpha())


def _sentences(line: str) -> list[str]:
    pieces, start = [], 0
    for match in _END.finditer(line):
        if _ends_sentence(line, match):
            pieces.append(line[start: match.end()].strip())
            start = match.end()
    pieces.append(line[start:].strip())
    return [piece for piece in pieces if piece]


def _pack(parts: list[str], limit: int) -> list[str]:
    """Greedily join ``parts`` (each with its own spacing) into pieces of at most ``limit``."""
    packed: list[str] = []
    for part in parts:
        if packed and len(packed[-1]) + len(part) <= limit:
            packed[-1] += part
        else:
            packed.append(part)
    return packed


def _cut(sentence: str, limit: int) -> list[str]:
    """Rule 3: a sentence too long for one piece, cut at clauses, then spaces, then anywhere."""
    if len(sentence) <= limit:
        return [sentence]
    for boundary in (_CLAUSE, _SPACE):
        parts = [part for part in boundary.split(sentence) if part.strip()]
        if len(parts) > 1:
            return [piece for packed in _pack(parts, limit) for piece in _cut(packed.strip(), limit)]
    return [sentence[i: i + limit] for i in range(0, len(sentence), limit)]


def split_sentences(text: str, max_piece_chars: int = MAX_PIECE_CHARS) -> list[str]:
    """``text`` as pieces to speak one by one, each at most ``max_piece_chars`` long (module doc)."""
    if max_piece_chars < 1:
        raise ValueError(f"max_piece_chars must be at least 1, not {max_piece_chars}")
    pieces: list[str] = []
    for line in _lines(text):
        for sentence in _sentences(line):
            for piece in _cut(sentence, max_piece_chars):
                if pieces and not any(ch.isalnum() for ch in piece):
                    pieces[-1] += " " + piece  # rule 4: punctuation alone is not spoken
                elif pieces and not any(ch.isalnum() for ch in pieces[-1]):
                    pieces[-1] += " " + piece
                else:
                    pieces.append(piece)
    return pieces
