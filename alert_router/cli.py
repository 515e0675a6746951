"""The ``alert-router`` command line: ``serve``, ``check`` and ``route-test``.

Thin on purpose: it parses arguments and calls into the package.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from alert_router import __version__
from alert_router.config import Config, config_path, load, parse_listen
from alert_router.errors import ConfigError, MatcherError
from alert_router.matchers import format_matchers


def _load(args: argparse.Namespace) -> Config:
    return load(config_path(args.config))


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the service until interrupted."""
    from aiohttp import web

    from alert_router.app import build_app
    from alert_router.logging import configure_logging

    try:
        config = _load(args)
    except ConfigError as exc:
        for p in exc.problems:
            print(p, file=sys.stderr)
        print(f"alert-router: configuration invalid ({len(exc.problems)} problem(s)); not starting", file=sys.stderr)
        return 2
    configure_logging(args.log_format or config.settings.log.format, args.log_level or config.settings.log.level)
    host, port = parse_listen(args.listen or config.settings.listen)
    for w in config.warnings:
        print(f"warning: {w}", file=sys.stderr)
    web.run_app(build_app(config), host=host, port=port, print=None, access_log=None, shutdown_timeout=10)
    return 0


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
    try:
        config = _load(args)
    except ConfigError as exc:
        for p in exc.problems:
            print(p, file=sys.stderr)
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
    print("receivers: " + (", ".join(result.receiver_names) or "(none)"))
    runbooks = [b for b, _ in result.runbooks]
    for name in runbooks:
        rb = config.runbooks.get(name)
        applies = rb is not None and all(m.matches(labels) for m in rb.matchers)
        note = "" if applies else " (its own match does not accept these labels: it would be skipped)"
        print(f"runbook: {name}{note}")
    if not runbooks:
        print("runbooks: (none)")
    return 0


def format_matchers_of(labels: dict[str, str]) -> str:
    """Render a label set like a selector."""
    from alert_router.matchers import Matcher, MatchOp

    try:
        return format_matchers(Matcher.create(k, MatchOp.EQ, v) for k, v in labels.items())
    except MatcherError:
        return str(labels)


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))
