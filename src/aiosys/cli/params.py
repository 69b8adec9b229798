"""Command-line values converted without pydantic, so that a command starts fast.

Typer (0.29) converts every option value with a pydantic ``TypeAdapter`` built when the
command line is parsed: importing pydantic and building the adapters costs about as much
CPU as the rest of ``aiosys runs list``. The values of aiosys's commands are plain: text,
flags, and numbers with bounds. ``plain_params`` (applied by ``aiosys.cli.group.CommandGroup``,
the class of the ``aiosys`` command and its sub-commands) gives such parameters a converter
of its own, with typer's behaviour and messages; any other parameter (a path, a list, a
choice) and any value of another type still goes through typer's adapter, built when
first needed.

This reaches into typer's parameter internals (``_TyperParameter._runtime_param``,
``RuntimeParam``). If a typer release moves them, nothing here is applied and typer
converts every value itself: slower, never wrong (a test checks which modules a
``runs list`` process imports, so the slowdown is seen).
"""

from __future__ import annotations

from typing import Any

try:  # typer's internals: see the module's docstring
    from typer._click import Context
    from typer._click.exceptions import BadParameter
    from typer._coercion import RuntimeParam, build_runtime_param
    from typer.core import _TyperParameter
except ImportError:  # pragma: no cover - another typer
    RuntimeParam = None  # type: ignore[assignment,misc]


def _range_error(value: float, lo: float | None, hi: float | None) -> str | None:
    if lo is not None and value < lo:
        return f"Input should be greater than or equal to {lo:g}"
    if hi is not None and value > hi:
        return f"Input should be less than or equal to {hi:g}"
    return None


if RuntimeParam is not None:

    class PlainParam(RuntimeParam):
        """Converts a ``str``, ``bool``, ``int`` or ``float`` parameter's value as typer's
        adapter does; hands anything unusual to that adapter."""

        def _coerce_value(self, value: Any, param: _TyperParameter, ctx: Context) -> Any:
            kind = self.annotation
            if kind is str and isinstance(value, str):
                return value
            if kind is bool and isinstance(value, bool):
                return value
            if kind in (int, float) and isinstance(value, str | int | float):
                if isinstance(value, bool):
                    return self._typer(value, param, ctx)
                try:
                    number = kind(value) if not isinstance(value, str) else kind(value.strip())
                except ValueError:
                    name = "an integer" if kind is int else "a number"
                    raise BadParameter(
                        f"Input should be a valid {'integer' if kind is int else 'number'}, "
                        f"{value!r} is not {name}",
                        ctx=ctx,
                        param=param,
                    ) from None
                info = self.parameter_info
                problem = _range_error(number, info.min, info.max)
                if problem is not None:
                    raise BadParameter(problem, ctx=ctx, param=param)
                return number
            return self._typer(value, param, ctx)

        def _typer(self, value: Any, param: _TyperParameter, ctx: Context) -> Any:
            typer_param = build_runtime_param(param.type_descriptor)
            return typer_param._coerce_value(value, param=param, ctx=ctx)

    def _plain(param: object) -> None:
        if not isinstance(param, _TyperParameter) or param._runtime_param is not None:
            return
        desc = param.type_descriptor
        info = desc.parameter_info
        if (
            desc.annotation in (str, bool, int, float)
            and desc.file_annotation is None
            and info.parser is None
            and not info.clamp
            and not desc.is_choice
        ):
            param._runtime_param = PlainParam(parameter_info=info, annotation=desc.annotation)

else:  # pragma: no cover - another typer

    def _plain(param: object) -> None:
        pass


def plain_params(params: list[Any]) -> None:
    """Give the plain parameters among ``params`` the pydantic-free converter."""
    for param in params:
        _plain(param)


__all__ = ["plain_params"]
