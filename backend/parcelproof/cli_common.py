"""What every command module shares: the error guard (one ``error:`` line, exit 2) and the
``--env-file`` option."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from parcelproof.core.errors import Error

P = ParamSpec("P")
R = TypeVar("R")

EnvFileOption = Annotated[
    Path | None,
    typer.Option(
        "--env-file",
        envvar="PARCELPROOF_ENV_FILE",
        help="read settings from this file (default: ./.env if present)",
    ),
]


def print_error(message: str) -> None:
    """One line on stderr: ``error: message`` (red on a terminal), never rich markup."""
    Console(stderr=True, soft_wrap=True, highlight=False).print(
        Text.assemble(("error:", "bold red"), " ", " ".join(str(message).split()))
    )


def guarded(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn every failure of a command into one ``error: …`` line and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.exceptions.TyperException):
            raise
        except Error as e:
            print_error(str(e))
        except KeyboardInterrupt:
            print_error("interrupted")
            raise typer.Exit(130) from None
        except OSError as e:
            print_error(f"{type(e).__name__}: {e.strerror or e}")
        except Exception as e:
            from parcelproof.logs import redact

            logging.getLogger("parcelproof.cli").debug("unexpected failure", exc_info=True)
            print_error(f"unexpected {type(e).__name__}: {redact(str(e))}")
        raise typer.Exit(2)

    return wrapper
