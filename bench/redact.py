"""Secret redaction of log lines: the curated pattern set against detect-secrets' plugin catalogue, side by side.

Every Loki line is redacted before it reaches a notification, on the event loop, inside the enrichment budget
(``loki.timeout``, 2 s, for the whole notification; at most ``max_queries`` x ``limit`` = 5 x 50 = 250 lines).
For each candidate this prints:

* the cost per line (mean µs) on ordinary log lines and on lines that carry a credential, and what 250 lines
  cost one notification (ms, and the share of the 2 s budget);
* recall: how many of the credential kinds the tests list (``tests/test_redact.py``: Bearer tokens, Slack,
  GitHub, OpenAI, CLI flags, AWS, JWT, keys, URLs...) it masks;
* false positives: how many of the ordinary lines it changes;
* the worst case: 64 KiB adversarial lines, whole and cut to what the stage redacts (``max_line_chars`` +
  ``REDACT_MARGIN``): the patterns are linear, and the cut bounds every line's cost.

Candidates: ``curated`` (``alert_router.redact.Redactor``), ``detect-secrets`` (every default plugin of
detect-secrets 1.5, as ``detect-secrets scan`` runs them, each reported secret value masked), ``ds-regex``
(only its regex plugins: no keyword or entropy detectors) and ``curated+ds`` (both, for the union of recall).

detect-secrets is not a dependency; install it into the venv to compare (``.venv/bin/pip install
detect-secrets==1.5.0``), otherwise only the curated set is measured. Run from the repository root:
``.venv/bin/python bench/redact.py`` (CPU only, about 30 s with detect-secrets).
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alert_router.enrich.stage import REDACT_MARGIN
from alert_router.redact import MASK, Redactor
from tests.test_redact import CASES, ORDINARY

LINES_PER_NOTIFICATION = 250
BUDGET_S = 2.0

Redact = Callable[[str], str]
_SETTINGS = contextlib.ExitStack()

NOISE = [
    "INFO  uvicorn.access 10.2.3.{n}:5{n}12 - \"POST /v1/predict HTTP/1.1\" 200 OK {n}ms",
    "ERROR model-api worker-{n} inference failed: CUDA error: out of memory (tried to allocate {n}.00 MiB)",
    '{{"ts":"2026-11-27T00:01:{n:02d}Z","level":"warn","msg":"slow batch","batch":{n},"latency_ms":{n}3.2}}',
    "level=error ts=2026-11-27T00:01:{n:02d}Z caller=loop.go:{n} msg=\"retrying\" err=\"context deadline exceeded\"",
    "  File \"/app/serve/model.py\", line {n}, in forward\n    return self.head(x)",
    "Traceback (most recent call last): RuntimeError: shape mismatch (3, 224) vs (3, {n})",
    "WARNING kafka consumer group model-feeder lag {n} messages on partition {n}",
]


def corpus(n: int, secret_share: float, rng: random.Random) -> tuple[list[str], list[str]]:
    """``n`` realistic lines: ordinary ones and, for ``secret_share`` of them, one carrying a credential."""
    ordinary = [rng.choice(NOISE).format(n=rng.randrange(1, 60)) for _ in range(n)] + list(ORDINARY)
    secret = [f"{rng.choice(NOISE).format(n=rng.randrange(1, 60))} {rng.choice(CASES)[1]}"
              for _ in range(int(n * secret_share))]
    return ordinary, secret


def adversarial() -> dict[str, str]:
    """64 KiB lines built to make a careless pattern backtrack."""
    size = 64 * 1024
    return {
        "a_a_a_…": ("a_" * size)[:size],
        "--a --a …": ("--a " * size)[:size],
        "bearer bearer …": ("bearer " * size)[:size],
        "password=password=…": ("password=" * size)[:size],
        "digits:digits…": ("1234567890:" * size)[:size],
        "BEGIN PRIVATE KEY, no END": "-----BEGIN PRIVATE KEY-----" + "A" * size,
        "key: key: key: …": ("key: " * size)[:size],
    }


def detect_secrets_redactors() -> dict[str, Redact]:
    """``detect-secrets`` (all default plugins) and ``ds-regex`` (its regex plugins only), as redactors."""
    try:
        from detect_secrets.core.scan import scan_line
        from detect_secrets.settings import default_settings, get_plugins
    except ImportError:
        return {}
    _SETTINGS.enter_context(default_settings())  # kept open for the whole run
    every = list(get_plugins())
    regex_only = [p for p in every if type(p).__name__ not in (
        "KeywordDetector", "Base64HighEntropyString", "HexHighEntropyString", "IPPublicDetector")]

    def mask(line: str, values: Iterator[str | None]) -> str:
        for value in sorted({v for v in values if v}, key=len, reverse=True):
            line = line.replace(value, MASK)
        return line

    def full(line: str) -> str:
        return mask(line, (s.secret_value for s in scan_line(line)))

    def regex(line: str) -> str:
        found: list[str | None] = []
        for plugin in regex_only:
            found.extend(s.secret_value for s in plugin.analyze_line(filename="loki", line=line, line_number=0))
        return mask(line, iter(found))

    return {"detect-secrets": full, "ds-regex": regex}


def per_line_us(redact: Redact, lines: list[str], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for line in lines:
            redact(line)
        best = min(best, time.perf_counter() - started)
    return best / len(lines) * 1e6


def recall(redact: Redact) -> tuple[int, list[str]]:
    missed = [name + ": " + line[:50] for name, line, secret, _ in CASES if secret in redact(line)]
    return len(CASES) - len(missed), missed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=4000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = random.Random(15)
    ordinary, secret = corpus(args.lines, 0.1, rng)
    curated = Redactor()
    candidates: dict[str, Redact] = {"curated": curated}
    ds = detect_secrets_redactors()
    candidates.update(ds)
    if "detect-secrets" in ds:
        full = ds["detect-secrets"]
        candidates["curated+ds"] = lambda line: full(curated(line))
    else:
        print("detect-secrets is not installed: only the curated set is measured "
              "(.venv/bin/pip install detect-secrets==1.5.0 to compare)\n")

    print(f"{len(ordinary)} ordinary lines, {len(secret)} lines with a credential; "
          f"a notification redacts up to {LINES_PER_NOTIFICATION} lines within a {BUDGET_S:g} s budget\n")
    header = (f"{'candidate':<15} {'ordinary µs/line':>17} {'secret µs/line':>15} {'250 lines ms':>13} "
              f"{'budget':>7} {'recall':>8} {'changed ordinary':>17}")
    print(header)
    print("-" * len(header))
    base = None
    rows: dict[str, list[str]] = {}
    for name, redact in candidates.items():
        o = per_line_us(redact, ordinary, args.repeat)
        s = per_line_us(redact, secret, args.repeat)
        mixed = 0.9 * o + 0.1 * s
        per_notification_ms = mixed * LINES_PER_NOTIFICATION / 1000
        got, missed = recall(redact)
        changed = sum(redact(line) != line for line in ORDINARY)
        base = base or mixed
        print(f"{name:<15} {o:>17.1f} {s:>15.1f} {per_notification_ms:>13.2f} "
              f"{per_notification_ms / 1000 / BUDGET_S:>7.2%} {got:>3}/{len(CASES):<4} "
              f"{changed:>3}/{len(ORDINARY):<3} (x{mixed / base:.1f} curated)")
        rows[name] = missed
    for name, missed in rows.items():
        if missed:
            print(f"\n{name} misses {len(missed)}:")
            for m in missed:
                print(f"  {m}")
    window = 300 + REDACT_MARGIN
    print(f"\nworst case, one 64 KiB line (curated): whole, and the first {window} characters the stage redacts")
    for what, line in adversarial().items():
        started = time.perf_counter()
        curated(line)
        whole = time.perf_counter() - started
        started = time.perf_counter()
        curated(line[:window])
        print(f"  {what:<28} {whole * 1000:8.2f} ms {(time.perf_counter() - started) * 1000:8.2f} ms")


if __name__ == "__main__":
    with _SETTINGS:
        main()
