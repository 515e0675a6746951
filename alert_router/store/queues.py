"""The SQL of the two work queues (inbox and outbox), written once for SQLite and PostgreSQL.

Statements are written with PostgreSQL's numbered placeholders (``$1``); :func:`sqlite` turns them
into SQLite's (``?1``). What really differs between the two stays a parameter: the row locks of a
claim (``FOR UPDATE SKIP LOCKED``, which several PostgreSQL replicas need and SQLite's single writer
does not), and how many rows go in at once (a multi-row ``VALUES`` on SQLite, ``unnest`` of arrays on
PostgreSQL).

**Claims cost the same whatever the backlog.** A claim walks an index in the order it hands work
out (most urgent priority first, then oldest) and stops at ``limit`` rows: the inbox by
``(priority, id)``, the outbox by ``(kind, priority, id)``, both indexes holding pending rows only.
Nothing is sorted, and finished rows are never read (ordering by ``priority, id`` also keeps
PostgreSQL from walking the primary key through them, which it prefers for a plain ``ORDER BY id``).
The rows a claim steps over are those it may not take yet: claimed by someone (in flight), waiting for
a retry (``not_before``), or queued behind an earlier item of their own group, which must wait (order
within a group and destination is kept). The tests pin the plans (``EXPLAIN``) on both databases;
``bench/claims.py`` measures a claim at 1,000 and at 100,000 pending items.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import pydantic_core

from alert_router import priority
from alert_router.store.base import FailedInbox, NewOutboxItem, OutboxItem

SKIP_LOCKED = " FOR UPDATE SKIP LOCKED"
"""The lock clause of a PostgreSQL claim; SQLite claims have none (one writer)."""

_PLACEHOLDER = re.compile(r"\$(\d+)")


def sqlite(sql: str) -> str:
    """A statement written with ``$n`` placeholders, for SQLite (``?n``)."""
    return _PLACEHOLDER.sub(r"?\1", sql)


# -- inbox --------------------------------------------------------------------------------------

INBOX_COLUMNS = "id, received_at, body, group_key, attempts"


def claim_inbox_sql(lock: str = "") -> str:
    """Claim pending bodies: ``$1`` now, ``$2`` limit, ``$3`` owner, ``$4`` lease until.

    Returns :data:`INBOX_COLUMNS` of the claimed rows (in no particular order). A body waits while an
    earlier body of its group is pending.
    """
    return f"""UPDATE inbox SET owner = $3, lease_until = $4, attempts = inbox.attempts + 1
               FROM (SELECT id FROM inbox i
                     WHERE status = 'pending' AND (lease_until IS NULL OR lease_until < $1)
                       AND NOT EXISTS (SELECT 1 FROM inbox j WHERE j.group_key = i.group_key
                                       AND j.status = 'pending' AND j.id < i.id)
                     ORDER BY priority, id LIMIT $2{lock}) AS c
               WHERE inbox.id = c.id
               RETURNING inbox.id, inbox.received_at, inbox.body, inbox.group_key, inbox.attempts"""  # noqa: S608


FAILED_INBOX_SQL = """SELECT id, received_at, group_key, attempts, COALESCE(finished_at, 0), COALESCE(error, ''),
                             length(body)
                      FROM inbox WHERE status = 'failed' ORDER BY id DESC LIMIT $1"""
"""The bodies set aside at ingest, newest first: ``$1`` limit; the columns of a ``FailedInbox``."""


def failed_inbox(rows: Sequence[Sequence[Any]]) -> list[FailedInbox]:
    """The rows of :data:`FAILED_INBOX_SQL` as records."""
    return [FailedInbox(int(r[0]), float(r[1]), str(r[2]), int(r[3]), float(r[4]), str(r[5]), int(r[6])) for r in rows]


# -- outbox -------------------------------------------------------------------------------------

OUTBOX_COLUMNS = "id, kind, dest, group_key, payload, attempts, created_at, priority"
"""The columns :func:`outbox_item` reads, in order."""

_RETURNING = "RETURNING " + ", ".join(f"outbox.{c.strip()}" for c in OUTBOX_COLUMNS.split(","))


def claim_outbox_sql(lock: str = "") -> str:
    """Claim due work of one kind: ``$1`` kind, ``$2`` now, ``$3`` limit, ``$4`` owner, ``$5`` lease until.

    Returns :data:`OUTBOX_COLUMNS` of the claimed rows. An item waits while an earlier item of its
    destination and group is pending.
    """
    return f"""UPDATE outbox SET owner = $4, lease_until = $5, attempts = outbox.attempts + 1
               FROM (SELECT id FROM outbox o
                     WHERE kind = $1 AND status = 'pending' AND not_before <= $2
                       AND (lease_until IS NULL OR lease_until < $2)
                       AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.dest = o.dest AND p.group_key = o.group_key
                                       AND p.status = 'pending' AND p.id < o.id)
                     ORDER BY priority, id LIMIT $3{lock}) AS c
               WHERE outbox.id = c.id
               {_RETURNING}"""  # noqa: S608


def claim_dest_sql(lock: str = "") -> str:
    """Claim unclaimed pending items of one destination, due or not (a storm digest's sweep).

    ``$1`` kind, ``$2`` dest, ``$3`` now, ``$4`` limit, ``$5`` owner, ``$6`` lease until, ``$7`` the id
    of the item the sweep started from (``-1``: none). Oldest first; a group is skipped while an earlier
    item of it is claimed by someone (other than ``$7``), so a digest never overtakes a delivery in flight.
    """
    return f"""UPDATE outbox SET owner = $5, lease_until = $6, attempts = outbox.attempts + 1
               FROM (SELECT id FROM outbox o
                     WHERE kind = $1 AND dest = $2 AND status = 'pending'
                       AND (lease_until IS NULL OR lease_until < $3)
                       AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.dest = o.dest AND p.group_key = o.group_key
                                       AND p.status = 'pending' AND p.id < o.id AND p.id <> $7
                                       AND p.lease_until IS NOT NULL AND p.lease_until >= $3)
                     ORDER BY id LIMIT $4{lock}) AS c
               WHERE outbox.id = c.id
               {_RETURNING}"""  # noqa: S608


def outbox_item(r: Sequence[Any]) -> OutboxItem:
    """An :class:`OutboxItem` from a row of :data:`OUTBOX_COLUMNS`."""
    return OutboxItem(int(r[0]), r[1], r[2], r[3], payload_from(r[4]), int(r[5]), float(r[6]), int(r[7]))


def claimed(rows: Sequence[Sequence[Any]]) -> list[OutboxItem]:
    """The claimed rows as items, in id order (``RETURNING`` promises no order)."""
    return sorted((outbox_item(r) for r in rows), key=lambda i: i.id)


OUTBOX_INSERT_COLUMNS = "kind, dest, group_key, payload, not_before, created_at, priority"
"""The columns :func:`outbox_row` gives values for, in order."""


def outbox_row(item: NewOutboxItem, now: float) -> tuple[str, str, str, str, float, float, int]:
    """The values stored for a new outbox item, created at ``now``.

    Its priority is the item's own, else that of the alerts in its payload (:func:`.priority.of_payload`).
    """
    prio = item.priority if item.priority is not None else priority.of_payload(item.payload)
    return (item.kind, item.dest, item.group_key, payload_text(item.payload), item.not_before, now, prio)


def payload_text(payload: dict[str, Any]) -> str:
    """An outbox payload as stored: compact JSON (encoded by pydantic-core, a few times faster than ``json``)."""
    return pydantic_core.to_json(payload).decode()


def payload_from(text: str | bytes) -> dict[str, Any]:
    """A stored outbox payload, decoded."""
    value = pydantic_core.from_json(text)
    if not isinstance(value, dict):
        raise ValueError("an outbox payload is a JSON object")
    return value
