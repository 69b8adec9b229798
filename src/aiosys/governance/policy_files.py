"""Policies and their schema from files: load, validate, version, reload.

A policy directory holds ``schema.cedarschema`` (the Cedar schema: entity types, actions and
their context) and any number of ``*.cedar`` files. Loading parses every file, validates
every policy against the schema and builds one Cedar policy set; a file that does not parse
or does not validate is refused with ``PolicyFileError`` naming its file, line and reason
(Cedar's messages carry no position: the line is found by parsing growing prefixes of the
file, and a validation error's policy maps to the line it starts on).

Each policy's id is its ``@id("...")`` annotation, else ``file.cedar:LINE``; ids are unique
in the set. A ``forbid`` policy may ask for a human approval (``@approval``, ``@sla``,
``@escalate``: ``policy_approval``); a malformed one is refused like a policy that does not
parse. The set's ``version`` is a hash of the schema's and the files' names and text.

``PolicySource`` keeps the set in force: the last good one. It reloads when a file changes
(an mtime and size poll, at most every ``poll`` seconds, on a decision) or when asked
(``refresh``); a broken edit is logged and refused, and the last good set stays in force.
``aiosys policy reload`` validates the directory and then touches the schema file, so every
process polling it (workers on any host that share the directory) loads the set within its
poll interval.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .policy_approval import Approval, approval_needed, approval_of_annotations

if TYPE_CHECKING:
    import cedarpy  # imported when policies are loaded: it takes ~0.15 s

log = logging.getLogger("aiosys.policy")

SCHEMA_FILE = "schema.cedarschema"
POLICY_SUFFIX = ".cedar"
# Cedar's message for a text that stops early: a prefix of a good file says this.
_EARLY_END = "unexpected end of input"
_POSITIONAL = re.compile(r"^for policy `policy\d+`, ")


class PolicyFileError(ConfigError):
    """A policy or schema file was refused: ``file``, ``line`` (1-based; 0 when unknown)
    and ``reason`` (Cedar's message)."""

    def __init__(self, file: str, line: int, reason: str) -> None:
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {reason}")
        self.file = file
        self.line = line
        self.reason = reason


@dataclass(frozen=True, slots=True)
class PolicyInfo:
    """One policy of the set: its ``id``, the ``file`` and ``line`` it starts on, its text;
    ``approval``: the human approval that lifts its denial (``@approval``), if any."""

    id: str
    file: str
    line: int
    text: str
    effect: str  # permit or forbid
    approval: Approval | None = None


@dataclass(frozen=True, eq=False)
class PolicySet:
    """A loaded, validated policy set: the Cedar handles, the policies by id, the version."""

    directory: Path
    version: str
    cedar: cedarpy.PolicySet
    schema: cedarpy.Schema
    policies: dict[str, PolicyInfo] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.policies)

    def approval(self, ids: tuple[str, ...]) -> tuple[Approval | None, str]:
        """The human approval that lifts a denial by the policies ``ids``, or why none does
        (``policy_approval.approval_needed``)."""
        return approval_needed(
            (pid, info.approval if (info := self.policies.get(pid)) else None) for pid in ids
        )


def policies_dir(arg: str | Path | None) -> Path | None:
    """The policy directory in force: ``arg``, else ``AIOSYS_POLICIES_DIR`` (empty: none),
    else ``./policies`` when it is a directory; None when there is none."""
    if arg is not None:
        return Path(arg) if str(arg) else None
    env = os.environ.get("AIOSYS_POLICIES_DIR")
    if env is not None:
        return Path(env) if env else None
    default = Path("policies")
    return default if default.is_dir() else None


def load_policy_dir(directory: str | Path) -> PolicySet:
    """Load and validate ``directory`` (blocking file I/O and parsing: call it off the event
    loop). ``PolicyFileError`` for a missing schema, a file that does not parse or validate,
    or a duplicate policy id."""
    import cedarpy

    root = Path(directory)
    if not root.is_dir():
        raise ConfigError(f"policy directory {str(root)!r} does not exist")
    schema_path = root / SCHEMA_FILE
    if not schema_path.is_file():
        raise PolicyFileError(str(schema_path), 0, f"the policy schema {SCHEMA_FILE} is missing")
    schema_text = _read(schema_path)
    try:
        schema = cedarpy.Schema.from_str(schema_text)
    except ValueError as exc:
        line = _error_line(schema_text, str(exc), _parse_schema)
        raise PolicyFileError(str(schema_path), line, str(exc)) from None
    digest = hashlib.sha256(f"{SCHEMA_FILE}\0{schema_text}\0".encode())
    policies: dict[str, PolicyInfo] = {}
    ests: dict[str, Any] = {}
    for path in sorted(root.glob(f"*{POLICY_SUFFIX}")):
        text = _read(path)
        digest.update(f"{path.name}\0{text}\0".encode())
        for info, est in _load_file(path, text, schema):
            if info.id in policies:
                other = policies[info.id]
                raise PolicyFileError(
                    str(path),
                    info.line,
                    f"duplicate policy id {info.id!r} (also at {other.file}:{other.line})",
                )
            policies[info.id] = info
            ests[info.id] = est
    document = {"staticPolicies": ests, "templates": {}, "templateLinks": []}
    cedar = cedarpy.PolicySet.from_json_str(json.dumps(document))
    return PolicySet(root, digest.hexdigest()[:16], cedar, schema, policies)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise PolicyFileError(str(path), 0, f"cannot read: {reason}") from None


def _load_file(
    path: Path, text: str, schema: cedarpy.Schema
) -> list[tuple[PolicyInfo, dict[str, Any]]]:
    """Each policy of one file with its Cedar JSON form, validated against ``schema``."""
    import cedarpy

    try:
        parsed = json.loads(cedarpy.policies_to_json_str(text))
    except ValueError as exc:
        line = _error_line(text, str(exc), _parse_policies)
        raise PolicyFileError(str(path), line, str(exc)) from None
    if parsed.get("templates"):
        raise PolicyFileError(str(path), 0, "policy templates are not supported")
    statements = split_statements(text)
    static: dict[str, Any] = parsed.get("staticPolicies", {})
    if len(statements) != len(static):  # the splitter disagrees with Cedar: no line numbers
        statements = [(0, "")] * len(static)
    result = cedarpy.validate_policies(text, schema)
    if not result.validation_passed:
        first = result.errors[0]
        index = _index(first.policy_id)
        line = statements[index][0] if 0 <= index < len(statements) else 0
        reason = _POSITIONAL.sub("", first.error)  # Cedar's own ids mean nothing here
        if len(result.errors) > 1:
            reason += f" (and {len(result.errors) - 1} more error(s))"
        raise PolicyFileError(str(path), line, reason)
    out = []
    for i, (line, source) in enumerate(statements):
        est = static[f"policy{i}"]
        annotations = est.get("annotations") or {}
        pid = annotations.get("id") or f"{path.name}:{line}"
        effect = est.get("effect", "?")
        try:
            approval = approval_of_annotations(annotations, effect)
        except ValueError as exc:
            raise PolicyFileError(str(path), line, f"policy {pid!r}: {exc}") from None
        info = PolicyInfo(pid, str(path), line, source, effect, approval)
        out.append((info, est))
    return out


def _index(policy_id: str) -> int:
    return int(policy_id[6:]) if policy_id.startswith("policy") and policy_id[6:].isdigit() else -1


def _parse_policies(text: str) -> None:
    import cedarpy

    cedarpy.PolicySet.from_str(text)


def _parse_schema(text: str) -> None:
    import cedarpy

    cedarpy.Schema.from_str(text)


def _error_line(text: str, message: str, parse: Callable[[str], None]) -> int:
    """The line Cedar's ``message`` is about: the shortest prefix of whole lines that fails
    with the same message (a prefix cut inside a statement fails with "unexpected end of
    input" instead). 0 when no prefix does."""
    lines = text.splitlines(keepends=True)
    for n in range(1, len(lines) + 1):
        try:
            parse("".join(lines[:n]))
        except ValueError as exc:
            if str(exc) == message and message != _EARLY_END:
                return n
        # a prefix that parses, or fails otherwise, is not where the error is
    return len(lines) if message == _EARLY_END else 0


def split_statements(text: str) -> list[tuple[int, str]]:
    """The policies of a Cedar file as ``(line, text)``: ``line`` is where each starts
    (its first annotation), ``text`` runs to its ``;``. Strings and ``//`` comments are
    skipped, so a ``;`` inside them does not end a policy."""
    out: list[tuple[int, str]] = []
    i, n, line = 0, len(text), 1
    start: int | None = None
    start_line = 0
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
        elif c == "/" and text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
            continue
        elif c.isspace():
            pass
        else:
            if start is None:
                start, start_line = i, line
            if c == '"':
                i += 1
                while i < n and text[i] != '"':
                    if text[i] == "\\":
                        i += 1
                    elif text[i] == "\n":
                        line += 1
                    i += 1
            elif c == ";":
                out.append((start_line, text[start : i + 1]))
                start = None
        i += 1
    return out


Stamp = tuple[tuple[str, int, int], ...]


def _stamp(directory: Path) -> Stamp:
    """What changes when a policy file is edited, added, removed or touched."""
    found = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return ()
    for entry in entries:
        if entry.name == SCHEMA_FILE or entry.name.endswith(POLICY_SUFFIX):
            try:
                st = entry.stat()
            except OSError:
                continue
            found.append((entry.name, st.st_mtime_ns, st.st_size))
    return tuple(sorted(found))


class PolicySource:
    """The policy set in force for one directory: the last good set, reloaded on change.

    ``load()`` reads the directory once (a broken set raises: there is no good one yet).
    ``poll()`` is cheap (a clock read) and is called on every decision: at most every
    ``poll_interval`` seconds it looks at the files and loads an edit at once. ``refresh()``
    checks now. A set that fails to load leaves the current one in force; ``last_error``
    says why (and ``on_refused`` listeners hear of it), and ``on_change`` listeners hear of
    every new version."""

    def __init__(
        self,
        directory: str | Path,
        *,
        poll_interval: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = Path(directory)
        self.poll_interval = poll_interval
        self.clock = clock
        self.last_error: PolicyFileError | ConfigError | None = None
        self._current: PolicySet | None = None
        self._stamp: Stamp = ()
        self._next_check = 0.0
        self.on_change: list[Callable[[PolicySet], None]] = []
        # Told of a reload refused while a set stays in force: the error, the version kept.
        self.on_refused: list[Callable[[ConfigError, str], None]] = []

    @property
    def current(self) -> PolicySet:
        if self._current is None:
            raise ConfigError(f"the policies of {str(self.directory)!r} are not loaded")
        return self._current

    def load(self) -> PolicySet:
        """Load the directory now (blocking); raises if it is broken and nothing is loaded,
        else keeps the set in force and records ``last_error``."""
        self._apply(*self._read())
        return self.current

    def reload_if_changed(self) -> bool:
        """Reload (blocking) when a file changed since the last load; True if the version
        in force changed."""
        found = self._read_if_changed()
        return False if found is None else self._apply(*found)

    async def refresh(self) -> bool:
        """Check the files now: read and validate them off the event loop, and put a new
        set in force on it (the decision cache is the loop's alone); True if the version
        in force changed."""
        found = await asyncio.to_thread(self._read_if_changed)
        return False if found is None else self._apply(*found)

    def _read_if_changed(self) -> tuple[Stamp, PolicySet | ConfigError] | None:
        stamp = _stamp(self.directory)
        return None if stamp == self._stamp else self._read(stamp)

    def _read(self, stamp: Stamp | None = None) -> tuple[Stamp, PolicySet | ConfigError]:
        stamp = _stamp(self.directory) if stamp is None else stamp
        try:
            return stamp, load_policy_dir(self.directory)
        except ConfigError as exc:
            return stamp, exc

    def _apply(self, stamp: Stamp, outcome: PolicySet | ConfigError) -> bool:
        self._stamp = stamp  # a broken set is not read again until a file changes
        if isinstance(outcome, ConfigError):
            self.last_error = outcome
            if self._current is None:
                raise outcome
            log.warning(
                "policy reload refused, version %s stays in force: %s",
                self._current.version,
                outcome,
            )
            for refused in list(self.on_refused):
                refused(outcome, self._current.version)
            return False
        self.last_error = None
        changed = self._current is None or outcome.version != self._current.version
        self._current = outcome
        if changed:
            log.info(
                "policies %s: version %s, %d policies",
                self.directory,
                outcome.version,
                len(outcome),
            )
            for listener in list(self.on_change):
                listener(outcome)
        return changed

    def poll(self) -> None:
        """Look at the files when a check is due (hot path: a clock read; when due, a stat
        of the directory, ~15 µs), and put an edited set in force before returning, so the
        decision that finds the edit is made under it (loading it blocks for a few ms, once
        per edit): a set replaced in the background would still answer the decisions made
        meanwhile, and the first one of a worker that made none for a while."""
        now = self.clock()
        if now < self._next_check:
            return
        self._next_check = now + self.poll_interval
        self.reload_if_changed()
