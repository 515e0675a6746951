"""The remediation worker's housekeeping: how long finished runs are kept."""

from pathlib import Path

from alert_router.config import load
from alert_router.remediation.worker import runs_horizon
from tests.remediation.helpers import RESTART, remediation_config

DAY = 86400.0


def test_finished_runs_are_kept_as_long_as_the_audit_log(tmp_path: Path) -> None:
    config = load(remediation_config(tmp_path, {"restart": RESTART}, extra="retention: {audit: 30d}\n"))
    assert runs_horizon(config, 1000 * DAY) == 970 * DAY


def test_finished_runs_are_kept_while_a_guard_window_could_count_them(tmp_path: Path) -> None:
    long_window = RESTART.replace("window: 6h", "window: 90d")
    config = load(remediation_config(tmp_path, {"restart": long_window}, extra="retention: {audit: 30d}\n"))
    assert runs_horizon(config, 1000 * DAY) == 910 * DAY
