"""The one error type a user mistake becomes, and the one place that prints it."""

from __future__ import annotations

import errno
import functools
import sys
from collections.abc import Callable
from typing import TypeVar

from thbench.redaction import redact

F = TypeVar("F", bound=Callable[..., object])


class UserError(Exception):
    """A mistake the user can fix: printed as one ERROR line and one TIP line, no traceback."""

    def __init__(self, message: str, tip: str, exit_code: int = 2) -> None:
        # Masked here, so every record and log line made from the error is masked too.
        message, tip = redact(message), redact(tip)
        super().__init__(message)
        self.message = message
        self.tip = tip
        self.exit_code = exit_code


def print_error(err: UserError) -> None:
    # One line each, whatever the message holds: a newline would split the ERROR line.
    message = " ".join(redact(err.message).split())  # again: a subclass may have set it later
    print(f"ERROR: {message}", file=sys.stderr)
    print(f"TIP: {redact(err.tip)}", file=sys.stderr)


# The disk refusing a write: the user's to fix (room, permissions), not a bug to trace back.
DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.ENOTDIR, errno.EEXIST)


def disk_error(err: OSError) -> UserError:
    where = f" {err.filename}" if err.filename else " to the disk"
    return UserError(f"cannot write{where}: {err.strerror or err}",
                     "free space or fix permissions there (--outputs DIR / THB_OUTPUTS_DIR and "
                     "THB_ENVS_DIR move what is written), then run the same command again; "
                     "earlier runs and envs are untouched", exit_code=1)


def exits_cleanly(func: F) -> F:
    """Turn a UserError raised by ``func`` into ERROR + TIP and a non-zero exit, no traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except UserError as err:
            print_error(err)
            raise SystemExit(err.exit_code) from None
        except KeyboardInterrupt:
            print("ERROR: interrupted", file=sys.stderr)
            raise SystemExit(130) from None
        except OSError as err:
            if err.errno not in DISK_ERRORS:
                raise
            print_error(disk_error(err))
            raise SystemExit(1) from None

    return wrapper  # type: ignore[return-value]
