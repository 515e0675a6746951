"""Configuration of remediation: the ``kubernetes:`` and ``remediation:`` sections of ``alert-router.yaml``."""

from __future__ import annotations

from pydantic import Field, SecretStr

from alert_router.configbase import ConfigModel
from alert_router.durations import Duration


class KubernetesConfig(ConfigModel):
    """How to reach the cluster.

    ``in_cluster`` unset means: use the Pod's service account when running in a Pod
    (``$KUBERNETES_SERVICE_HOST`` is set), else the kubeconfig. ``kubeconfig`` empty means the
    client's default (``$KUBECONFIG`` or ``~/.kube/config``); a relative path is relative to the
    config file. ``context`` empty means the kubeconfig's current context. ``server_dry_run``: in a
    dry run, send mutating requests with ``dryRun=All`` so the API server checks them (RBAC,
    admission, validation) without applying them; ``false`` records them without sending.
    """

    kubeconfig: str = ""
    context: str = ""
    in_cluster: bool | None = None
    request_timeout: Duration = Field(default=10.0, gt=0)
    server_dry_run: bool = True


class RetryConfig(ConfigModel):
    """Retries of one Kubernetes or HTTP request (409, 429, 5xx, connection errors and timeouts only)."""

    attempts: int = Field(default=4, ge=1, le=20)
    initial: Duration = 0.5
    max: Duration = 5.0


class ApiBasicAuth(ConfigModel):
    """HTTP basic credentials for the API; the user name is the identity recorded in the audit log."""

    username: str = Field(min_length=1)
    password: SecretStr


class ApiAuth(ConfigModel):
    """Credentials accepted on ``/api/v1/...`` (either is accepted)."""

    bearer_token: SecretStr | None = None
    basic: ApiBasicAuth | None = None


class RemediationConfig(ConfigModel):
    """Global options of the runbook engine (per-runbook guards live in the runbook files)."""

    enabled: bool = True
    max_concurrent_runs: int = Field(default=8, ge=1, le=256)
    lease: Duration = Field(default=60.0, gt=0)
    poll_interval: Duration = Field(default=2.0, gt=0)
    step_timeout: Duration = Field(default=300.0, gt=0)
    approval_timeout: Duration = Field(default=3600.0, gt=0)
    approvers: list[str] = Field(default_factory=list)
    retry: RetryConfig = RetryConfig()
    api_auth: ApiAuth | None = None
