"""The command line's own arguments, checked before anything is opened, and its one-line errors.

Rules this module owns:

- Every failure is exactly one line on stderr, ``Error: ...``, naming the
  field, option or argument at fault: domain errors exit 1, usage errors
  (unknown option or command, a value click itself refuses) exit 2 with the
  help hint on the same line, instead of click's usage block.
- That line never carries the officer's input raw: control characters, lone
  surrogates (invalid UTF-8 in argv) and bidi controls are escaped, and it is
  cut at :data:`LINE_LIMIT` characters, so a 3 MB value is not echoed whole.
- ``enroll`` checks ``--hub`` (field_client.huburl: an https address, or
  http for a hub on this laptop only, since the registry pinned from the
  first answer must not come through anyone's hands) and
  ``--token`` (as the hub issues them) before it creates anything or spends
  the token; ``--home`` (or ``FIELDSYNC_HOME``) must be a folder or a path
  where one can be made, and a failed enrollment removes every folder it
  made, parents included.
"""

from __future__ import annotations

import errno
import re
import sys
from pathlib import Path
from typing import Any

import click

from . import inputs
from .errors import BadHubAddress
from .huburl import check_hub_url

LINE_LIMIT = 500
TOKEN = re.compile(r"\A[A-Za-z0-9_-]{1,200}\Z")  # what the hub issues: base64url, 43 characters today


def one_line(text: str, limit: int = LINE_LIMIT) -> str:
    """``text`` safe to print as one line: invisible and line-breaking characters escaped, cut at ``limit``."""
    shown = inputs.escape_controls(text)
    return shown if len(shown) <= limit else f"{shown[: limit - 30]}... ({len(shown)} characters)"


class OneLineErrors(click.Group):
    """The ``fieldsync`` group: every error, click's own included, as one ``Error:`` line on stderr."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except click.UsageError as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            click.echo(f"Error: {one_line(exc.format_message())}{hint}", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(f"Error: {one_line(exc.format_message())}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Error: aborted", err=True)
            sys.exit(1)
        except OSError as exc:
            if exc.errno == errno.EPIPE:  # output piped into a command that stopped reading
                sys.exit(1)
            raise
        sys.exit(code if isinstance(code, int) else 0)


def check_hub(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """``--hub``: nothing invisible or overlong, then the rules of :func:`field_client.huburl.check_hub_url`
    (https, or http to this machine; no credentials, query or fragment); the address normalised."""
    if inputs.escape_controls(value) != value or any(c.isspace() for c in value) or len(value) > 2000:
        raise click.BadParameter(
            f"holds spaces, control characters or is too long: {one_line(value, 80)!s}", ctx=ctx, param=param
        )
    try:
        return check_hub_url(value)
    except BadHubAddress as exc:
        raise click.BadParameter(one_line(str(exc)), ctx=ctx, param=param) from None


def check_token(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not TOKEN.match(value):
        raise click.BadParameter(
            f"an enrollment token is 1 to 200 letters, digits, - or _: {one_line(value, 60)}", ctx=ctx, param=param
        )
    return value


def first_missing(path: Path) -> Path | None:
    """The outermost folder of ``path`` that does not exist yet (None if ``path`` exists)."""
    missing = None
    for folder in [path, *path.absolute().parents]:
        if folder.exists():
            return missing
        missing = folder
    return missing


def check_home(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """``--home`` / ``FIELDSYNC_HOME``: a folder, or a path where one can be made."""
    try:
        if "\x00" in value:
            raise ValueError("holds a NUL character")
        path = Path(value or ".")
        if path.exists() and not path.is_dir():
            raise ValueError("is not a folder")
        for parent in path.absolute().parents:
            if parent.exists() and not parent.is_dir():
                raise ValueError(f"{parent} is not a folder")
    except OSError as exc:
        raise click.BadParameter(f"cannot be used ({exc.strerror}): {one_line(value, 80)}", ctx, param) from None
    except ValueError as exc:
        raise click.BadParameter(f"{exc}: {one_line(value, 80)}", ctx, param) from None
    return value
