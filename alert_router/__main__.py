"""Allow ``python -m alert_router``."""

from alert_router.cli import main

raise SystemExit(main())
