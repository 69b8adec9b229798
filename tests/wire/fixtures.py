"""Pytest fixtures for the wire servers (loaded by tests/conftest.py: ``pytest_plugins``).

``openai_server`` and ``anthropic_server`` give a running server's control object
(``OpenAIWire`` / ``AnthropicWire``): ``.endpoint`` for a model card, ``.next(...)``,
``.always(...)``, ``.requests``, ``.counts`` (tests/wire/control.py). Each server runs once
per session (starting and stopping uvicorn costs a fraction of a second) and is ``reset()``
before every test, so every test starts with a server that answers ok and has seen nothing.

``start_wire_server(OpenAIWire)`` starts one more server for this test alone (e.g. a
primary and a fallback deployment that must fail differently), stopped after it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import TypeVar

import pytest

from .anthropic_server import AnthropicWire
from .control import WireControl
from .openai_server import OpenAIWire
from .serve import run_server

W = TypeVar("W", bound=WireControl)


@pytest.fixture(scope="session")
def _openai_wire() -> Iterator[OpenAIWire]:
    wire = OpenAIWire()
    with run_server(wire.app) as base_url:
        wire.base_url = base_url
        yield wire


@pytest.fixture(scope="session")
def _anthropic_wire() -> Iterator[AnthropicWire]:
    wire = AnthropicWire()
    with run_server(wire.app) as base_url:
        wire.base_url = base_url
        yield wire


@pytest.fixture
def openai_server(_openai_wire: OpenAIWire) -> OpenAIWire:
    """A local OpenAI-format server, reset: answers ok, no requests seen."""
    _openai_wire.reset()
    return _openai_wire


@pytest.fixture
def anthropic_server(_anthropic_wire: AnthropicWire) -> AnthropicWire:
    """A local Anthropic Messages API server, reset: answers ok, no requests seen."""
    _anthropic_wire.reset()
    return _anthropic_wire


@pytest.fixture
def start_wire_server() -> Iterator[Callable[[type[W]], W]]:
    """``start_wire_server(OpenAIWire)``: a fresh server of that kind, running until the test
    ends."""
    with ExitStack() as stack:

        def start(kind: type[W]) -> W:
            wire = kind()
            wire.base_url = stack.enter_context(run_server(wire.app))
            return wire

        yield start
