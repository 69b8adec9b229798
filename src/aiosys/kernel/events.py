"""Events and triggers: ``@app.workflow(on="invoice.received")`` and ``app.publish``.

A trigger subscribes a workflow to a topic. It is declared with the workflow, so every process
that loads the app knows it, as it knows the workflow. Publishing an event on a topic starts
one run of each workflow subscribed to it: a publish is N starts through the App's own start
path (scoping, client checks such as ``start_workflow`` policy, audit), nothing more.

The words are CloudEvents' (https://cloudevents.io): an event has an ``id``, a ``source``, a
``type`` (the topic) and ``data``. ``data`` is each triggered run's input (the workflow's
parameters).

Exactly once, durably: each triggered run is started with an idempotency key derived from
the event (``event_key``: its ``source`` and ``id``, and the workflow), so the same event
published again (a retry after a timeout, a redelivery) starts nothing new and returns the
same runs. The event itself is not stored: its runs are (each in the transaction that
creates it, as any start).

Invariant (what is committed before what): every triggered start is admitted (scoped,
checked, its input validated) before any is written, so a refusal of one starts none. The
starts are then written one transaction each, in trigger order; if the process dies between
two, the event's runs exist in part, and publishing it again with the same id writes the
rest (the others come back by their keys).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ConfigError, InvalidInput

if TYPE_CHECKING:
    from .app import RunHandle

#: A topic's longest length (an identity: the HTTP API caps path segments at 200 too).
TOPIC_MAX = 200
#: Dot-separated words of letters, digits, ``_`` and ``-`` (``invoice.received``,
#: ``com.example.order-placed``): CloudEvents' reverse-DNS ``type`` names, and exactly what a
#: NATS subject or a Redis stream name can carry unescaped (no wildcards, no spaces).
TOPIC = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")
TOPIC_RULE = (
    "a topic is dot-separated words of letters, digits, '_' and '-' (e.g. "
    f"'invoice.received'), at most {TOPIC_MAX} characters"
)


def topic_problem(topic: object) -> str | None:
    """Why ``topic`` is no topic name (``TOPIC_RULE``), or None."""
    if not isinstance(topic, str):
        return f"a topic is text, not {type(topic).__name__}"
    if len(topic) > TOPIC_MAX:
        return f"topic of {len(topic)} characters: {TOPIC_RULE}"
    if TOPIC.fullmatch(topic) is None:
        return f"topic {topic[:TOPIC_MAX]!r} is not valid: {TOPIC_RULE}"
    return None


def check_topic(topic: object) -> str:
    """``topic`` if it is a valid topic name, else ``InvalidInput`` stating the rule."""
    problem = topic_problem(topic)
    if problem is not None:
        raise InvalidInput(problem)
    assert isinstance(topic, str)
    return topic


def event_key(workflow: str, source: str | None, event_id: str) -> str:
    """The idempotency key of the run of ``workflow`` that event ``(source, event_id)``
    starts: ``event:`` and a JSON array of the three, so no two events share one (a source
    or id holding ``:`` cannot make another's key) and it reads plainly in a run listing."""
    parts = [workflow, source, event_id]
    return "event:" + json.dumps(parts, ensure_ascii=False, separators=(",", ":"))


class Triggers:
    """The topics of one app and, for each, the workflows it starts (in declaration order)."""

    def __init__(self) -> None:
        self._by_topic: dict[str, list[str]] = {}

    def check(self, topics: str | Iterable[str], workflow: str) -> list[str]:
        """The topics of ``on=topics`` (a name or several) as a list; ``ConfigError`` for a
        name that is no topic (``TOPIC_RULE``), or none at all."""
        names = [topics] if isinstance(topics, str) else list(topics)
        if not names:
            raise ConfigError(f"workflow {workflow!r}: on= names no topic")
        for topic in names:
            problem = topic_problem(topic)
            if problem is not None:
                raise ConfigError(f"workflow {workflow!r}: on={topic!r}: {problem}")
        return names

    def add(self, topics: str | Iterable[str], workflow: str) -> None:
        """Subscribe ``workflow`` to ``topics`` (``check``'s). Declaring it again changes
        nothing."""
        for topic in self.check(topics, workflow):
            subscribed = self._by_topic.setdefault(topic, [])
            if workflow not in subscribed:
                subscribed.append(workflow)

    def workflows(self, topic: str) -> list[str]:
        """The workflows ``topic`` starts, in declaration order (none: an empty list)."""
        return list(self._by_topic.get(topic, ()))

    @property
    def topics(self) -> list[str]:
        return sorted(self._by_topic)


@dataclass(frozen=True, slots=True)
class Triggered:
    """One run an event started (or found, by its key: ``created`` False)."""

    workflow: str
    run: RunHandle

    @property
    def run_id(self) -> str:
        return self.run.id

    @property
    def created(self) -> bool:
        return self.run.created


@dataclass(frozen=True, slots=True)
class Published:
    """What ``App.publish`` did: the event (``id``, ``type`` = its topic, ``source``) and the
    run of each workflow subscribed to its topic, in declaration order."""

    id: str
    type: str
    source: str | None
    runs: tuple[Triggered, ...]

    @property
    def topic(self) -> str:
        return self.type


__all__ = [
    "TOPIC_MAX",
    "TOPIC_RULE",
    "Published",
    "Triggered",
    "Triggers",
    "check_topic",
    "event_key",
    "topic_problem",
]
