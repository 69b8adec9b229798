"""Approvals a policy asks for: a ``forbid`` policy annotated ``@approval("ROLE")``.

Such a policy forbids an effect *until a person approves it*. When every policy that denied a
request carries ``@approval`` (and they agree on who approves), the engine's denial is
``ApprovalRequired`` (a ``PolicyDenied``) carrying this ``Approval``: the gate's ``approve``
interceptor (``aiosys.humans.approval``) parks the effect as a human task for the role, and
once the task is approved asks Cedar again with ``context.approval`` (the task, who approved,
the role they approved as, when), which the policy's ``unless`` lets through::

    @id("high-risk-needs-approval") @approval("reviewer") @sla("1d") @escalate("compliance")
    forbid(principal, action == Action::"call_model", resource)
    when { resource.risk_level == "high" }
    unless { context has approval && ["reviewer", "compliance"].contains(context.approval.role) };

Annotations (Cedar annotation values are strings), checked when the file is loaded:

- ``@approval("ROLE")``: the role whose holder approves (only on a ``forbid`` policy);
- ``@sla("1d")``: how long each role has (``aiosys.durations``: ``90m``, ``2d``...); none: no
  limit;
- ``@escalate("ROLE, ROLE")``: the roles the task passes to, in order, as each SLA passes.

A denial by policies of which one carries no ``@approval`` (or by none: nothing permits) is a
plain ``PolicyDenied``: no approval lifts it. Policies that disagree on the role or the
escalation chain are a plain ``PolicyDenied`` too, naming them (one effect waits for one
approval); when they agree, the shortest SLA holds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..durations import parse_duration

#: The annotations this module reads.
APPROVAL, SLA, ESCALATE = "approval", "sla", "escalate"


@dataclass(frozen=True, slots=True)
class Approval:
    """Who must approve an effect a policy forbids until then: ``role``, and how the task
    escalates: ``sla`` seconds per role (None: no limit), ``escalate_to`` the next roles.
    ``policies``: the ids of the policies that ask it (filled in for a denial)."""

    role: str
    sla: float | None = None
    escalate_to: tuple[str, ...] = ()
    policies: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "sla": self.sla,
            "escalate_to": list(self.escalate_to),
            "policies": list(self.policies),
        }


def approval_of_annotations(annotations: Mapping[str, str], effect: str) -> Approval | None:
    """The ``Approval`` a policy's annotations ask (None: no ``@approval``). ``ValueError``
    with the reason for a malformed one: an empty role, ``@approval`` on a ``permit``,
    ``@sla`` or ``@escalate`` without ``@approval``, an SLA that is not a duration."""
    role = annotations.get(APPROVAL)
    if role is None:
        stray = [f"@{a}" for a in (SLA, ESCALATE) if a in annotations]
        if stray:
            raise ValueError(f'{" and ".join(stray)} without @approval("ROLE")')
        return None
    if effect != "forbid":
        raise ValueError(
            "@approval applies to a forbid policy (it forbids until a person approves), "
            f"not to a {effect}"
        )
    role = role.strip()
    if not _is_role(role):
        raise ValueError(f'@approval names a role: one word such as "partner", not {role!r}')
    sla = None
    if SLA in annotations:
        try:
            sla = parse_duration(annotations[SLA])
        except ValueError as exc:
            raise ValueError(f"@sla: {exc}") from None
        if not math.isfinite(sla) or sla <= 0:
            raise ValueError(f"@sla must be more than 0 seconds, not {annotations[SLA]!r}")
    chain: tuple[str, ...] = ()
    if ESCALATE in annotations:
        chain = tuple(r.strip() for r in annotations[ESCALATE].split(","))
        bad = [r for r in chain if not _is_role(r)]
        if bad or not chain:
            raise ValueError(
                f'@escalate names roles separated by commas ("senior, partner"), not '
                f"{annotations[ESCALATE]!r}"
            )
    return Approval(role, sla, chain)


def _is_role(text: str) -> bool:
    return bool(text) and not any(c.isspace() or c == "," for c in text) and text.isprintable()


def approval_needed(
    asked: Iterable[tuple[str, Approval | None]],
) -> tuple[Approval | None, str]:
    """The approval that lifts a denial by the policies ``asked`` (``(id, its Approval or
    None)``, the deciding ones): ``(approval, "")`` when every one carries one and they
    agree; else ``(None, why)`` with why no approval lifts it ("" when none was asked)."""
    found = list(asked)
    if not found or any(a is None for _, a in found):
        return None, ""
    named = [(pid, a) for pid, a in found if a is not None]
    specs = [a for _, a in named]
    ids = tuple(pid for pid, _ in named)
    first = specs[0]
    if any((a.role, a.escalate_to) != (first.role, first.escalate_to) for a in specs[1:]):
        chains = "; ".join(f"{pid}: {' -> '.join((a.role, *a.escalate_to))}" for pid, a in named)
        return None, (
            f"its policies ask approvals of different roles ({chains}): one effect waits "
            "for one approval"
        )
    slas = [a.sla for a in specs if a.sla is not None]
    return Approval(first.role, min(slas) if slas else None, first.escalate_to, ids), ""


__all__ = ["APPROVAL", "ESCALATE", "SLA", "Approval", "approval_needed", "approval_of_annotations"]
