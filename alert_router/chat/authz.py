"""Who may run which chat command: roles from ``chat.users``, ``chat.channels`` and ``chat.default_role``.

A user's role is the highest of: their own (``chat.users``, by Slack or Telegram user id), the role of the
channel or chat the command came from (``chat.channels``), and ``chat.default_role``. Each command has a
least role (:data:`~alert_router.chat.settings.COMMANDS`, overridden by ``chat.commands``). Anyone below it,
including people the config does not know, gets a polite refusal that says what they would need.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from alert_router.chat.settings import ChatSettings, Role

Platform = Literal["slack", "telegram"]


@dataclass(frozen=True, slots=True)
class Identity:
    """Who sent a command, as the platform says: user id, the channel/chat, and a display name."""

    platform: Platform
    user_id: str
    chat_id: str = ""
    display: str = ""

    @property
    def key(self) -> str:
        """``slack:U0123ABCD`` or ``telegram:4242``."""
        return f"{self.platform}:{self.user_id}"


@dataclass(frozen=True, slots=True)
class Principal:
    """An identity with its resolved role and the name recorded for it (``actor`` in the audit log)."""

    identity: Identity
    role: Role | None
    name: str

    @property
    def actor(self) -> str:
        """The configured name, else ``platform:user_id``."""
        return self.name


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether a principal may run a command; ``message`` is the polite refusal when not."""

    allowed: bool
    command: str
    role: Role | None
    needed: Role
    message: str = ""


class Authorizer:
    """Resolves identities to roles and decides, command by command."""

    def __init__(self, settings: ChatSettings) -> None:
        self.settings = settings
        self._users: dict[str, tuple[Role, str]] = {}
        for user in settings.users:
            if user.slack:
                self._users[f"slack:{user.slack}"] = (user.role, user.name)
            if user.telegram is not None:
                self._users[f"telegram:{user.telegram}"] = (user.role, user.name)
        self._channels: dict[str, Role] = {}
        for channel in settings.channels:
            if channel.slack:
                self._channels[f"slack:{channel.slack}"] = channel.role
            if channel.telegram is not None:
                self._channels[f"telegram:{channel.telegram}"] = channel.role

    def principal(self, identity: Identity) -> Principal:
        """Resolve ``identity``: its highest role (or ``None``) and its recorded name."""
        roles: list[Role] = []
        name = identity.key
        user = self._users.get(identity.key)
        if user is not None:
            roles.append(user[0])
            name = user[1] or name
        if identity.chat_id:
            channel = self._channels.get(f"{identity.platform}:{identity.chat_id}")
            if channel is not None:
                roles.append(channel)
        if self.settings.default_role is not None:
            roles.append(self.settings.default_role)
        role = max(roles, key=lambda r: r.rank) if roles else None
        return Principal(identity, role, name)

    def decide(self, principal: Principal, command: str) -> Decision:
        """Allow ``command`` when the principal's role is at least the command's least role."""
        needed = self.settings.least_role(command)
        role = principal.role
        if role is not None and role.rank >= needed.rank:
            return Decision(True, command, role, needed)
        ident = principal.identity
        if role is None:
            message = (
                f"Sorry, I can't take commands from you yet: your {ident.platform} user id ({ident.user_id}) is not "
                f"in alert-router's chat.users. Ask an alert-router admin to add you; `{command}` needs the "
                f"{needed.value} role."
            )
        else:
            message = (
                f"Sorry {principal.name}, `{command}` needs the {needed.value} role and you have {role.value}. "
                "Ask an alert-router admin if you need more."
            )
        return Decision(False, command, role, needed, message)
