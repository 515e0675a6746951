"""A loopback stand-in for a Microsoft Teams Workflows webhook ("When a Teams webhook request is received").

    async with TeamsStandin() as teams:
        url = teams.webhook_url          # .../workflows/<id>/triggers/manual/paths/invoke?api-version=...&sig=...
        [card] = teams.cards             # Adaptive Cards the workflow posted to the channel

What it honours (learn.microsoft.com: "Create and send messages" with Workflows, the Teams webhook trigger,
Adaptive Card schema and Teams' message size limit; Logic Apps / Power Automate request trigger answers):

* The URL names a workflow and carries its SAS signature (``sig``): an unknown workflow answers 404
  ``{"error": {"code": "WorkflowNotFound", ...}}``; a missing or wrong signature 401
  (``DirectApiAuthorizationRequired`` / ``DirectApiInvalidAuthorizationSignature``); a body that is not JSON
  400 (``InvalidRequestContent``).
* Otherwise the trigger answers **202 Accepted** at once and the workflow then runs: it posts each attachment
  of ``{"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
  "content": {"type": "AdaptiveCard", ...}}]}`` to the channel. A run fails, without the caller ever knowing,
  when the body is not such a message, when a card is not a valid Adaptive Card (``version`` up to 1.5,
  ``TextBlock.text``, ``FactSet.facts[].title/value`` strings, ``Action.OpenUrl.url`` http(s), known element
  types), or when the message is over Teams' 28 KB: see :attr:`TeamsStandin.failed_runs`.
* Throttling (``enforce_rate``): 429 with ``Retry-After`` and ``{"error": {"code": "WorkflowRequestsThrottled"}}``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.standins.httpapi import HttpApiStandin

WORKFLOW_ID = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
SIGNATURE = "Zx9_sEcReT-sIgNaTuRe_0123456789abcdefABCDEF"
CARD_TYPE = "application/vnd.microsoft.card.adaptive"
MAX_MESSAGE_BYTES = 28 * 1024
ELEMENTS = frozenset({"TextBlock", "FactSet", "Container", "ColumnSet", "Column", "Image", "RichTextBlock",
                      "ActionSet", "ImageSet", "Table"})
ACTIONS = frozenset({"Action.OpenUrl", "Action.Submit", "Action.ShowCard", "Action.ToggleVisibility",
                     "Action.Execute"})


@dataclass
class TeamsCard:
    """A card the workflow posted to the channel."""

    card: dict[str, Any]

    @property
    def texts(self) -> list[str]:
        """Every TextBlock text and fact, in order."""
        out: list[str] = []
        for element in self.card.get("body", []):
            if element.get("type") == "TextBlock":
                out.append(str(element.get("text", "")))
            elif element.get("type") == "FactSet":
                out.extend(f"{f.get('title')}: {f.get('value')}" for f in element.get("facts", []))
        return out

    @property
    def text(self) -> str:
        """All text of the card, one line per block."""
        return "\n".join(self.texts)

    @property
    def actions(self) -> list[dict[str, Any]]:
        """The card's actions."""
        return list(self.card.get("actions", []))


def card_errors(card: Any) -> list[str]:
    """Why Teams would not render ``card`` as an Adaptive Card (empty when it would)."""
    if not isinstance(card, dict) or card.get("type") != "AdaptiveCard":
        return ["content is not an AdaptiveCard"]
    errors = []
    version = str(card.get("version", ""))
    try:
        major, minor = (int(p) for p in version.split("."))
        if (major, minor) > (1, 5):
            errors.append(f"version {version} is not supported (at most 1.5)")
    except ValueError:
        errors.append(f"version {version!r} is invalid")
    for i, element in enumerate(card.get("body", [])):
        kind = element.get("type") if isinstance(element, dict) else None
        if kind not in ELEMENTS:
            errors.append(f"body[{i}]: unknown element type {kind!r}")
        elif kind == "TextBlock" and not isinstance(element.get("text"), str):
            errors.append(f"body[{i}]: TextBlock.text must be a string")
        elif kind == "FactSet":
            for j, fact in enumerate(element.get("facts", [])):
                if not isinstance(fact.get("title"), str) or not isinstance(fact.get("value"), str):
                    errors.append(f"body[{i}].facts[{j}]: title and value must be strings")
    for i, action in enumerate(card.get("actions", [])):
        kind = action.get("type") if isinstance(action, dict) else None
        if kind not in ACTIONS:
            errors.append(f"actions[{i}]: unknown action type {kind!r}")
        elif kind == "Action.OpenUrl" and not str(action.get("url", "")).startswith(("http://", "https://")):
            errors.append(f"actions[{i}]: Action.OpenUrl needs an http(s) url")
    return errors


class TeamsStandin(HttpApiStandin):
    """One Teams workflow started by a webhook request, posting cards to one channel."""

    def __init__(self, workflow_id: str = WORKFLOW_ID, signature: str = SIGNATURE) -> None:
        super().__init__()
        self.workflows = {workflow_id: signature}
        self.workflow_id = workflow_id
        self.signature = signature
        self.cards: list[TeamsCard] = []
        """Cards posted to the channel, in order."""
        self.failed_runs: list[str] = []
        """Why each failed workflow run failed (the caller had its 202)."""

    @property
    def webhook_url(self) -> str:
        """The workflow's URL, signature included."""
        return (f"{self.base_url}/workflows/{self.workflow_id}/triggers/manual/paths/invoke"
                f"?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={self.signature}")

    def delete_workflow(self) -> None:
        """Delete the workflow: its URL answers 404 from now on."""
        self.workflows.pop(self.workflow_id, None)

    def routes(self, app: web.Application) -> None:
        """The trigger's invoke path."""
        app.router.add_post("/workflows/{id}/triggers/manual/paths/invoke", self._invoke)

    @staticmethod
    def _error(status: int, code: str, message: str) -> web.Response:
        return web.json_response({"error": {"code": code, "message": message}}, status=status)

    def error_response(self, status: int) -> web.Response:
        """The service failing."""
        return self._error(status, "ServiceUnavailable" if status == 503 else "InternalServerError", "injected")

    def throttled(self, wait: float, key: str) -> web.Response:
        """Power Automate's 429 with ``Retry-After`` (whole seconds)."""
        response = self._error(429, "WorkflowRequestsThrottled", "The workflow's request rate is over its limit.")
        response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
        return response

    async def _invoke(self, request: web.Request) -> web.Response:
        workflow = request.match_info["id"]
        raw = await request.read()
        params = {"bytes": len(raw)}
        intercepted = await self.intercept("invoke", workflow, params)
        if intercepted is not None:
            return intercepted
        if workflow not in self.workflows:
            self.record("invoke", params, 404, "WorkflowNotFound", workflow)
            return self._error(404, "WorkflowNotFound", f"The workflow '{workflow}' could not be found.")
        sig = request.query.get("sig")
        if not sig:
            self.record("invoke", params, 401, "DirectApiAuthorizationRequired", workflow)
            return self._error(401, "DirectApiAuthorizationRequired", "The request must be authenticated.")
        if sig != self.workflows[workflow]:
            self.record("invoke", params, 401, "DirectApiInvalidAuthorizationSignature", workflow)
            return self._error(401, "DirectApiInvalidAuthorizationSignature", "The provided signature is invalid.")
        try:
            body = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            self.record("invoke", params, 400, "InvalidRequestContent", workflow)
            return self._error(400, "InvalidRequestContent", "The request content is not valid JSON.")
        self.record("invoke", {**params, "body": body}, 202, None, workflow)
        self._run(body, len(raw))
        return web.Response(status=202)

    def _run(self, body: Any, size: int) -> None:
        """What the workflow does after answering 202: post each card, or fail the run."""
        if size > MAX_MESSAGE_BYTES:
            self.failed_runs.append(f"MessageSizeTooLarge: {size} bytes (Teams takes at most {MAX_MESSAGE_BYTES})")
            return
        if not isinstance(body, dict) or body.get("type") != "message" or not body.get("attachments"):
            self.failed_runs.append("the body is not a message with attachments")
            return
        for attachment in body["attachments"]:
            if attachment.get("contentType") != CARD_TYPE:
                self.failed_runs.append(f"unsupported attachment {attachment.get('contentType')!r}")
                continue
            errors = card_errors(attachment.get("content"))
            if errors:
                self.failed_runs.append("invalid card: " + "; ".join(errors))
                continue
            self.cards.append(TeamsCard(attachment["content"]))
