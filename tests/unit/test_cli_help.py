"""Help text at 80 columns: every command's short help in its group's list is one complete
sentence (a full stop, nothing cut off with "..."), every description is wrapped by the
terminal and not broken where the docstring's lines ended, every option says what it does."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import typer
from typer._click import Command, Context
from typer.core import TyperGroup as Group
from typer.testing import CliRunner

from aiosys.cli.group import reflow
from aiosys.cli.main import cli

WIDTH = 80


def commands(group: Group, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Command]]:
    ctx = Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        yield (*path, name), command
        if isinstance(command, Group):
            yield from commands(command, (*path, name))


def root() -> Group:
    group = typer.main.get_command(cli)
    assert isinstance(group, Group)
    return group


def help_page(*path: str) -> str:
    result = CliRunner().invoke(cli, [*path, "--help"], env={"COLUMNS": str(WIDTH)})
    assert result.exit_code == 0, result.output
    return result.stdout


def panel(page: str, title: str) -> list[str]:
    """The cell text of the rows of a panel (``Commands``), a row's lines joined."""
    lines = page.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"╭─ {title} "))
    rows: list[str] = []
    for line in lines[start + 1 :]:
        if line.startswith("╰"):
            break
        cell = line.strip("│ ").rstrip()
        if line[2] != " ":  # a new row: "│ name  text"
            rows.append(cell.split(None, 1)[1] if " " in cell else "")
        else:
            rows[-1] += " " + cell
    return rows


def description(page: str) -> list[str]:
    """The lines between the usage line and the first panel."""
    lines = page.splitlines()
    start = next(i for i, line in enumerate(lines) if "Usage:" in line)
    end = next(i for i, line in enumerate(lines) if line.startswith("╭"))
    return [line.strip() for line in lines[start + 1 : end]]


def test_every_group_lists_each_command_with_one_complete_sentence() -> None:
    groups = [()] + [path for path, c in commands(root()) if isinstance(c, Group)]
    assert ("runs",) in groups and ("models",) in groups
    for path in groups:
        rows = panel(help_page(*path), "Commands")
        assert rows, path
        for text in rows:
            assert text.endswith(".") and "..." not in text, (path, text)


def test_every_first_docstring_line_is_a_whole_short_sentence() -> None:
    for path, command in commands(root()):
        first = reflow(command.help or "").split("\n\n")[0]
        assert first.endswith(".") and "\n" not in first, (path, first)
        assert len(first) <= 2 * (WIDTH - 12), (path, first)  # two lines of the list at most


def test_descriptions_are_wrapped_by_the_terminal_not_by_the_docstring() -> None:
    pages = [()] + [path for path, _ in commands(root())]
    for path in pages:
        lines = description(help_page(*path))
        for line, after in itertools.pairwise(lines):
            if line and after:  # within a paragraph the next word did not fit on the line
                assert len(line) + 1 + len(after.split()[0]) > WIDTH - 4, (path, line, after)


def test_every_option_and_argument_says_what_it_is() -> None:
    for path, command in commands(root()):
        for param in command.params:
            text = (getattr(param, "help", None) or "").strip()
            assert text.endswith((".", ")")), (path, param.name, text)


def test_reflow_keeps_paragraphs_and_unwrapped_blocks() -> None:
    text = """First line
    goes on.

    Second
    paragraph.

    \b
    kept
    as is
    \f
    hidden"""
    assert reflow(text) == "First line goes on.\n\nSecond paragraph.\n\n\b\nkept\nas is\n\f\nhidden"


def test_text_in_square_brackets_is_shown_not_read_as_markup() -> None:
    # `aiosys server --help` said "max_body_size under in aiosys.toml": rich read
    # "[server]" as a style tag and dropped it. Every bracketed word a help text holds
    # reaches the page.
    import re

    checked = 0
    for path, command in commands(root()):
        texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
        # As written (the help may be prepared already: escaped for rich).
        wanted = {m for t in texts for m in re.findall(r"\[[^\]\s]+\]", t.replace("\\", ""))}
        if not wanted:
            continue
        page = " ".join(help_page(*path).replace("│", " ").split())
        for token in wanted:
            assert token in page, (path, token)
            checked += 1
    assert checked, "no help text holds square brackets: the test checks nothing"
