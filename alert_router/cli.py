"""The ``alert-router`` command line: ``serve``, ``check``, ``route-test``, ``graph``, ``runbook test`` and the rest.

Thin on purpose: it parses arguments and calls into the package.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from alert_router import __version__
from alert_router.config import Config, config_path, load, parse_listen
from alert_router.errors import ConfigError, MatcherError, StoreInUse
from alert_router.matchers import format_matchers


def _load(args: argparse.Namespace) -> Config:
    return load(config_path(args.config))


def _load_or_report(args: argparse.Namespace) -> Config | None:
    """Load the config; on problems print each (``FILE:LINE: message``) to stderr and return ``None``."""
    try:
        return _load(args)
    except ConfigError as exc:
        for p in exc.problems:
            print(p, file=sys.stderr)
        return None


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the service until interrupted."""
    import structlog
    from aiohttp import web

    from alert_router.app import build_app
    from alert_router.logging import configure_logging
    from alert_router.tls import ServerTLS

    try:
        config = _load(args)
    except ConfigError as exc:
        for p in exc.problems:
            print(p, file=sys.stderr)
        print(f"alert-router: configuration invalid ({len(exc.problems)} problem(s)); not starting", file=sys.stderr)
        return 2
    settings = config.settings.log
    configure_logging(args.log_format or settings.format, args.log_level or settings.level, settings.repeat_interval)
    host, port = parse_listen(args.listen or config.settings.listen)
    log = structlog.get_logger("alert_router.cli")
    for w in config.warnings:
        log.warning("configuration warning", file=w.file, line=w.line, problem=w.message)
    tls = ServerTLS(config.settings.tls, config.base_dir) if config.settings.tls is not None else None
    app = build_app(config)
    app.on_startup.append(_settle_heap)  # after the store, channels and workers are up
    if tls is not None:
        structlog.get_logger("alert_router.tls").info(
            "serving HTTPS", cert_file=str(tls.files.cert), mutual_tls=tls.mutual, listen=f"{host}:{port}"
        )
    try:
        web.run_app(
            app,
            host=host,
            port=port,
            ssl_context=tls.context if tls else None,
            # called once the listener is up (never when startup fails): where a newcomer's curl should go
            print=lambda _banner: log.info("listening", url=f"{'https' if tls else 'http'}://{host}:{port}"),
            access_log=None,
            shutdown_timeout=10,
        )
    except StoreInUse as exc:  # a setup error like an invalid config: say so in one line, no traceback
        print(f"alert-router: {exc}; not starting", file=sys.stderr)
        return 2
    return 0


async def _settle_heap(app: object) -> None:
    """Keep the garbage collector off what lives as long as the process, and run it less often.

    Everything loaded at startup (modules, config, clients) is moved out of the collector's sight with
    ``gc.freeze()``; before that, a full collection walked all of it and stalled requests: it was most of
    the p99 accept latency in ``bench/ingest.py`` (38 ms before, 13 ms after; see the note on issue 2).
    """
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


def cmd_check(args: argparse.Namespace) -> int:
    """Validate the configuration, rules and runbooks; print ``FILE:LINE: message`` per problem."""
    path = config_path(args.config)
    try:
        config = load(path)
    except ConfigError as exc:
        for p in exc.problems:
            print(p)
        print(f"{len(exc.problems)} problem(s) found", file=sys.stderr)
        return 1
    for w in config.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(
        f"OK: {path}: {len(config.receivers)} receivers, {len(config.rules)} rules"
        f"{' + default route' if config.default else ''}, {len(config.runbooks)} runbooks "
        f"({len(config.files)} files checked)"
    )
    return 0


def cmd_route_test(args: argparse.Namespace) -> int:
    """Show which rules, receivers and runbooks an alert with the given labels reaches."""
    from alert_router.pipeline.route import route_labels

    labels: dict[str, str] = {}
    for item in args.labels:
        name, sep, value = item.partition("=")
        if not sep or not name:
            print(f"error: labels are LABEL=VALUE, got {item!r}", file=sys.stderr)
            return 2
        labels[name] = value
    config = _load_or_report(args)
    if config is None:
        return 1
    result = route_labels(labels, config.rules, config.default)
    print(f"labels: {format_matchers_of(labels)}")
    if not result.rules:
        print("matches no rule and there is no default route: the alert would only be logged and counted")
        return 0
    for rule in result.rules:
        where = f"{rule.file}:{rule.line}"
        matchers = format_matchers(rule.matchers) if rule.matchers or rule.name != "default" else "(default route)"
        print(f"rule {rule.name} {matchers} at {where}{' (continue)' if rule.continue_ else ''}")
    names = [n if config.delivers_to(n) else f"{n} (disabled)" for n in result.receiver_names]
    print("receivers: " + (", ".join(names) or "(none)"))
    runbooks = [b for b, _ in result.runbooks]
    for name in runbooks:
        rb = config.runbooks.get(name)
        applies = rb is not None and all(m.matches(labels) for m in rb.matchers)
        note = "" if applies else " (its own match does not accept these labels: it would be skipped)"
        print(f"runbook: {name}{note}")
    if not runbooks:
        print("runbooks: (none)")
    from alert_router.enrich.stage import describe_queries

    for line in describe_queries(config, list(result.rules), labels):
        print(line)
    return 0


def _labels(items: Sequence[str]) -> dict[str, str] | None:
    """``LABEL=VALUE`` arguments as a dict; ``None`` (after saying why) for a malformed one."""
    labels: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            print(f"error: labels are LABEL=VALUE, got {item!r}", file=sys.stderr)
            return None
        labels[name] = value
    return labels


def cmd_graph(args: argparse.Namespace) -> int:
    """Draw the picture a page for an alert with these labels would carry, into ``--out``."""
    from alert_router.graph.command import graph_command

    labels = _labels(args.labels)
    if labels is None:
        return 2
    config = _load_or_report(args)
    if config is None:
        return 1
    return graph_command(
        config,
        labels,
        out=args.out,
        expr=args.expr,
        generator_url=args.generator_url,
        rules_file=args.rules_file,
        prometheus=args.prometheus,
        range_=args.range,
        since=args.since,
    )


def cmd_runs(args: argparse.Namespace) -> int:
    """List runbook runs (newest first)."""
    from alert_router.remediation.commands import config_or_exit, runs_command

    config = config_or_exit(lambda: _load(args))
    return runs_command(config, status=args.status, runbook=args.runbook, limit=args.limit, as_json=args.json)


def cmd_audit(args: argparse.Namespace) -> int:
    """Print or verify the hash-chained audit log."""
    from alert_router.remediation.commands import audit_list_command, audit_verify_command, config_or_exit

    config = config_or_exit(lambda: _load(args))
    if args.audit_command == "verify":
        return audit_verify_command(config)
    return audit_list_command(
        config, since=args.since, runbook=args.runbook, run_id=args.run, limit=args.limit, as_json=args.json
    )


def cmd_runbook(args: argparse.Namespace) -> int:
    """``runbook test FILE --alert LABEL=VALUE ...``: rehearse a runbook against the configured cluster."""
    from alert_router.remediation.commands import config_or_exit
    from alert_router.remediation.rehearsal import runbook_test_command

    config = config_or_exit(lambda: _load(args))
    return runbook_test_command(config, args.file, args.alert or [], as_json=args.json)


def format_matchers_of(labels: dict[str, str]) -> str:
    """Render a label set like a selector."""
    from alert_router.matchers import Matcher, MatchOp

    try:
        return format_matchers(Matcher.create(k, MatchOp.EQ, v) for k, v in labels.items())
    except MatcherError:
        return str(labels)


def cmd_migrate(args: argparse.Namespace) -> int:
    """Apply the store's schema migrations (``--status``: only show them; exit 3 when some are pending)."""
    from alert_router.store.admin import migrate_command

    config = _load_or_report(args)
    if config is None:
        return 1
    return migrate_command(config, status_only=args.status)


def cmd_inbox(args: argparse.Namespace) -> int:
    """``inbox failed``: list the webhook bodies set aside at ingest."""
    from alert_router.store.admin import inbox_failed_command

    config = _load_or_report(args)
    if config is None:
        return 1
    return inbox_failed_command(config, limit=args.limit, as_json=args.json)


def cmd_telegram(args: argparse.Namespace) -> int:
    """Manage the chat bot's Telegram webhook: ``set-webhook URL``, ``delete-webhook``, ``webhook-info``."""
    import asyncio

    from telegram.error import TelegramError

    from alert_router.api.telegram import webhook_admin

    config = _load_or_report(args)
    if config is None:
        return 1
    cfg = config.settings.chat.telegram
    if not cfg.enabled:
        print("error: chat.telegram.token is not configured", file=sys.stderr)
        return 2
    action = {"set-webhook": "set", "delete-webhook": "delete", "webhook-info": "info"}[args.telegram_command]
    try:
        print(asyncio.run(webhook_admin(cfg, action, getattr(args, "url", ""),
                                        drop_pending_updates=getattr(args, "drop_pending_updates", False))))
    except (TelegramError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    parser = argparse.ArgumentParser(prog="alert-router", description="Alertmanager webhook receiver.")
    parser.add_argument("--version", action="version", version=f"alert-router {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", help="config file (default: $ALERT_ROUTER_CONFIG or ./alert-router.yaml)")

    p = sub.add_parser("serve", help="run the service")
    common(p)
    p.add_argument("--listen", help="HOST:PORT to listen on (overrides the config)")
    p.add_argument("--log-format", choices=["json", "console"], help="log format (default from config: json)")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("check", help="validate the config, rules and runbooks")
    common(p)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("route-test", help="show where an alert with these labels would go")
    common(p)
    p.add_argument("labels", nargs="*", metavar="LABEL=VALUE")
    p.set_defaults(func=cmd_route_test)

    p = sub.add_parser("graph", help="draw the picture a page for an alert with these labels would carry")
    common(p)
    p.add_argument("labels", nargs="*", metavar="LABEL=VALUE")
    p.add_argument("--out", required=True, metavar="FILE.png", help="where to write the PNG")
    p.add_argument("--expr", help="the alert's expression (default: the rule's graph.query)")
    p.add_argument("--generator-url", help="take the expression from a Prometheus generatorURL (g0.expr)")
    p.add_argument("--rules-file", help="take the expression of the alert named by alertname= from this "
                   "Prometheus rule file (e.g. rules/prometheus/model-monitoring.yml)")
    p.add_argument("--prometheus", help="query this Prometheus URL instead of graph.prometheus.url")
    p.add_argument("--range", help="the time range drawn (default graph.range, 1h)")
    p.add_argument("--since", default="15m", help="how long the alert has been firing (shaded; default 15m)")
    p.set_defaults(func=cmd_graph)

    p = sub.add_parser("runs", help="list runbook runs (pending approvals, outcomes)")
    common(p)
    p.add_argument("--status", help="only runs with this status (e.g. pending_approval)")
    p.add_argument("--runbook", help="only runs of this runbook")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("audit", help="the remediation audit log: list | verify")
    audit = p.add_subparsers(dest="audit_command", required=True)
    q = audit.add_parser("list", help="print audit records")
    common(q)
    q.add_argument("--since", help="a duration (1h), an RFC 3339 time or a Unix timestamp")
    q.add_argument("--runbook", help="only records of this runbook")
    q.add_argument("--run", type=int, help="only records of this run id")
    q.add_argument("--limit", type=int, help="only the last N records")
    q.add_argument("--json", action="store_true", help="one JSON object per line")
    q = audit.add_parser("verify", help="check the hash chain; exit 1 if any record was edited, removed or reordered")
    common(q)
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("runbook", help="runbooks: test FILE --alert LABEL=VALUE ... (a dry rehearsal)")
    rb = p.add_subparsers(dest="runbook_command", required=True)
    q = rb.add_parser("test", help="show the plan, the evidence and the requests a run would send, changing nothing")
    common(q)
    q.add_argument("file", metavar="FILE", help="the runbook file")
    q.add_argument("--alert", action="append", metavar="LABEL=VALUE", help="a label of the alert (repeat)")
    q.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_runbook)

    p = sub.add_parser("migrate", help="apply the store's schema migrations (the service also does at start)")
    common(p)
    p.add_argument("--status", action="store_true", help="only show the schema version and pending migrations")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("inbox", help="webhook bodies: failed (those set aside at ingest, with the reason)")
    ib = p.add_subparsers(dest="inbox_command", required=True)
    q = ib.add_parser("failed", help="list the webhook bodies ingest set aside, newest first")
    common(q)
    q.add_argument("--limit", type=int, default=50)
    q.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_inbox)

    p = sub.add_parser("telegram", help="Telegram bot webhook: set-webhook URL | delete-webhook | webhook-info")
    tg = p.add_subparsers(dest="telegram_command", required=True)
    q = tg.add_parser("set-webhook", help="register URL (https://HOST/telegram/webhook) with the configured secret")
    common(q)
    q.add_argument("url", metavar="URL")
    q.add_argument("--drop-pending-updates", action="store_true", help="discard updates Telegram holds")
    q = tg.add_parser("delete-webhook", help="remove the webhook (polling mode does this by itself)")
    common(q)
    q.add_argument("--drop-pending-updates", action="store_true", help="discard updates Telegram holds")
    q = tg.add_parser("webhook-info", help="show the registered webhook and its last error")
    common(q)
    p.set_defaults(func=cmd_telegram)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))
