"""During a setup, what the network libraries log goes to the env's setup.log, not the terminal.

huggingface_hub puts a stderr handler of its own on its logger when it is imported, and nox
points the root logger at the terminal: a host that could not reach a weight host got pages of
retry warnings and urllib3/httpcore debug lines between the progress bars. Inside
:func:`to_file` each library logger writes to the log file only, at DEBUG (the log is for
finding out what happened), with secrets masked (thbench.redaction); afterwards its handlers,
level and propagation are as before.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
from collections.abc import Iterator
from pathlib import Path

from thbench.redaction import redact

# httpx2/httpcore2: the HTTP client huggingface_hub 2.x vendors under its own name.
LIBRARIES = ("urllib3", "requests", "huggingface_hub", "httpx", "httpcore", "httpx2",
             "httpcore2", "filelock")
FORMAT = "%(asctime)s %(name)s %(levelname)s: %(message)s"


class RedactingFormatter(logging.Formatter):
    """Masks secrets in the whole formatted record: message, arguments and traceback alike
    (urllib3 and huggingface_hub log URLs, proxies and request details as they were given)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


@contextlib.contextmanager
def to_file(path: Path) -> Iterator[logging.Handler]:
    """Send the records of ``LIBRARIES`` to ``path`` (appended) and nowhere else, until exit."""
    with contextlib.suppress(ImportError):
        # Its stderr handler is added at import: now, so it is set aside here and not added
        # in the middle of a download.
        importlib.import_module("huggingface_hub.utils.logging")
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(RedactingFormatter(FORMAT))
    saved = []
    for name in LIBRARIES:
        logger = logging.getLogger(name)
        saved.append((logger, list(logger.handlers), logger.level, logger.propagate))
        for old in list(logger.handlers):
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
    try:
        yield handler
    finally:
        for logger, handlers, level, propagate in saved:
            logger.removeHandler(handler)
            for old in handlers:
                logger.addHandler(old)
            logger.setLevel(level)
            logger.propagate = propagate
        handler.close()
