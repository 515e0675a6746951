"""A loopback stand-in for the Opsgenie Alert API (``/v2/alerts``), written from Opsgenie's docs.

    async with OpsgenieStandin() as og:
        # api_url = og.base_url; header Authorization: GenieKey <og.api_key>
        [alert] = og.alerts

What it honours (docs.opsgenie.com: "Alert API", "Response", "Rate Limiting"):

* ``Authorization: GenieKey <key>`` of a known, enabled API integration; otherwise 401
  ``{"message": "Could not authenticate", ...}``.
* ``POST /v2/alerts`` (create), ``POST /v2/alerts/{identifier}/close`` and ``/acknowledge``, ``PUT
  /v2/alerts/{identifier}/message``, ``/description`` and ``/priority``, with ``identifierType`` ``id``
  (default), ``tiny`` or ``alias``; ``GET /v2/alerts/requests/{requestId}`` (what became of a request) and
  ``GET /v2/alerts/{identifier}``.
* Field limits: message 1-130 characters, alias 512, description 15,000, at most 20 tags of 50, details
  8,000 characters in all, entity 512, source 100, user 100, note 25,000, priority P1-P5, responders of type
  team/user/escalation/schedule. A body that breaks them: 422 ``{"message": "Request body is not
  processable. Please check the errors.", "errors": {field: reason}, ...}``; one that is not JSON: 400.
* Valid requests are answered 202 ``{"result": "Request will be processed", "took", "requestId"}`` and then
  processed (here at once): a create for an alias with an open alert only adds an occurrence (``count``,
  the message and description stay); close, acknowledge and updates of an unknown alert fail in the request
  status ("Alert does not exist") while the caller got its 202.
* Rate limit (``enforce_rate``): 429 with ``X-RateLimit-State: THROTTLED``, ``X-RateLimit-Reason`` and
  ``X-RateLimit-Period-In-Sec``.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.standins.httpapi import HttpApiStandin

API_KEY = "eb243592-faa2-4ba2-a551-1afdf565c889"
LIMITS = {"message": 130, "alias": 512, "description": 15_000, "entity": 512, "source": 100, "user": 100,
          "note": 25_000}
PRIORITIES = ("P1", "P2", "P3", "P4", "P5")
RESPONDER_TYPES = ("team", "user", "escalation", "schedule")


@dataclass
class OpsgenieAlert:
    """An alert as Opsgenie keeps it."""

    id: str
    tiny_id: str
    alias: str
    message: str
    description: str
    priority: str
    tags: list[str]
    details: dict[str, str]
    source: str
    entity: str
    responders: list[dict[str, Any]]
    status: str = "open"  # open | closed
    acknowledged: bool = False
    owner: str = ""
    count: int = 1
    notes: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    """Every action applied, in order (``create``, ``occurrence``, ``update-message``, ``acknowledge``, ``close``)."""


class OpsgenieStandin(HttpApiStandin):
    """The Alert API of one Opsgenie account, with its API integrations' keys."""

    def __init__(self, api_keys: tuple[str, ...] = (API_KEY,)) -> None:
        super().__init__()
        self.api_keys = set(api_keys)
        self.api_key = api_keys[0]
        self.disabled: set[str] = set()
        self.alerts: list[OpsgenieAlert] = []
        self.request_status: dict[str, dict[str, Any]] = {}
        self.period_in_sec = 60

    def routes(self, app: web.Application) -> None:
        """The Alert API routes."""
        app.router.add_post("/v2/alerts", self._create)
        app.router.add_get("/v2/alerts/requests/{request_id}", self._request_status)
        app.router.add_get("/v2/alerts/{identifier}", self._get)
        app.router.add_post("/v2/alerts/{identifier}/{action:close|acknowledge}", self._action)
        app.router.add_put("/v2/alerts/{identifier}/{field:message|description|priority}", self._update)

    def disable(self, key: str | None = None) -> None:
        """Disable the integration of ``key`` (default: the main key): its requests get 401 from now on."""
        self.disabled.add(key or self.api_key)

    def find(self, identifier: str, identifier_type: str = "id") -> OpsgenieAlert | None:
        """The alert ``identifier`` names (for an alias: the open one, else the most recent)."""
        if identifier_type == "alias":
            matching = [a for a in self.alerts if a.alias == identifier]
            open_ = [a for a in matching if a.status == "open"]
            return (open_ or matching or [None])[-1]
        attr = "tiny_id" if identifier_type == "tiny" else "id"
        return next((a for a in self.alerts if getattr(a, attr) == identifier), None)

    # -- answers ------------------------------------------------------------------------------------

    @staticmethod
    def _answer(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
        request_id = str(uuid.uuid4())
        return web.json_response({**body, "took": 0.01, "requestId": request_id}, status=status,
                                 headers={"X-Request-ID": request_id, "X-RateLimit-State": "OK", **(headers or {})})

    def error_response(self, status: int) -> web.Response:
        """Opsgenie failing on its side."""
        return self._answer(status, {"message": "Internal Server Error"})

    def throttled(self, wait: float, key: str) -> web.Response:
        """Opsgenie's 429: the throttled window in ``X-RateLimit-Period-In-Sec``."""
        headers = {"X-RateLimit-State": "THROTTLED", "X-RateLimit-Reason": "INTEGRATION",
                   "X-RateLimit-Period-In-Sec": str(max(1, math.ceil(wait)) if wait else self.period_in_sec)}
        return self._answer(429, {"message": "You are making too many requests! To avoid errors, we recommend you "
                                             "limit requests."}, headers)

    def _accepted(self, method: str, params: dict[str, Any], key: str, outcome: dict[str, Any]) -> web.Response:
        response = self._answer(202, {"result": "Request will be processed"})
        self.request_status[str(response.headers["X-Request-ID"])] = {"action": method, **outcome}
        self.record(method, params, 202, None if outcome.get("isSuccess") else outcome.get("status"), key)
        return response

    # -- request plumbing ---------------------------------------------------------------------------

    async def _begin(self, request: web.Request, method: str) -> tuple[dict[str, Any], str, web.Response | None]:
        header = request.headers.get("Authorization", "")
        key = header.removeprefix("GenieKey ").strip() if header.startswith("GenieKey ") else ""
        body, params = await self.read_json(request)
        intercepted = await self.intercept(method, key or "-", params)
        if intercepted is not None:
            return params, key, intercepted
        if key not in self.api_keys or key in self.disabled:
            self.record(method, params, 401, "could not authenticate", key)
            return params, key, self._answer(401, {"message": "Could not authenticate"})
        if body is None or not isinstance(body, dict):
            self.record(method, params, 400, "invalid json", key)
            return params, key, self._answer(400, {"message": "Invalid JSON body"})
        return params, key, None

    def _unprocessable(self, method: str, params: dict[str, Any], key: str, errors: dict[str, str]) -> web.Response:
        self.record(method, params, 422, "; ".join(f"{k}: {v}" for k, v in errors.items()), key)
        return self._answer(422, {"message": "Request body is not processable. Please check the errors.",
                                  "errors": errors})

    @staticmethod
    def field_errors(body: dict[str, Any]) -> dict[str, str]:
        """Limit violations of the fields in ``body`` (the create, close, acknowledge and update bodies)."""
        errors: dict[str, str] = {}
        for name, limit in LIMITS.items():
            value = body.get(name)
            if value is not None and (not isinstance(value, str) or len(value) > limit):
                errors[name] = f"{name.capitalize()} can not be longer than {limit} characters."
        if "priority" in body and body["priority"] not in PRIORITIES:
            errors["priority"] = "Priority should be one of [P1, P2, P3, P4, P5]."
        tags = body.get("tags", [])
        if not isinstance(tags, list) or len(tags) > 20 or any(not isinstance(t, str) or len(t) > 50 for t in tags):
            errors["tags"] = "At most 20 tags of at most 50 characters each."
        details = body.get("details", {})
        if not isinstance(details, dict) or sum(len(str(k)) + len(str(v)) for k, v in details.items()) > 8000:
            errors["details"] = "Details can not be longer than 8000 characters in total."
        responders = body.get("responders", [])
        if not isinstance(responders, list) or len(responders) > 50 or any(
            not isinstance(r, dict) or r.get("type") not in RESPONDER_TYPES
            or not (r.get("id") or r.get("name") or r.get("username")) for r in responders
        ):
            errors["responders"] = "Responders must have a type and an id, name or username."
        return errors

    # -- handlers -----------------------------------------------------------------------------------

    async def _create(self, request: web.Request) -> web.Response:
        params, key, early = await self._begin(request, "create")
        if early is not None:
            return early
        errors = self.field_errors(params)
        message = params.get("message")
        if not isinstance(message, str) or not message.strip():
            errors["message"] = "Message can not be empty."
        if errors:
            return self._unprocessable("create", params, key, errors)
        alias = str(params.get("alias") or "")
        existing = self.find(alias, "alias") if alias else None
        if existing is not None and existing.status == "open":
            existing.count += 1
            existing.log.append("occurrence")
            alert = existing
        else:
            n = len(self.alerts) + 1
            alert = OpsgenieAlert(
                id=str(uuid.uuid4()), tiny_id=str(n), alias=alias or str(uuid.uuid4()), message=str(message),
                description=str(params.get("description", "")), priority=str(params.get("priority", "P3")),
                tags=list(params.get("tags", [])), details=dict(params.get("details", {})),
                source=str(params.get("source", "")), entity=str(params.get("entity", "")),
                responders=list(params.get("responders", [])), log=["create"],
            )
            self.alerts.append(alert)
        return self._accepted("create", params, key, {"isSuccess": True, "status": "Created alert",
                                                      "alertId": alert.id, "alias": alert.alias})

    async def _action(self, request: web.Request) -> web.Response:
        action = request.match_info["action"]
        params, key, early = await self._begin(request, action)
        if early is not None:
            return early
        errors = self.field_errors(params)
        if errors:
            return self._unprocessable(action, params, key, errors)
        alert = self.find(request.match_info["identifier"], request.query.get("identifierType", "id"))
        if alert is None or alert.status != "open":
            return self._accepted(action, params, key, {"isSuccess": False, "status": "Alert does not exist"})
        if action == "close":
            alert.status = "closed"
        else:
            alert.acknowledged = True
            alert.owner = str(params.get("user", ""))
        if params.get("note"):
            alert.notes.append(str(params["note"]))
        alert.log.append(action)
        return self._accepted(action, params, key, {"isSuccess": True, "status": f"{action.capitalize()}d alert",
                                                    "alertId": alert.id, "alias": alert.alias})

    async def _update(self, request: web.Request) -> web.Response:
        name = request.match_info["field"]
        method = f"update-{name}"
        params, key, early = await self._begin(request, method)
        if early is not None:
            return early
        errors = self.field_errors(params)
        if not isinstance(params.get(name), str) or (name == "message" and not params[name].strip()):
            errors.setdefault(name, f"{name.capitalize()} can not be empty.")
        if errors:
            return self._unprocessable(method, params, key, errors)
        alert = self.find(request.match_info["identifier"], request.query.get("identifierType", "id"))
        if alert is None:
            return self._accepted(method, params, key, {"isSuccess": False, "status": "Alert does not exist"})
        setattr(alert, name, str(params[name]))
        alert.log.append(method)
        return self._accepted(method, params, key, {"isSuccess": True, "status": f"Updated {name}",
                                                    "alertId": alert.id, "alias": alert.alias})

    async def _request_status(self, request: web.Request) -> web.Response:
        _params, _key, early = await self._begin(request, "request-status")
        if early is not None:
            return early
        status = self.request_status.get(request.match_info["request_id"])
        if status is None:
            return self._answer(404, {"message": "Request not found."})
        return self._answer(200, {"data": {**status, "success": status.get("isSuccess", False)}})

    async def _get(self, request: web.Request) -> web.Response:
        _params, _key, early = await self._begin(request, "get")
        if early is not None:
            return early
        alert = self.find(request.match_info["identifier"], request.query.get("identifierType", "id"))
        if alert is None:
            return self._answer(404, {"message": "Alert does not exist"})
        return self._answer(200, {"data": {
            "id": alert.id, "tinyId": alert.tiny_id, "alias": alert.alias, "message": alert.message,
            "status": alert.status, "acknowledged": alert.acknowledged, "count": alert.count, "owner": alert.owner,
            "priority": alert.priority, "tags": alert.tags, "description": alert.description,
            "details": alert.details, "source": alert.source, "entity": alert.entity,
        }})
