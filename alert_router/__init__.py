"""alert-router: an Alertmanager webhook receiver that turns alerts into action.

The public surface is small: :func:`alert_router.config.load` reads a configuration,
:func:`alert_router.app.build_app` builds the aiohttp application, and the ``alert-router``
console script (:mod:`alert_router.cli`) serves, checks and tests routes.
"""

__version__ = "0.1.0"
