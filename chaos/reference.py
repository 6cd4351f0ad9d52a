"""The independent reference: what the chaos client sent and what the platform must therefore
answer. It shares no code with the platform (its own transition table, its own sums)."""

from dataclasses import dataclass, field
from typing import Any

HOUR_MS = 3_600_000
COUNTS = ("views", "likes", "comments", "shares", "saves")

TRANSITIONS: dict[str, tuple[str, ...]] = {
    "draft": ("scheduled", "cancelled"),
    "scheduled": ("live", "cancelled"),
    "live": ("paused", "completed", "cancelled"),
    "paused": ("live", "cancelled"),
    "completed": (),
    "cancelled": (),
}


@dataclass
class Row:
    campaign_id: str
    timestamp_ms: int
    counts: dict[str, int]


@dataclass
class ExpectedCampaign:
    id: str
    status: str = "draft"
    version: int = 1
    budget: float | None = None


@dataclass
class Reference:
    events: dict[str, Row] = field(default_factory=dict)
    batch_rows: dict[str, Row] = field(default_factory=dict)
    campaigns: dict[str, ExpectedCampaign] = field(default_factory=dict)
    events_sent: int = 0
    duplicates_sent: int = 0
    csv_rows_sent: int = 0

    def add_event(self, event: dict[str, Any]) -> None:
        """Record one event as sent (call again for every copy: the first one counts)."""
        self.events_sent += 1
        if event["eventId"] in self.events:
            self.duplicates_sent += 1
            return
        self.events[event["eventId"]] = Row(
            event["campaignId"], int(event["timestamp"]), {k: int(event.get(k, 0)) for k in COUNTS}
        )

    def add_csv_row(self, key: str, row: Row) -> None:
        """A CSV row, keyed by its full content: loading the same content again stores nothing."""
        self.csv_rows_sent += 1
        self.batch_rows.setdefault(key, row)

    def metrics(self, campaign_id: str, now_ms: int) -> dict[str, dict[str, float]] | None:
        rows = [
            r
            for r in (*self.events.values(), *self.batch_rows.values())
            if r.campaign_id == campaign_id
        ]
        if not rows:
            return None
        out: dict[str, dict[str, float]] = {}
        for window, since in (
            ("window1h", now_ms - HOUR_MS),
            ("window24h", now_ms - 24 * HOUR_MS),
            ("total", None),
        ):
            inside = [r for r in rows if since is None or r.timestamp_ms >= since]
            sums: dict[str, float] = {k: sum(r.counts[k] for r in inside) for k in COUNTS}
            sums["engagements"] = sums["likes"] + sums["comments"] + sums["shares"]
            sums["engagementRate"] = (
                round(sums["engagements"] / sums["views"] * 100, 4) if sums["views"] else 0.0
            )
            sums["events"] = len(inside)
            out[window] = sums
        return out
