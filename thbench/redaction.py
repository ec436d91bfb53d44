"""Secrets kept out of everything written or shown: logs, records, stamps, reports, errors.

A secret is the value of a token variable (``HF_TOKEN``, ``GITHUB_TOKEN``…) or the password
of a URL in any variable (``THB_GITHUB_MIRROR=https://user:pw@mirror/…``, ``HF_ENDPOINT``,
``UV_INDEX_URL``, ``HTTPS_PROXY``…). :func:`redact` replaces each with ``***`` and every URL's
``user:password@`` (or token-as-user ``token@``) with ``***@``, whether or not the URL came from
the environment. The set is read from ``os.environ`` at each call: tests and ``monkeypatch``
change it, and it is a handful of values.

Named ``redaction``, not ``secrets``: ``health_probe.py`` runs as a script from this folder,
where a ``secrets.py`` would shadow the standard library's for everything the probe imports.
"""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit, urlunsplit

MASK = "***"
TOKEN_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_TOKEN", "GITHUB_TOKEN", "GH_TOKEN")
# A free-standing value shorter than this is masked only inside a URL: replacing "pw" or "1234"
# everywhere would garble every record, and so short a secret protects nothing anyway.
MIN_FREE = 6
# scheme://userinfo@ — userinfo runs to the last '@' before a '/', space or quote: requests and
# urllib3 take "http://bob:p@ss@proxy" as password "p@ss", so that is what is masked. A URL with
# no '@' before its first '/' ("file:///x@y", "pkg @ https://host") is left alone.
USERINFO_RE = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^/\s'\"<>]+@")
# A user name with no password is masked everywhere only when it looks like a token
# ("ghp_…@github.com"); a plain one ("jsmith@proxy") is masked inside URLs only, or every path
# under /home/jsmith would be garbled in the records that are read back.
MIN_BARE_USER = 20
URL_RE = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """The secrets in ``environ`` (default: this process's), longest first."""
    environ = os.environ if environ is None else environ
    found: set[str] = set()
    for var in TOKEN_VARS:
        if value := environ.get(var, "").strip():
            found.add(value)
    for value in environ.values():
        if "@" not in value or "://" not in value:
            continue
        for url in URL_RE.findall(value):
            try:
                parts = urlsplit(url)
                password = parts.password
            except ValueError:  # a port that is no number: still masked by the pattern
                continue
            userinfo = parts.netloc.rpartition("@")[0]
            bare = parts.username if password is None else None
            if bare and len(bare) < MIN_BARE_USER:
                bare = userinfo = None
            for secret in (userinfo, password, bare):
                if secret:  # the raw form and the one a library decodes it to
                    found.update({secret, unquote(secret)})
    kept = {s for s in found if len(s) >= MIN_FREE}
    # As a JSON record or an HTML report spells them ("\\" for "\", "&amp;" for "&").
    kept |= {form for s in kept for form in (json.dumps(s)[1:-1], html.escape(s))}
    return sorted(kept, key=len, reverse=True)


def redact(text: str, environ: Mapping[str, str] | None = None) -> str:
    """``text`` with URL credentials and every secret of the environment masked as ``***``."""
    if not text:
        return text
    for secret in secret_values(environ):  # first: the pattern may cut a secret holding '@'
        text = text.replace(secret, MASK)
    return USERINFO_RE.sub(rf"\g<scheme>{MASK}@", text)


def redact_url(url: str, environ: Mapping[str, str] | None = None) -> str:
    """``url`` as it may be shown: no ``user:password@``, no token, the rest as it was."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact(url, environ)
    if "@" in parts.netloc:
        parts = parts._replace(netloc=f"{MASK}@{parts.netloc.rpartition('@')[2]}")
    return redact(urlunsplit(parts), environ)


def without_credentials(url: str) -> str:
    """``url`` with no userinfo at all: what may be stored (a checkout's ``remote.origin.url``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
