"""``CommandGroup``: the class of the ``aiosys`` command and of its sub-command groups.

It prepares a command just before it is parsed or its help is printed: plain option values
are converted without pydantic (``aiosys.cli.params``), and help text taken from a
docstring is reflowed, so that the terminal wraps it and not the docstring's line breaks
(typer's rich help keeps single line breaks, cutting sentences mid-line), and every help
text is escaped, so that what it says in square brackets is shown (``show_as_written``).
"""

from __future__ import annotations

import inspect
from typing import Any

from rich.markup import escape
from typer.core import TyperGroup

from .params import plain_params

NO_REWRAP = "\b"  # click's marker: a paragraph starting with it keeps its line breaks


def reflow(text: str) -> str:
    """``text`` with the single line breaks inside each paragraph made spaces: paragraphs
    (separated by a blank line) stay, and a paragraph starting with ``\\b`` is kept as it is;
    anything after a ``\\f`` line (hidden from help) is kept unchanged."""
    shown, mark, hidden = inspect.cleandoc(text).partition("\f")
    paragraphs = [
        p if p.startswith(NO_REWRAP) else " ".join(line.strip() for line in p.splitlines())
        for p in shown.split("\n\n")
    ]
    return "\n\n".join(paragraphs).rstrip("\n") + ("\n" + mark + hidden if mark else "")


_SHOWN = "_aiosys_help_shown"  # set on a command whose help text was prepared (once)


def show_as_written(command: Any) -> None:
    """Prepare ``command``'s help text and its options' for typer's rich help, once: its
    own reflowed, and both escaped, so that text in square brackets is shown as written
    (rich would read ``[server]`` in "max_body_size under [server]" as a style tag and
    drop it; no help text here uses rich markup)."""
    if getattr(command, _SHOWN, False):
        return
    if command.help:
        command.help = escape(reflow(command.help))
    for param in command.params:
        if getattr(param, "help", None):
            param.help = escape(param.help)
    setattr(command, _SHOWN, True)


class CommandGroup(TyperGroup):
    """A typer group whose commands convert plain values without pydantic and whose help
    text is reflowed and shown as written (see the module)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        show_as_written(self)
        plain_params(self.get_params(ctx))  # with --help, made (and kept) for this context
        return super().parse_args(ctx, args)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            show_as_written(command)
            if not isinstance(command, TyperGroup):  # a group prepares itself when parsed
                # A sub-command's context inherits the help option names of this one: its
                # --help option, made here, is the one it keeps.
                plain_params(command.get_params(ctx))
        return command


__all__ = ["CommandGroup", "reflow", "show_as_written"]
