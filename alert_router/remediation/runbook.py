"""The runbook file schema (``runbooks/*.yaml``)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationError, field_validator

from alert_router.configbase import ConfigModel
from alert_router.errors import MatcherError, Problem
from alert_router.matchers import Matcher, parse_matcher_list
from alert_router.yamlfile import YamlDocument


class Runbook(ConfigModel):
    """A remediation runbook: which alerts it answers and what it does (steps are validated by the engine)."""

    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9_]*[a-z0-9])?$")
    description: str = ""
    when: str = ""
    match: list[str] | str = Field(default_factory=list)
    target: dict[str, Any] = Field(default_factory=dict)
    guards: dict[str, Any] = Field(default_factory=dict)
    steps: list[dict[str, Any]] = Field(default_factory=list)
    on_failure: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("match")
    @classmethod
    def _valid_matchers(cls, value: list[str] | str) -> list[str] | str:
        try:
            parse_matcher_list(value)
        except MatcherError as exc:
            raise ValueError(str(exc)) from None
        return value

    @property
    def matchers(self) -> list[Matcher]:
        """The parsed ``match`` matchers."""
        return parse_matcher_list(self.match)


def load_runbook(doc: YamlDocument) -> tuple[Runbook | None, list[Problem]]:
    """Validate one runbook document."""
    if not isinstance(doc.data, dict):
        return None, [doc.lines.problem((), "a runbook file must be a mapping with name, match and steps")]
    try:
        return Runbook.model_validate(doc.data), []
    except ValidationError as exc:
        return None, [
            doc.lines.problem(err["loc"], f"{'.'.join(map(str, err['loc'])) or 'runbook'}: {err['msg']}")
            for err in exc.errors(include_url=False)
        ]
