"""The ``postgres:`` section of ``alert-router.yaml``: pool and timeout knobs of the PostgreSQL store."""

from __future__ import annotations

from pydantic import Field

from alert_router.configbase import ConfigModel
from alert_router.durations import Duration


class PostgresConfig(ConfigModel):
    """Connection pool, timeouts and migration policy; used only when ``store`` is a ``postgresql://`` URL.

    ``outcome_patience`` is how long a replica keeps trying to record the outcome of work it already did
    (a notification sent, a body ingested) while the database is unreachable, so that a PostgreSQL restart
    shorter than that does not turn a sent notification into a duplicate. Keep it below the leases
    (``ingest.lease``, ``delivery.lease``).
    """

    pool_min: int = Field(default=1, ge=0, le=100)
    pool_max: int = Field(default=10, ge=1, le=200)
    connect_timeout: Duration = 5.0
    command_timeout: Duration = 15.0
    outcome_patience: Duration = 30.0
    migrate: bool = True
    migrate_timeout: Duration = 120.0
