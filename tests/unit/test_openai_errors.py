"""The gateway's errors (``aiosys.api.openai_errors``) never tell a client where a model's
server or the store runs, whatever the error class: a route on the gateway's route class
raises each one with the addresses its real counterpart carries (an endpoint, a host and
port, a socket address, a database URL); so does a /v1 route answering a problem."""

from __future__ import annotations

import httpx
import psycopg
import pytest
from fastapi import APIRouter, FastAPI

import aiosys
from aiosys import errors
from aiosys.api import create_api
from aiosys.api.openai_errors import OpenAIRoute
from aiosys.redact import withhold_addresses

WHERE = "chat@1 at http://gpu-1.internal:8000/v1"
CONNECT = "Cannot connect to host gpu-1.internal:8000 ssl:default [('10.0.0.5', 8000)]"
CASES = [
    (errors.ProviderUnavailable(f"{WHERE} is unreachable: {CONNECT}"), 503, "chat@1 is"),
    (errors.ProviderUnavailable(f"{WHERE} is rate limited", retry_after=3), 503, "chat@1"),
    (errors.ProviderRejected(f"{WHERE} rejected the request (HTTP 400): too long"), 400, "too"),
    (errors.DeploymentUnusable(f"{WHERE} refused to serve (HTTP 401)", status=401), 400, "401"),
    (errors.NoRouteAvailable(f"no model could serve 'x': chat@1: failed: {WHERE} failed"), 502, ""),
    (
        errors.InvalidModelOutput("chat@1: malformed response from http://[fd00::5]:80/v1: x"),
        502,
        "",
    ),
    (errors.ConfigError("chat@1: endpoint http://gpu-1.internal:8000/v1 has no key"), 500, ""),
    (errors.StoreUnavailable("cannot reach postgresql://aiosys@db.internal:5432/prod"), 503, ""),
    (psycopg.OperationalError('connection to server at "10.0.0.9", port 5432 failed'), 503, ""),
    (RuntimeError("a bug at http://gpu-1.internal:8000"), 500, ""),
]
ADDRESSES = ("gpu-1", ".internal", ":8000", "10.0.0", "fd00", "://", ":5432", "Traceback")


def client(api: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(api), base_url="http://t")


@pytest.mark.parametrize(("n", "status", "kept"), [(n, s, k) for n, (_, s, k) in enumerate(CASES)])
async def test_no_gateway_error_names_an_address(n, status, kept):
    api, router = FastAPI(), APIRouter(route_class=OpenAIRoute)

    @router.get("/v1/boom")
    async def boom() -> None:
        raise CASES[n][0]

    api.include_router(router)
    async with client(api) as http:
        response = await http.get("/v1/boom")
    assert response.status_code == status, response.text
    message = response.json()["error"]["message"]
    for address in ADDRESSES:
        assert address not in message, (address, message)
    assert kept in message  # what failed is still said


@pytest.mark.parametrize("n", range(5))  # the model servers' errors, as /v1 problems
async def test_no_problem_of_a_model_server_names_an_address(n):
    api = create_api(aiosys.App("sqlite:///never-opened.db", preload_models=False))

    async def boom() -> None:
        raise CASES[n][0]

    api.add_api_route("/v1/boom", boom)
    async with client(api) as http:
        response = await http.get("/v1/boom")
    detail = response.json()["detail"]
    for address in ADDRESSES:
        assert address not in detail, (address, detail)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("chat@1 at http://gpu-1:8000/v1 failed (HTTP 500): x", "chat@1 failed (HTTP 500): x"),
        (
            "chat@1: malformed response from https://h.example/v1: y",
            "chat@1: malformed response: y",
        ),
        ("too large for http://10.1.2.3:8000/v1.", "too large for [url]."),
        ("x at http://[::1]:9/v1 failed: [::1]:9 refused", "x failed: [host] refused"),
        ("connect to ('10.0.0.5', 8000) or 10.0.0.6", "connect to [host] or [host]"),
        # Names of models and deployments, times and versions are not addresses.
        ("llama3:8b, phi-3.5:3.8b, chat@1: failed at 12:30 (v1.2.3)", None),
    ],
)
def test_addresses_are_withheld_and_nothing_else(text, said):
    assert withhold_addresses(text) == (text if said is None else said)
