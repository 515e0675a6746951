"""Pytest fixtures for the Loki and Kubernetes API stand-ins (registered as a plugin in tests/conftest.py).

* ``loki_standin`` - a started :class:`~tests.standins.loki.LokiStandin` on the test's event loop.
* ``kube_standin`` - a started :class:`~tests.standins.kube.KubeApiStandin` (own thread, own loop,
  remediator RBAC); teardown fails the test if the stand-in itself raised internally.
* ``kube_kubeconfig`` - a kubeconfig file for ``kube_standin`` (namespace ``default``).
* ``kube_api_client`` - a ``kubernetes.client.ApiClient`` built from that kubeconfig with
  ``kubernetes.config.new_client_from_config``; closed after the test.

For a custom rule set or controller speed build the stand-in yourself:
``with KubeApiStandin(rules=ALLOW_ALL_RULES, controller_step=0.01) as kube: ...``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.standins.kube import KubeApiStandin
from tests.standins.loki import LokiStandin


@pytest.fixture
async def loki_standin() -> AsyncIterator[LokiStandin]:
    """A Loki query API stand-in on 127.0.0.1 with no auth and no tenant requirement."""
    async with LokiStandin() as loki:
        yield loki


@pytest.fixture
def kube_standin() -> Iterator[KubeApiStandin]:
    """A Kubernetes API stand-in with the remediator RBAC and a 0.05 s controller step."""
    kube = KubeApiStandin()
    kube.start()
    try:
        yield kube
    finally:
        kube.stop()
    assert not kube.internal_errors, "kube stand-in raised internally:\n" + "\n".join(kube.internal_errors)


@pytest.fixture
def kube_kubeconfig(kube_standin: KubeApiStandin, tmp_path: Path) -> Path:
    """Path of a kubeconfig pointing at ``kube_standin`` (plain http, bearer token)."""
    return kube_standin.kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def kube_api_client(kube_kubeconfig: Path) -> Iterator[Any]:
    """A real ``kubernetes.client.ApiClient`` talking to ``kube_standin``."""
    from kubernetes import config

    api_client = config.new_client_from_config(config_file=str(kube_kubeconfig))
    try:
        yield api_client
    finally:
        api_client.close()
