"""On-call chat commands in Slack and Telegram: ack, silence, escalate, approve — authorized and audited.

The package is imported by the store (for its record types), so this module stays free of imports:
use the submodules directly — :mod:`.commands` (one parser and dispatcher for both platforms),
:mod:`.authz` (roles), :mod:`.alertmanager` (API v2 client), :mod:`.escalation` (timers and the worker),
:mod:`.service` (wiring into the running application).
"""
