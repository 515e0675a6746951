"""The audit log: append-only, hash-chained records of every remediation decision.

Each record carries the SHA-256 of its own content and the hash of the record before it. The
store assigns the sequence number and computes both inside the appending transaction, so records
form one chain in commit order. :func:`verify` recomputes the chain and reports any record that was
edited (its hash no longer matches its content), removed (a gap in the sequence, or a link that
points at a different record), reordered (sequence numbers out of order, or links that no longer
line up) or cut off at the end (the stored head names a later record than the last one present).

Every string in a record's data passes :func:`alert_router.scrub.scrub` before it is hashed, so no
credential an upstream echoed (or a chat user typed) is kept.

Pruning old records keeps the chain verifiable: the store remembers the sequence number and hash
of the last pruned record (the *anchor*), which the first remaining record must link to.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from alert_router.scrub import LOG_CHARS, scrub

GENESIS = "0" * 64
"""The ``prev_hash`` of the first record ever written."""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """A record to append: what was decided, about which run, by whom, with which details."""

    event: str
    data: Mapping[str, Any] = field(default_factory=dict)
    runbook: str | None = None
    run_id: int | None = None
    target: str | None = None
    actor: str = "alert-router"


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """A stored record; ``data`` is the canonical JSON text that was hashed."""

    seq: int
    ts: float
    event: str
    runbook: str | None
    run_id: int | None
    target: str | None
    actor: str
    data: str
    prev_hash: str
    hash: str

    @property
    def details(self) -> dict[str, Any]:
        """``data`` parsed."""
        value = json.loads(self.data)
        return value if isinstance(value, dict) else {"value": value}

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form (as served by ``GET /api/v1/audit``)."""
        return {
            "seq": self.seq,
            "ts": self.ts,
            "time": datetime.fromtimestamp(self.ts, UTC).isoformat(),
            "event": self.event,
            "runbook": self.runbook,
            "run_id": self.run_id,
            "target": self.target,
            "actor": self.actor,
            "data": self.details,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> AuditRecord:
        """Rebuild a record from :meth:`to_json` output (to verify records fetched over the API)."""
        return cls(
            int(obj["seq"]),
            float(obj["ts"]),
            str(obj["event"]),
            obj.get("runbook"),
            obj.get("run_id"),
            obj.get("target"),
            str(obj.get("actor", "")),
            canonical_json(obj.get("data", {})),
            str(obj["prev_hash"]),
            str(obj["hash"]),
        )


@dataclass(frozen=True, slots=True)
class AuditChain:
    """Everything :func:`verify` needs: the records in sequence order, the anchor and the head."""

    records: Sequence[AuditRecord]
    anchor_seq: int = 0
    anchor_hash: str = GENESIS
    head_seq: int = 0
    head_hash: str = GENESIS


def canonical_json(value: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, UTF-8 kept."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def record_hash(
    prev_hash: str,
    seq: int,
    ts: float,
    event: str,
    runbook: str | None,
    run_id: int | None,
    target: str | None,
    actor: str,
    data: str,
) -> str:
    """The SHA-256 (hex) of one record's content chained to ``prev_hash``."""
    content = canonical_json([prev_hash, seq, repr(float(ts)), event, runbook, run_id, target, actor, data])
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


def _scrubbed(value: Any, depth: int = 0) -> Any:
    """Every string of a record's data scrubbed (a safety net: upstream text is scrubbed where it enters)."""
    if isinstance(value, str):
        return scrub(value, LOG_CHARS, oneline=False)
    if depth < 6 and isinstance(value, Mapping):
        return {k: _scrubbed(v, depth + 1) for k, v in value.items()}
    if depth < 6 and isinstance(value, list | tuple):
        return [_scrubbed(v, depth + 1) for v in value]
    return value


def seal(entry: AuditEntry, seq: int, ts: float, prev_hash: str) -> AuditRecord:
    """Turn an entry into the record stored at ``seq`` after a record hashed ``prev_hash``."""
    data = canonical_json(_scrubbed(dict(entry.data)))
    digest = record_hash(prev_hash, seq, ts, entry.event, entry.runbook, entry.run_id, entry.target, entry.actor, data)
    return AuditRecord(seq, ts, entry.event, entry.runbook, entry.run_id, entry.target, entry.actor, data, prev_hash,
                       digest)


@dataclass
class VerifyResult:
    """The outcome of :func:`verify`: ``ok`` and, when not, one line per problem."""

    ok: bool
    checked: int
    problems: list[str] = field(default_factory=list)
    head_seq: int = 0
    head_hash: str = GENESIS


def verify(chain: AuditChain) -> VerifyResult:
    """Check every link and hash of ``chain``; see the module docstring for what is detected."""
    problems: list[str] = []
    prev_seq, prev_hash = chain.anchor_seq, chain.anchor_hash
    for rec in chain.records:
        if rec.seq <= prev_seq:
            problems.append(f"record #{rec.seq}: out of order (follows #{prev_seq}): records were reordered")
        elif rec.seq != prev_seq + 1:
            missing = f"#{prev_seq + 1}" if rec.seq == prev_seq + 2 else f"#{prev_seq + 1}..#{rec.seq - 1}"
            problems.append(f"record {missing} missing: records were removed")
        if rec.prev_hash != prev_hash:
            problems.append(
                f"record #{rec.seq}: does not link to the record before it "
                f"(prev_hash {rec.prev_hash[:12]}…, expected {prev_hash[:12]}…): removed or reordered records"
            )
        expected = record_hash(
            rec.prev_hash, rec.seq, rec.ts, rec.event, rec.runbook, rec.run_id, rec.target, rec.actor, rec.data
        )
        if expected != rec.hash:
            problems.append(f"record #{rec.seq}: content does not match its hash: the record was edited")
        prev_seq, prev_hash = rec.seq, rec.hash
    if chain.head_seq > prev_seq:
        problems.append(
            f"the log ends at #{prev_seq} but its head names #{chain.head_seq}: records at the end were removed"
        )
    elif chain.head_seq and (chain.head_seq, chain.head_hash) != (prev_seq, prev_hash):
        problems.append(f"the head (#{chain.head_seq}) does not match the last record (#{prev_seq})")
    return VerifyResult(not problems, len(chain.records), problems, prev_seq, prev_hash)


def format_record(rec: AuditRecord) -> str:
    """One human-readable line per record, as printed by ``alert-router audit list``."""
    when = datetime.fromtimestamp(rec.ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    parts = [f"#{rec.seq}", when, rec.event]
    if rec.run_id is not None:
        parts.append(f"run={rec.run_id}")
    if rec.runbook:
        parts.append(f"runbook={rec.runbook}")
    if rec.target:
        parts.append(f"target={rec.target}")
    parts.append(f"by={rec.actor}")
    details = rec.details
    summary = details.get("summary") or details.get("reason")
    if summary:
        parts.append(f"— {summary}")
    return " ".join(parts)
