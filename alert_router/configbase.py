"""Base class for configuration models: strict keys, secrets readable from ``<key>_file``."""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError


def _is_secret(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_is_secret(a) for a in typing.get_args(annotation))
    return False


class ConfigModel(BaseModel):
    """A configuration section.

    Unknown keys are errors (a typo must not silently disable a setting). Every field typed
    ``SecretStr`` may instead be given as ``<field>_file``, naming a file whose content (without the
    trailing newline) is the secret, as Kubernetes Secrets are mounted.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _secrets_from_files(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        for name, info in cls.model_fields.items():
            key = f"{name}_file"
            if key in data and _is_secret(info.annotation):
                data = dict(data)
                path = data.pop(key)
                if name in data:
                    raise ValueError(f"give either {name} or {key}, not both")
                try:
                    data[name] = Path(str(path)).read_text(encoding="utf-8").rstrip("\r\n")
                except OSError as exc:
                    raise _at(key, path, f"cannot read {path}: {exc.strerror or exc}") from None
        return data


def _at(key: str, value: Any, message: str) -> ValidationError:
    """An error located at ``key`` itself (``slack.token_file``), so ``check`` reports that key's own line."""
    error = PydanticCustomError("secret_file", "{reason}", {"reason": message})
    return ValidationError.from_exception_data("secret file", [InitErrorDetails(type=error, loc=(key,), input=value)])


def secret(value: SecretStr | None) -> str:
    """Return a secret's value, or ``""`` when unset."""
    return value.get_secret_value() if value is not None else ""
