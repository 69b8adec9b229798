"""Every error class the Python API raises becomes the problem of its status (RFC 9457),
through the real application's error handling: a route added for the test raises each one."""

from __future__ import annotations

import sqlite3

import httpx
import psycopg
import pytest

import aiosys
from aiosys import errors
from aiosys.api import create_api

CASES = [
    (errors.AuthenticationFailed("unknown API key"), 401, "authentication-failed"),
    (errors.PermissionDenied("may not"), 403, "permission-denied"),
    (
        errors.PolicyDenied("forbidden", policies=("p1", "p2"), policy_version="v9"),
        403,
        "policy-denied",
    ),
    (errors.RunNotFound("no run"), 404, "run-not-found"),
    (errors.TaskNotFound("no task"), 404, "task-not-found"),
    (errors.UnknownWorkflow("no workflow"), 404, "unknown-workflow"),
    (errors.ModelNotFound("no model"), 404, "model-not-found"),
    (errors.IdempotencyConflict("used", run_id="r1"), 409, "idempotency-conflict"),
    (errors.InvalidRunState("ended"), 409, "invalid-run-state"),
    (errors.InvalidTaskState("decided"), 409, "invalid-task-state"),
    (errors.InvalidInput("bad"), 422, "invalid-input"),
    (errors.UnknownQueue("no queue"), 422, "unknown-queue"),
    (errors.NotSerializable("no json"), 422, "not-serializable"),
    (errors.StoreRefused("refused"), 422, "store-refused"),
    (errors.BudgetExceeded("spent"), 429, "budget-exceeded"),
    (errors.ProviderUnavailable("slow down", retry_after=2.2), 429, "provider-unavailable"),
    (errors.ProviderUnavailable("down"), 503, "provider-unavailable"),
    (errors.NoRouteAvailable("none"), 503, "no-route-available"),
    (errors.StoreUnavailable("cannot connect to db.internal:5432"), 503, "store-unavailable"),
    (psycopg.OperationalError("server closed the connection"), 503, "store-unavailable"),
    (sqlite3.OperationalError("disk I/O error"), 503, "store-unavailable"),
    (errors.ConfigError("no audit key"), 500, "config-error"),
    (RuntimeError("a bug"), 500, "internal"),
]


@pytest.fixture
def client() -> httpx.AsyncClient:
    api = create_api(aiosys.App("sqlite:///never-opened.db", preload_models=False))
    raised: dict[int, BaseException] = {n: exc for n, (exc, _, _) in enumerate(CASES)}

    async def boom(n: int) -> None:
        raise raised[n]

    api.add_api_route("/boom/{n}", boom)
    return httpx.AsyncClient(transport=httpx.ASGITransport(api), base_url="http://t")


@pytest.mark.parametrize(("n", "status", "kind"), [(n, s, k) for n, (_, s, k) in enumerate(CASES)])
async def test_each_error_class_is_a_problem_of_its_status(client, n, status, kind):
    async with client:
        response = await client.get(f"/boom/{n}")
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == f"urn:aiosys:problem:{kind}"
    assert (body["status"], body["instance"]) == (status, f"/boom/{n}")
    assert body["title"]
    exc = CASES[n][0]
    if status == 503 and kind == "store-unavailable":  # hosts and tables are not answered
        assert body["detail"] == "the store cannot be reached now; try again later"
    elif kind == "internal":
        assert "a bug" not in body["detail"]
    else:
        assert body["detail"] == str(exc)
    if isinstance(exc, errors.PolicyDenied):
        assert (body["policies"], body["policy_version"]) == (["p1", "p2"], "v9")
    if isinstance(exc, errors.IdempotencyConflict):
        assert body["run_id"] == "r1"
    if status == 401:
        assert response.headers["www-authenticate"] == 'Bearer realm="aiosys"'
    if status == 429 and isinstance(exc, errors.ProviderUnavailable):
        assert response.headers["retry-after"] == "3"
