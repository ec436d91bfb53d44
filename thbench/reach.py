"""Before the long installs: does every host the weights will come from answer at all?

A setup spends minutes on Python, torch and the lock before its first weight byte; a host that
cannot reach GitHub or the Hub should learn that first, with the variables that fix it, and with
nothing installed. :func:`require_reachable` asks each distinct host of a weights plan once, all
at the same time, with a short timeout and no retries: the name is resolved first (a name that
does not resolve fails at once), then the host's root is asked with ``HEAD``. Any HTTP answer,
403, 404 and 405 included, means the host is there; what the weight URL itself serves is the
download's business. Only a name that does not resolve, a refused or reset connection, a TLS
failure or silence past the timeout count as "does not answer".

The root, not the weight's own URL, is asked so that a mirror that proxies (``ghproxy``-style)
is not made to fetch gigabytes from upstream for a probe. Through an HTTP(S) proxy (the
``HTTPS_PROXY`` family, which requests and huggingface_hub both honour) names are the proxy's to
resolve, so the local lookup is skipped and the proxy's own answer counts.

:func:`does_not_resolve` tells, for the downloads in ``weights``, an error that another attempt
cannot fix: a host name that does not resolve.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests
import urllib3

from thbench import weights
from thbench.errors import UserError

TIMEOUT = 5.0  # seconds: to connect, and then for the answer
HUB = "https://huggingface.co"  # huggingface_hub's endpoint while HF_ENDPOINT is unset
HUB_VAR = "HF_ENDPOINT"
PORTS = {"http": 80, "https": 443}


def causes(err: BaseException) -> Iterator[BaseException]:
    """``err`` and every exception behind it: ``__cause__``, ``__context__``, urllib3's
    ``reason`` and exceptions among ``args`` (requests wraps urllib3's error as its first)."""
    todo, seen = [err], set()
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        behind = [current.__cause__, current.__context__, getattr(current, "reason", None),
                  *current.args]
        todo += [e for e in behind if isinstance(e, BaseException)]


def does_not_resolve(err: BaseException) -> bool:
    """``err`` comes from a host name that does not resolve (urllib3's NameResolutionError, or
    the socket.gaierror under it and under httpx's ConnectError): retrying cannot help."""
    return any(isinstance(e, (socket.gaierror, urllib3.exceptions.NameResolutionError))
               for e in causes(err))


def _proxied(url: str) -> bool:
    """requests would go through a proxy for ``url`` (``no_proxy`` honoured)."""
    return requests.utils.select_proxy(url, requests.utils.get_environ_proxies(url)) is not None


def resolves(url: str) -> bool:
    """``url``'s host name resolves here (or a proxy resolves it for us)."""
    parts = urlsplit(url)
    if _proxied(url):
        return True
    try:
        socket.getaddrinfo(parts.hostname, parts.port or PORTS.get(parts.scheme, 443),
                           type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return False
    return True


def probe(url: str, timeout: float = TIMEOUT) -> str | None:
    """Why ``url``'s host does not answer, or None when it answers anything at all. One try."""
    if not resolves(url):
        return "name does not resolve"
    try:
        requests.head(url, timeout=timeout, allow_redirects=False,
                      headers={"User-Agent": weights.USER_AGENT}).close()
    except requests.exceptions.SSLError as err:
        return f"TLS failed: {_innermost(err)}"
    except requests.exceptions.ProxyError as err:
        return f"the proxy failed: {_innermost(err)}"
    except requests.Timeout:
        return f"no answer within {timeout:g} s"
    except requests.RequestException as err:
        if does_not_resolve(err):
            return "name does not resolve"
        found = {type(e) for e in causes(err)}
        if ConnectionRefusedError in found:
            return "connection refused"
        if ConnectionResetError in found:
            return "connection reset"
        return _innermost(err)
    return None


def _innermost(err: BaseException) -> str:
    """The deepest exception behind ``err``, in one line: the one that says what happened."""
    seen = {id(err)}
    while True:
        behind = next((e for e in (getattr(err, "reason", None), err.__cause__, err.__context__,
                                   *err.args)
                       if isinstance(e, BaseException) and id(e) not in seen), None)
        if behind is None:
            break
        err = behind
        seen.add(id(err))
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 160 else text[:157] + "..."


@dataclass
class Host:
    """One host the plan still needs, and what moves it elsewhere."""

    name: str  # host[:port], as the error names it
    probe_url: str  # the URL asked with HEAD (the host's root, or the Hub endpoint)
    variables: set[str] = field(default_factory=set)  # THB_GITHUB_MIRROR, HF_ENDPOINT
    problem: str | None = None  # set when the source cannot be probed at all (not http(s))


def hosts(items: Iterable[weights.Item]) -> list[Host]:
    """The distinct hosts the given plan items still have to come from, in plan order.

    Weights present (or unpacked) and weights a person downloads by hand ask no host.
    """
    found: dict[str, Host] = {}
    for item in items:
        weight = item.weight
        if not item.needs_fetch or weight.manual:
            continue
        if weight.url:
            url = item.source  # THB_GITHUB_MIRROR applied
            variable = weights.MIRROR_VAR if weight.url.startswith(weights.GITHUB) else None
        else:
            url, variable = (weights._hub_endpoint() or HUB) + "/", HUB_VAR
        parts = urlsplit(url)
        if parts.scheme not in PORTS or not parts.hostname:
            host = found.setdefault(url, Host(url, url, problem="not an http(s) URL"))
        else:
            name = parts.netloc.rpartition("@")[2]  # never a password
            root = url if variable == HUB_VAR else f"{parts.scheme}://{parts.netloc}/"
            host = found.setdefault(name, Host(name, root))
        if variable:
            host.variables.add(variable)
    return list(found.values())


def require_reachable(items: Iterable[weights.Item], *, who: str = "the model",
                      timeout: float = TIMEOUT) -> None:
    """ERROR + TIP, naming every host that does not answer and why, unless all of them do.

    ``items``: a weights plan's items (``weights.plan(...).to_fetch``); ``who`` names the env.
    """
    todo = hosts(items)
    asked = [h for h in todo if h.problem is None]
    if asked:
        with ThreadPoolExecutor(max_workers=min(len(asked), 16)) as pool:
            for host, why in zip(asked, pool.map(lambda h: probe(h.probe_url, timeout), asked),
                                 strict=True):
                host.problem = why
    failed = [h for h in todo if h.problem]
    if not failed:
        return
    raise UserError(
        f"cannot reach the weight hosts of {who} before installing anything: "
        + ", ".join(f"{h.name} ({h.problem})" for h in failed),
        _tip(set().union(*(h.variables for h in failed))),
    )


def _tip(variables: set[str]) -> str:
    fixes = []
    for variable, fix in ((weights.MIRROR_VAR, "for github.com URLs set {} to an http(s) "
                                               "mirror prefix"),
                          (HUB_VAR, "for the Hugging Face Hub set {} to a Hub mirror")):
        if variable in variables:
            now = os.environ.get(variable, "").strip()
            fixes.append(fix.format(variable) + (f" (now {now})" if now else ""))
    if fixes:
        fixes[-1] += " (README: Mirrors)"
    fixes.append("check the network, DNS and proxy (HTTPS_PROXY)")
    return "nothing was installed; " + "; ".join(fixes) + "; then run the same setup command again"
