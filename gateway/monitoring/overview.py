"""The dashboard's figures, put together from the sampler (broker), the store (outbox, deliveries,
dead letters), the metrics (inbound adapters) and the routing configuration in force.

`Overview.as_json()` is what /monitor/api/overview answers and what the page polls: the structured
figures, plus `cells` (the text of every live figure by its key, the page's `data-k` attributes) and
`series` (the numbers of every chart by its key), so the page updates without rendering anything.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from gateway.bus.broker import BrokerHealth
from gateway.bus.topics import TopicSpec
from gateway.delivery.outbound import FORMATS
from gateway.inbound_log.arrival import ACCEPTED, DUPLICATE, REASONS, REFUSED
from gateway.monitoring import ledger
from gateway.monitoring.broker_view import BrokerSnapshot
from gateway.monitoring.dead_letters import OPEN, DeadLetters
from gateway.monitoring.ledger import ReceiverStats
from gateway.monitoring.mesh import MailboxRow
from gateway.monitoring.sampler import Sampler
from gateway.observability import metrics
from gateway.routing import Router
from gateway.store import Store
from gateway.store.breaches import Breach, Breaches

INBOUND_ADAPTERS = ("fhir-rest", "fhir-messaging", "hl7v2-mllp", "pad", "fhir-task", "status-topic")
ALL_TOPICS = "all topics"
NOT_APPLICABLE = "\N{EN DASH}"


@dataclass(frozen=True)
class TopicRow:
    name: str
    purpose: str
    partitions: list[tuple[int, int, int]]  # partition, beginning, end
    end: int
    per_minute: float | None


@dataclass(frozen=True)
class GroupRow:
    group: str
    topic: str
    lag: int
    partitions: list[tuple[int, int | None, int, int]]  # partition, committed, end, lag


@dataclass(frozen=True)
class AdapterRow:
    adapter: str
    direction: str  # in or out
    received: int | None = None
    accepted: int | None = None
    duplicate: int | None = None
    rejected: int | None = None
    delivered: int | None = None
    retried: int | None = None
    dead_lettered: int | None = None


@dataclass(frozen=True)
class ReceiverRow:
    name: str  # the receiving system: a directory endpoint, or a receiver the directory does not list
    format: str
    address: str
    services: list[str]
    health: str
    delivered: int
    retrying: int
    retries: int
    dead_lettered: int
    last_delivered: datetime | None
    last_error: str | None


@dataclass(frozen=True)
class Overview:
    at: datetime | None
    broker_reachable: bool
    notes: list[str]
    topics: list[TopicRow]
    groups: list[GroupRow]
    backlog: int
    backlog_oldest: datetime | None
    adapters: list[AdapterRow]
    receivers: list[ReceiverRow]
    open_dead_letters: int
    routing: dict[str, str]
    series: dict[str, list[float]] = field(default_factory=dict)
    embedded_broker: BrokerHealth | None = None  # its supervision; None: a cluster the gateway does not run
    #: refusals by inbound adapter and reason class (arrival.py), before the intake too
    refused: dict[str, dict[str, int]] = field(default_factory=dict)
    breaches: list[Breach] = field(default_factory=list)  # referrals waiting longer than allowed, open
    mesh: list[MailboxRow] = field(default_factory=list)  # the MESH mailboxes (gateway/monitoring/mesh.py)

    def cells(self) -> dict[str, str]:
        """The text of every live figure by its key (the page's data-k attributes)."""
        cells = {"backlog": str(self.backlog), "dead-letters": str(self.open_dead_letters)}
        cells["breaches"] = str(len(self.breaches))  # each breach its key too: a new one reloads the page
        cells.update({f"breach {b.id}": b.escalated_to or "" for b in self.breaches})
        cells["sampled"] = self.at.strftime("%H:%M:%S") if self.at else "not yet"
        if self.embedded_broker is not None:
            cells["broker process"] = _supervision(self.embedded_broker)
        for t in self.topics:
            cells[f"topic {t.name} end"] = str(t.end)
            cells[f"topic {t.name} rate"] = _rate(t.per_minute)
            cells.update({f"topic {t.name} p{p} end": str(end) for p, _, end in t.partitions})
        for g in self.groups:
            cells[f"group {g.group} {g.topic} lag"] = str(g.lag)
            cells.update({f"group {g.group} {g.topic} p{p}": _read_to(at, end) for p, at, end, _ in g.partitions})
        for a in self.adapters:  # an adapter name can be both ways (fhir-rest): the way is in the key
            cells.update({f"adapter {a.direction} {a.adapter} {k}": _count(v) for k, v in _adapter_counts(a).items()})
        for adapter, reasons in self.refused.items():
            cells.update({f"refused {adapter} {reason}": str(n) for reason, n in reasons.items()})
        for r in self.receivers:
            cells[f"receiver {r.name} health"] = r.health
            cells.update(
                {f"receiver {r.name} {k}": str(getattr(r, k)) for k in ("delivered", "retries", "dead_lettered")}
            )
            cells[f"receiver {r.name} last_delivered"] = _moment(r.last_delivered)
            cells[f"receiver {r.name} last_error"] = r.last_error or ""
        for m in self.mesh:
            cells.update(m.cells())
        return cells

    def structure(self) -> str:
        """What the page is made of: when the figures' keys change (a new topic or group), it reloads."""
        keys = "\n".join(sorted(self.cells()))
        return hashlib.sha1(keys.encode(), usedforsecurity=False).hexdigest()[:16]

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["cells"] = self.cells()
        data["structure"] = self.structure()
        return data


async def overview(
    sampler: Sampler,
    store: Store,
    router: Router,
    topics: list[TopicSpec],
    dead_letters: DeadLetters,
    embedded_broker: BrokerHealth | None = None,
) -> Overview:
    snapshot = sampler.snapshot
    backlog = await ledger.backlog(store)
    open_letters = await dead_letters.search(state=OPEN)
    return Overview(
        at=snapshot.at if snapshot else None,
        broker_reachable=bool(snapshot and snapshot.reachable),
        notes=list(snapshot.notes) if snapshot else ["the first sample is being taken"],
        topics=_topics(snapshot, topics, sampler),
        groups=_groups(snapshot),
        backlog=backlog.waiting,
        backlog_oldest=backlog.oldest,
        adapters=_inbound() + _outbound(await ledger.format_stats(store)),
        receivers=receivers(router, await ledger.receiver_stats(store)),
        open_dead_letters=len(open_letters),
        routing={"rules and criteria": router.version, "service directory": router.directory.version},
        series=_series(sampler, snapshot, topics),
        embedded_broker=embedded_broker,
        refused=_refused(),
        breaches=await Breaches(store).open(),
    )


def _supervision(health: BrokerHealth) -> str:
    """The embedded broker's process: running or down since when, and how often it was restarted."""
    state = "running" if health.running else f"down since {_moment(health.down_since)} ({health.last_exit})"
    if not health.restarts:
        return f"{state}, never restarted"
    times = "once" if health.restarts == 1 else f"{health.restarts} times"
    return f"{state}, restarted {times} (last at {_moment(health.last_restart_at)}; it {health.last_exit})"


def _topics(snapshot: BrokerSnapshot | None, specs: list[TopicSpec], sampler: Sampler) -> list[TopicRow]:
    rows = []
    for spec in specs:
        found = snapshot.topic(spec.name) if snapshot else None
        partitions = [(p.partition, p.beginning, p.end) for p in found.partitions] if found else []
        rate = sampler.samples.per_minute([spec.name])
        rows.append(TopicRow(spec.name, spec.purpose, partitions, found.end if found else 0, rate))
    return rows


def _groups(snapshot: BrokerSnapshot | None) -> list[GroupRow]:
    if snapshot is None:
        return []
    return [
        GroupRow(g.group, g.topic, g.lag, [(p.partition, p.committed, p.end, p.lag) for p in g.partitions])
        for g in snapshot.groups
    ]


def _inbound() -> list[AdapterRow]:
    """Every inbound message by what became of it (the inbound log counts each one, refused before
    the intake or in it); a duplicate is a duplicate, not a refusal."""
    logged = metrics.counter_values(metrics.INBOUND)
    return [
        AdapterRow(
            adapter=a,
            direction="in",
            received=int(sum(v for k, v in logged.items() if k[0] == a)),
            accepted=int(logged.get((a, ACCEPTED), 0)),
            duplicate=int(logged.get((a, DUPLICATE), 0)),
            rejected=int(logged.get((a, REFUSED), 0)),
        )
        for a in _inbound_adapters(logged)
    ]


def _inbound_adapters(logged: dict[tuple[str, ...], float]) -> list[str]:
    return list(INBOUND_ADAPTERS) + sorted({k[0] for k in logged} - set(INBOUND_ADAPTERS))


def _refused() -> dict[str, dict[str, int]]:
    counts: dict[tuple[str, str], float] = {}
    for (adapter, reason, _), n in metrics.counter_values(metrics.REFUSED).items():  # every sender together
        counts[adapter, reason] = counts.get((adapter, reason), 0) + n
    adapters = _inbound_adapters(metrics.counter_values(metrics.INBOUND))
    return {a: {r: int(counts.get((a, r), 0)) for r in REASONS} for a in adapters}


def _outbound(by_format: dict[str, ReceiverStats]) -> list[AdapterRow]:
    """Every outbound format, used or not, so the table (and the page's make-up) stays the same when
    a format delivers for the first time."""
    formats = list(FORMATS) + sorted(set(by_format) - set(FORMATS))
    stats = {fmt: by_format.get(fmt) or ReceiverStats(fmt) for fmt in formats}
    return [
        AdapterRow(fmt, "out", delivered=s.delivered, retried=s.retries, dead_lettered=s.dead_lettered)
        for fmt, s in stats.items()
    ]


def receivers(router: Router, stats: dict[str, ReceiverStats]) -> list[ReceiverRow]:
    """One row per receiving system: the directory's endpoints (each serving services), then any
    receiver deliveries name that the directory does not list."""
    by_endpoint: dict[str, tuple[str, str, list[str]]] = {}
    for service in router.directory.services():
        if service.endpoints:
            endpoint = service.endpoints[0]
            by_endpoint.setdefault(endpoint.name, (endpoint.format, endpoint.address, []))[2].append(service.id)
    listed = {s for _, _, services in by_endpoint.values() for s in services}
    rows = [
        _receiver_row(name, fmt, address, services, stats) for name, (fmt, address, services) in by_endpoint.items()
    ]
    others = sorted(set(stats) - listed)
    return rows + [_receiver_row(name, "", "not in the service directory", [name], stats) for name in others]


def _receiver_row(
    name: str, fmt: str, address: str, services: list[str], stats: dict[str, ReceiverStats]
) -> ReceiverRow:
    mine = [stats[s] for s in services if s in stats]
    latest = max(mine, key=lambda s: s.last_change or datetime.min.replace(tzinfo=UTC), default=None)
    delivered_at = [s.last_delivered for s in mine if s.last_delivered]
    return ReceiverRow(
        name=name,
        format=fmt,
        address=address,
        services=services,
        health=latest.health if latest else "idle",
        delivered=sum(s.delivered for s in mine),
        retrying=sum(s.retrying for s in mine),
        retries=sum(s.retries for s in mine),
        dead_lettered=sum(s.dead_lettered for s in mine),
        last_delivered=max(delivered_at, default=None),
        last_error=latest.last_error if latest else None,
    )


def _series(sampler: Sampler, snapshot: BrokerSnapshot | None, specs: list[TopicSpec]) -> dict[str, list[float]]:
    names = [t.name for t in specs]
    series: dict[str, list[float]] = {ALL_TOPICS: sampler.samples.rate_series(names)}
    series.update({f"topic {n}": sampler.samples.rate_series([n]) for n in names})
    for g in snapshot.groups if snapshot else ():
        series[f"group {g.group} {g.topic}"] = [float(v) for v in sampler.samples.lag_series(f"{g.group} {g.topic}")]
    series["backlog"] = [float(v) for v in sampler.samples.backlog_series()]
    return series


def _adapter_counts(a: AdapterRow) -> dict[str, int | None]:
    keys = ("received", "accepted", "duplicate", "rejected", "delivered", "retried", "dead_lettered")
    return {k: getattr(a, k) for k in keys}


def _count(value: int | None) -> str:
    return NOT_APPLICABLE if value is None else str(value)


def _read_to(committed: int | None, end: int) -> str:
    return f"{NOT_APPLICABLE if committed is None else committed}/{end}"


def _moment(at: datetime | None) -> str:
    return at.strftime("%d %b %H:%M:%S") if at else NOT_APPLICABLE


def _rate(value: float | None) -> str:
    return NOT_APPLICABLE if value is None else f"{value:.1f}"
