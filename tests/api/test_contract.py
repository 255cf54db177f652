"""The API contract: schemathesis runs every operation of the served OpenAPI document against the server.

The app is served by uvicorn on loopback inside the test's own event loop (so it shares the test's database
connection), while schemathesis, which is synchronous, runs in a worker thread. It authenticates with an
admin key, follows the links it infers between operations (stateful phase), and runs every built-in check:
no server error, responses as documented (status, content type, schema, headers), schema-valid requests
accepted and schema-invalid ones refused.

Budget: `TRACKER_CONTRACT_EXAMPLES` examples per operation and `TRACKER_CONTRACT_STEPS` stateful steps (a
few in `make test`, more in `.ci/run`, which also turns on the coverage phase), with a fixed seed so a run
can be repeated.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import schemathesis
from babel.numbers import get_currency_precision
from schemathesis import Case, HookContext
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events, from_schema
from schemathesis.engine.recorder import CheckFailureInfo, ScenarioRecorder

from tests.conftest import FakeClock, Keys, offline_resolver
from tests.serving import served
from tracker.app import create_app
from tracker.domain.money import MAX_DIGITS
from tracker.services.pages import INT32_MAX
from tracker.settings import Settings

SEED = 20260302
EXAMPLES = int(os.environ.get("TRACKER_CONTRACT_EXAMPLES", "4"))
STATEFUL_STEPS = int(os.environ.get("TRACKER_CONTRACT_STEPS", "20"))
COVERAGE = os.environ.get("TRACKER_CONTRACT_COVERAGE", "").lower() in {"1", "true", "yes"}
"""The coverage phase (every boundary and every missing or wrong-typed value of every parameter: some
ten thousand requests) runs in CI, on PostgreSQL only: it is the production database and the stricter of
the two (column lengths, integer ranges), and the phase alone would take half of CI's time on both.
`make test`, and SQLite in CI, run the examples, fuzzing and stateful phases."""

HOURS = ("optimistic", "most_likely", "pessimistic")
PRECONDITIONS = ["412", "428"]
REJECTIONS = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]
"""Schemathesis's answers to invalid data, and 413: a generated body may be larger than the server takes."""
"""Answers to a schema-valid request that only the job's state decides, like 409: a stale If-Match (412)
and a change naming no version, neither in If-Match nor in the body (428: the schema cannot say "one of
the two")."""


def _within_precision(amount: str, currency: str) -> str:
    places = get_currency_precision(currency)
    whole, _, fraction = amount.partition(".")
    whole = whole[-(MAX_DIGITS - places) :]  # a currency with four decimals (CLF) holds fewer whole digits
    return f"{whole}.{fraction[:places]}" if places and fraction else whole


def _valid_calendar(calendar: dict[str, Any]) -> dict[str, Any] | None:
    if calendar.get("country"):
        return None  # holiday calendars and their time zones are a per-country table
    hours = calendar.get("opening_hours") or {}
    opening = {day: [["08:00", "18:00"]] for day in hours} or None
    return {**calendar, "subdivision": None, "opening_hours": opening}


def _valid_workflow(body: dict[str, Any]) -> None:
    currency = body.get("currency", "EUR")
    for index, stage in enumerate(body.get("stages", [])):
        stage["key"] = f"s{index}-{stage.get('key', '')}"[:63]
        stage.setdefault("labels", {})["en"] = stage.get("labels", {}).get("en") or "Repair"
        hours = stage.get("duration_hours", {})
        ordered = sorted((Decimal(hours[name]) for name in HOURS if name in hours), key=float)
        if len(ordered) == len(HOURS):
            ordered[-1] = max(ordered[-1], Decimal(1))
            stage["duration_hours"] = {name: str(value) for name, value in zip(HOURS, ordered, strict=True)}
        if "planned_cost" in stage:
            stage["planned_cost"] = _within_precision(stage["planned_cost"], currency)
    if isinstance(body.get("calendar"), dict):
        body["calendar"] = _valid_calendar(body["calendar"])


OWN_KEY: set[str] = set()
"""The id of the key the run authenticates with."""


@schemathesis.hook
def before_call(context: HookContext, case: Case[Any], kwargs: dict[str, Any]) -> None:
    """The run must not revoke the key it runs with (every request after that would only test 401):
    such a request, generated or taken from a listing by a stateful link, revokes no key instead."""
    parameters = case.path_parameters or {}
    if case.operation.label == "DELETE /keys/{key_id}" and str(parameters.get("key_id")) in OWN_KEY:
        parameters["key_id"] = INT32_MAX


@schemathesis.hook
def map_case(context: HookContext, case: Case[Any]) -> Case[Any]:
    """Keep schema-valid requests within the rules that join several fields, which JSON Schema cannot say:
    a stage's three durations in order, an English label, unique stage keys, an amount with no more
    decimals than its currency, one contact for an individual, a reason for a forced completion, a
    cursor the API gave out, an If-Match that agrees with the body's version, a key expiry in the future,
    a webhook URL whose host resolves, a promised day within ten years, an Idempotency-Key of its own
    (a key used before says "this is a retry": its first answer comes back, whatever became of it since).
    Invalid requests are left as generated."""
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return case
    if case.headers is not None and "Idempotency-Key" in case.headers:
        case.headers["Idempotency-Key"] = uuid.uuid4().hex
    operation = case.operation.label
    body: dict[str, Any] | None = case.body if isinstance(case.body, dict) else None
    if isinstance(case.query, dict):
        case.query.pop("cursor", None)
    if body is None:
        return case
    headers: Mapping[str, str] = case.headers or {}
    if_match = headers.get("If-Match")
    if if_match is not None and body.get("version") is not None:
        tag = if_match.strip().removeprefix("W/").strip('"')
        if tag.isascii() and tag.isdigit() and 1 <= int(tag) <= INT32_MAX:
            body["version"] = int(tag)  # the two must agree (else 400)
        else:
            del body["version"]
    if operation in {"POST /workflows", "PUT /workflows/{key}"}:
        _valid_workflow(body)
    if operation == "POST /accounts" and body.get("kind") == "individual":
        body["contacts"] = body.get("contacts", [])[:1]
    quote = body.get("quote")
    if isinstance(quote, dict) and {"amount", "currency"} <= quote.keys():
        quote["amount"] = _within_precision(quote["amount"], quote["currency"])
    if operation == "POST /jobs/{job_id}/complete" and body.get("force"):
        body.setdefault("reason", "Customer collected the car early")
    if operation in {"POST /webhooks", "PATCH /webhooks/{webhook_id}"} and "url" in body:
        # A host that resolves to public addresses (the tests' resolver knows this one): a rule of DNS.
        # Generated URLs are judged, and refused with 422, in the negative phases.
        body["url"] = "https://hooks.example.com/tracker"
    if isinstance(body.get("promised_on"), str):
        body["promised_on"] = date.today().isoformat()  # within ten years of today: a rule of the clock
    if operation == "POST /keys" and body.get("expires_at") is not None:
        body["expires_at"] = "2030-01-01T00:00:00Z"  # after the request: a rule of the clock, not the schema
    return case


@dataclass
class Findings:
    operations: set[str] = field(default_factory=set)
    cases: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    still_authenticated: bool = False


def _config(admin: dict[str, str], coverage: bool) -> SchemathesisConfig:
    return SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "headers": admin,
            "workers": 1,
            "generation": {"max-examples": EXAMPLES, "database": "none"},
            "phases": {"coverage": {"enabled": coverage}, "stateful": {"max-steps": STATEFUL_STEPS}},
            "operations": [
                # DELETE archives a workflow, which stays readable: running jobs and history refer to it.
                {
                    "include-path-regex": "^/workflows/\\{key\\}",
                    "include-method": "GET",
                    "checks": {"use_after_free": {"enabled": False}},
                }
            ],
            "checks": {
                "positive_data_acceptance": {
                    "expected-statuses": ["2xx", "401", "403", "404", "409", *PRECONDITIONS]
                },
                "negative_data_rejection": {"expected-statuses": REJECTIONS},
                "missing_required_header": {
                    "expected-statuses": ["400", "401", "403", "406", "415", "422", "428"]
                },
            },
        }
    )


def _describe(recorder: ScenarioRecorder, case_id: str, info: CheckFailureInfo) -> str:
    interaction = recorder.interactions.get(case_id)
    response = interaction.response if interaction is not None else None
    answer = "" if response is None else f"\n-> {response.status_code} {response.content[:600]!r}"
    failure = info.failure
    return f"{failure.operation}: {failure.title}\n{failure.message}\n{info.code_sample}{answer}"


def _run(base_url: str, admin: dict[str, str], coverage: bool) -> Findings:
    schema = schemathesis.openapi.from_url(f"{base_url}/schema/openapi.json", config=_config(admin, coverage))
    findings = Findings()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            label = event.recorder.label
            findings.operations.add(label)
            findings.cases[event.phase.value] += len(event.recorder.cases)
            for case_id, checks in event.recorder.checks.items():
                for check in checks:
                    if check.status == Status.FAILURE and check.failure_info is not None:
                        findings.failures.append(_describe(event.recorder, case_id, check.failure_info))
        elif isinstance(event, events.NonFatalError):
            findings.errors.append(f"{event.label}: {event.info.format()}")
        elif isinstance(event, events.FatalError):
            raise event.exception
    return findings


async def _serve(settings: Settings, clock: FakeClock, admin: dict[str, str], coverage: bool) -> Findings:
    # The public pages' per-client limit would answer the run's many requests from one address with 429.
    app = create_app(
        replace(settings, page_requests_per_minute=1_000_000), clock=clock, resolver=offline_resolver
    )
    async with served(app) as base_url:
        findings = await asyncio.to_thread(_run, base_url, admin, coverage)
        async with httpx.AsyncClient(base_url=base_url) as client:
            findings.still_authenticated = (await client.get("/keys", headers=admin)).status_code == 200
        return findings


async def test_every_operation_keeps_the_contract(
    client: httpx.AsyncClient,
    settings: Settings,
    clock: FakeClock,
    auth: Keys,
    database_url: str,
    capsys: Any,
) -> None:
    keys = (await client.get("/keys", headers=auth.admin)).json()
    OWN_KEY.clear()
    OWN_KEY.update(str(key["id"]) for key in keys if key["name"] == "test admin")
    findings = await _serve(settings, clock, auth.admin, COVERAGE and database_url.startswith("postgres"))

    with capsys.disabled():
        print(  # noqa: T201 - the run's figures, for the record
            f"\ncontract on {database_url.split(':')[0]}: {len(findings.operations)} operation scenarios, "
            f"{sum(findings.cases.values())} cases ({dict(findings.cases)})"
        )
    assert not findings.errors, "\n\n".join(findings.errors)
    assert not findings.failures, "\n\n".join(findings.failures)
    assert len(findings.operations) >= 40
    assert findings.still_authenticated, "the run revoked its own key: what came after tested only 401s"
