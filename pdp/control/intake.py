"""What sidecars send back (DESIGN §7.4): status reports and decision-log batches, and the views
over them — the fleet and recent decisions (§8.2).

Reports and logs are telemetry, not configuration: they are stored (latest status per instance,
decision events with retention) but not audited, or the audit log would be mostly heartbeats.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg

from pdp.control.auth import Permission, Principal
from pdp.control.database import MAX_BIGINT
from pdp.control.errors import RequestError
from pdp.core import FieldError

MAX_ID_LENGTH = 128
MAX_EVENTS_PER_BATCH = 10_000
# The revision label of sidecars that have no bundle yet (state "starting").
NO_REVISION = "none"


# The fields of a sidecar's last error (pdp.runtime.health.LastError) and how much of each is kept.
_ERROR_FIELDS = frozenset({"reason", "message", "source", "at"})
MAX_ERROR_TEXT = 1000


def _bad(field: str, message: str) -> RequestError:
    return RequestError(f"invalid {field}: {message}", [FieldError(field, message)])


def _instance_id(value: object, field: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH:
        raise _bad(field, f"expected a string of 1-{MAX_ID_LENGTH} characters")
    return value


def check_status_report(report: dict[str, Any]) -> dict[str, Any]:
    """The fields of a status report the fleet view needs, validated."""
    sequence = report.get("sequence")
    if sequence is not None and (not isinstance(sequence, int) or isinstance(sequence, bool)
                                 or not 0 <= sequence <= MAX_BIGINT):
        raise _bad("sequence", f"expected an integer from 0 to {MAX_BIGINT} or null")
    revision = report.get("revision")
    if revision is not None and not isinstance(revision, str):
        raise _bad("revision", "expected a string or null")
    state = report.get("state")
    if not isinstance(state, str) or not state:
        raise _bad("state", "expected a health state such as 'fresh'")
    labels = report.get("labels", {})
    if not isinstance(labels, dict):
        raise _bad("labels", "expected an object")
    last_error = _last_error(report.get("last_error"))
    return {"instance_id": _instance_id(report.get("instance_id"), "instance_id"),
            "labels": labels, "revision": revision, "sequence": sequence, "state": state,
            "errors": [last_error] if last_error else []}


def _last_error(value: object) -> dict[str, str] | None:
    """A sidecar's last error as the fleet view shows it: its string fields, each shortened.
    Any other shape is refused: a string here crashed `pdp admin fleet` and `publish --wait`,
    and a message of megabytes (a hostile bundle's key id, quoted) filled every fleet answer."""
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("message"), str):
        raise _bad("last_error", "expected null or an object with a string 'message'")
    return {key: _shortened(field) for key, field in value.items()
            if key in _ERROR_FIELDS and isinstance(field, str)}


def _shortened(text: str) -> str:
    return text if len(text) <= MAX_ERROR_TEXT else text[:MAX_ERROR_TEXT] + "…"


def revisions_of(sidecars: list[dict[str, Any]]) -> dict[str, int]:
    """How many of `sidecars` run each revision; sidecars without a bundle count as "none"."""
    counts: dict[str, int] = {}
    for sidecar in sidecars:
        revision = sidecar["revision"] or NO_REVISION
        counts[revision] = counts.get(revision, 0) + 1
    return counts


class Intake:
    """Stores sidecar reports and decision events; answers the fleet and decision queries."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def record_status(self, actor: Principal, report: dict[str, Any]) -> None:
        """Keep `report` as the latest status of its instance."""
        actor.require(Permission.REPORT)
        fields = check_status_report(report)
        await self._pool.execute(
            "INSERT INTO sidecars (instance_id, labels, revision, sequence, state, errors, report,"
            " last_seen) VALUES ($1, $2, $3, $4, $5, $6, $7, now())"
            " ON CONFLICT (instance_id) DO UPDATE SET labels = $2, revision = $3, sequence = $4,"
            " state = $5, errors = $6, report = $7, last_seen = now()",
            fields["instance_id"], fields["labels"], fields["revision"], fields["sequence"],
            fields["state"], fields["errors"], report,
        )

    async def record_decisions(self, actor: Principal, events: object) -> int:
        """Store a batch of decision events (OPA's upload body: a JSON array); return how many."""
        actor.require(Permission.REPORT)
        if not isinstance(events, list):
            raise _bad("", "expected a JSON array of decision events")
        if len(events) > MAX_EVENTS_PER_BATCH:
            raise _bad("", f"at most {MAX_EVENTS_PER_BATCH} events per upload")
        rows = []
        for index, event in enumerate(events):
            if not isinstance(event, dict):
                raise _bad(str(index), "expected a decision event object")
            rows.append((_instance_id(event.get("decision_id"), f"{index}.decision_id"),
                         _instance_id(event.get("instance_id", actor.name),
                                      f"{index}.instance_id"), event))
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.executemany(
                "INSERT INTO decision_logs (decision_id, instance_id, event) VALUES ($1, $2, $3)",
                rows)
        return len(rows)

    async def fleet(self, actor: Principal, *, seen_within: float) -> dict[str, Any]:
        """Sidecars seen in the last `seen_within` seconds, how many run the latest bundle, and
        the stragglers (every sidecar on another sequence) with their revision, state and error."""
        actor.require(Permission.READ)
        async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            latest = await conn.fetchrow(
                "SELECT sequence, revision FROM bundles ORDER BY sequence DESC LIMIT 1")
            rows = await conn.fetch(
                "SELECT instance_id, labels, revision, sequence, state, errors, last_seen"
                " FROM sidecars WHERE last_seen >= now() - $1::interval ORDER BY instance_id",
                timedelta(seconds=seen_within))
        sidecars = [{"instance_id": r["instance_id"], "labels": r["labels"],
                     "revision": r["revision"], "sequence": r["sequence"], "state": r["state"],
                     "last_error": (r["errors"] or [None])[0],
                     "last_seen": r["last_seen"].isoformat()} for r in rows]
        current = [s for s in sidecars
                   if latest is not None and s["sequence"] == latest["sequence"]]
        return {
            "latest": None if latest is None else {"sequence": latest["sequence"],
                                                    "revision": latest["revision"]},
            "total": len(sidecars), "on_latest": len(current),
            "summary": (f"{len(current)} of {len(sidecars)} on revision {latest['revision']}"
                        if latest is not None else f"nothing published; {len(sidecars)} sidecars"),
            "by_revision": revisions_of(sidecars),
            "stragglers": [s for s in sidecars if s not in current],
            "sidecars": sidecars,
        }

    async def revision_counts(self, *, seen_within: float) -> dict[str, int]:
        """How many sidecars seen in the last `seen_within` seconds run each revision (metrics)."""
        rows = await self._pool.fetch(
            "SELECT coalesce(revision, '') AS revision, count(*) AS n FROM sidecars"
            " WHERE last_seen >= now() - $1::interval GROUP BY 1", timedelta(seconds=seen_within))
        return {r["revision"] or NO_REVISION: int(r["n"]) for r in rows}

    async def expire_sidecars(self, *, older_than: float) -> list[str]:
        """Delete the records of sidecars silent for more than `older_than` seconds; return
        their instance ids. A sidecar that reports again later simply reappears."""
        rows = await self._pool.fetch(
            "DELETE FROM sidecars WHERE last_seen < now() - $1::interval RETURNING instance_id",
            timedelta(seconds=older_than))
        return sorted(r["instance_id"] for r in rows)

    async def recent_decisions(self, actor: Principal, *, limit: int,
                               decision_id: str | None = None) -> list[dict[str, Any]]:
        """The newest decision events, or those with `decision_id`."""
        actor.require(Permission.READ)
        rows = await self._pool.fetch(
            "SELECT event, received_at FROM decision_logs"
            " WHERE $2::text IS NULL OR decision_id = $2 ORDER BY id DESC LIMIT $1",
            limit, decision_id)
        return [{**r["event"], "received_at": r["received_at"].isoformat()} for r in rows]

    async def prune_decisions(self, *, older_than: float) -> int:
        """Delete decision events received more than `older_than` seconds ago (retention)."""
        deleted = await self._pool.fetchval(
            "WITH gone AS (DELETE FROM decision_logs WHERE received_at < now() - $1::interval"
            " RETURNING 1) SELECT count(*) FROM gone", timedelta(seconds=older_than))
        return int(deleted)
