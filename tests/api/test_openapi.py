"""docs/openapi.yaml is true: a valid OpenAPI 3.1 document naming exactly the routes the service serves, whose
schemas the answers to real requests (successes and refusals, on every endpoint) validate against."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import jsonschema
import pytest
import requests
import yaml
from schemathesis.specs.openapi.definitions import OPENAPI_31

from alert_router.app import build_app
from alert_router.config import load
from tests.api.openapi_support import (
    CHECKS,
    RESPONSE_URL,
    SPEC,
    TELEGRAM_SECRET,
    Credentials,
    ThreadedService,
    load_schema,
    service_config,
)
from tests.chat.support import RECEIVERS, RULES, RUNBOOK, alert_payload, slash_body
from tests.helpers import wait_for, write_config

pytestmark = pytest.mark.timeout(300)


def test_the_spec_is_a_valid_openapi_3_1_document() -> None:
    doc = yaml.safe_load(SPEC.read_text())
    jsonschema.Draft202012Validator(OPENAPI_31).validate(doc)


def test_every_route_is_in_the_spec_and_every_operation_is_served(tmp_path: Path) -> None:
    app = build_app(load(write_config(tmp_path), {}))
    served = set()
    for route in app.router.routes():
        if route.method == "HEAD":  # aiohttp answers HEAD for every GET route by itself
            continue
        template = route.resource.canonical if route.resource is not None else ""
        served.add((route.method, re.sub(r"\{(\w+):[^}]+\}", r"{\1}", template)))
    documented = {(op.method.upper(), op.path) for op in (r.ok() for r in load_schema().get_all_operations())}
    assert served == documented, {"served, not documented": served - documented,
                                  "documented, not served": documented - served}


class Exchange:
    """Sends a request built from the spec's operation and checks the answer against the spec."""

    def __init__(self, svc: ThreadedService, session: requests.Session) -> None:
        self.svc = svc
        self.session = session
        self.schema = load_schema()

    def __call__(self, method: str, path: str, *, sign: bool = True, params: dict[str, Any] | None = None,
                 **case: Any) -> requests.Response:
        template = re.sub(r"/\d+(?=/|$)", "/{id}", path)
        operation = self.schema.find_operation_by_path(method.lower(), template)
        assert operation is not None, (method, template)
        path_parameters = {"id": int(path.split("/")[4])} if "{id}" in template else None
        built = operation.Case(path_parameters=path_parameters, query=params, **case)
        response = built.call(self.svc.url, session=self.session, auth=Credentials(sign), timeout=30)
        built.validate_response(response, checks=CHECKS)
        return response


def two_pending_runs_config(tmp: Path, telegram: Any) -> Path:
    return service_config(tmp, telegram, rules=RULES, runbooks={"restart.yaml": RUNBOOK}, receivers=RECEIVERS)


async def _wait_pending(svc: ThreadedService, count: int) -> list[Any]:
    async def pending() -> list[Any]:
        runs = await svc.runtime.store.runs(status="pending_approval")
        return runs if len(runs) >= count else []

    result: list[Any] = await wait_for(pending, timeout=20)
    return result


def test_answers_to_real_requests_match_the_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    with ThreadedService(tmp_path, two_pending_runs_config) as svc, requests.Session() as session:
        call = Exchange(svc, session)
        json_body = {"media_type": "application/json"}
        form = {"media_type": "application/x-www-form-urlencoded"}

        # Alertmanager's webhook: two alerts whose runbook waits for approval
        for fp, deployment in (("2bb1035c662c69e0", "model-api"), ("9cc1035c662c69e1", "model-b")):
            body = alert_payload(fp, labels={"deployment": deployment}, group_key=f"g-{deployment}")
            assert call("POST", "/webhook", body=body, **json_body).status_code == 200
        assert call("POST", "/webhook", body={"version": "3"}, **json_body).status_code == 400
        assert call("POST", "/webhook", sign=False, body=alert_payload(), **json_body).status_code == 401
        first, second = sorted(svc.run(_wait_pending(svc, 2)), key=lambda r: r.id)

        assert call("GET", "/healthz").status_code == 200
        assert call("GET", "/readyz").status_code == 200
        assert call("GET", "/metrics").status_code == 200
        assert call("GET", "/metrics", sign=False).status_code == 401

        # chat: a signed slash command, a button click, a Telegram message
        command = dict(parse_qsl(slash_body("status", user_id="UVIEWER").decode()))
        assert call("POST", "/slack/commands", body=command, **form).json()["text"].startswith("alert-router status")
        assert call("POST", "/slack/commands", sign=False, body=command,
                    headers={"X-Slack-Request-Timestamp": "1", "X-Slack-Signature": "v0=x"}, **form).status_code == 401
        click = {"type": "block_actions", "user": {"id": "UVIEWER"}, "response_url": RESPONSE_URL + "r",
                 "actions": [{"action_id": "alert_router.ack", "value": "ar1:ack:2bb1035c:0"}]}
        assert call("POST", "/slack/interactions", body={"payload": json.dumps(click)}, **form).status_code == 200
        assert call("POST", "/slack/interactions", body={"payload": "[1"}, **form).status_code == 400
        telegram = svc.telegram
        assert telegram is not None
        update = telegram.inject_message(-1002, "/status", telegram.user(101, "Vera", "vera"))
        assert call("POST", "/telegram/webhook", body=update, **json_body).status_code == 200
        assert call("POST", "/telegram/webhook", body={"update_id": "x"}, **json_body).status_code == 400
        assert call("POST", "/telegram/webhook", sign=False, body=update, **json_body,
                    headers={"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET + "x"}).status_code == 403

        # the remediation API
        assert len(call("GET", "/api/v1/runs").json()["runs"]) == 2
        assert call("GET", "/api/v1/runs", params={"status": "nonsense"}).status_code == 400
        assert call("GET", "/api/v1/runs", sign=False).status_code == 401
        assert call("GET", f"/api/v1/runs/{first.id}").json()["status"] == "pending_approval"
        assert call("GET", "/api/v1/runs/999999").status_code == 404
        assert call("POST", f"/api/v1/runs/{first.id}/approve", body={}, **json_body).status_code == 400  # no user
        assert call("POST", f"/api/v1/runs/{first.id}/approve", body={"user": "ops"}, **json_body).status_code == 200
        assert call("POST", f"/api/v1/runs/{first.id}/deny", body={"user": "ops"}, **json_body).status_code == 409
        assert call("POST", f"/api/v1/runs/{second.id}/deny", body={"user": "eve"}, **json_body).status_code == 403
        denied = call("POST", f"/api/v1/runs/{second.id}/deny", body={"user": "ops", "reason": "not now"}, **json_body)
        assert denied.json()["status"] == "denied"
        records = call("GET", "/api/v1/audit", params={"since": "1h", "limit": 50}).json()["records"]
        assert {"approval_granted", "approval_denied"} <= {r["event"] for r in records}
        assert call("GET", "/api/v1/audit", params={"limit": 0}).status_code == 400
        assert call("GET", "/api/v1/audit/verify").json()["ok"] is True
        svc.quiet()
