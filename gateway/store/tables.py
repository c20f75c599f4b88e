"""The store's schema, one definition for SQLite and PostgreSQL (SQLAlchemy Core)."""

from collections.abc import Collection
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    and_,
    tuple_,
)
from sqlalchemy.engine import Dialect

# Named constraints: Alembic's batch mode (SQLite) can only alter or drop a constraint it can name.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(TypeDecorator[datetime]):
    """Timestamps go in and come out as aware UTC datetimes, on SQLite (which keeps no zone) too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL wants BIGINT for a long-lived log.
Seq = BigInteger().with_variant(Integer(), "sqlite")

referrals = Table(
    "referrals",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("identifier_system", String(255), nullable=False),
    Column("identifier_value", String(255), nullable=False),
    Column("nhs_number", String(16), nullable=False, index=True),
    Column("requester", String(16), index=True),
    Column("performer", String(16), index=True),
    Column("status", String(32), nullable=False, index=True),
    Column("version", Integer, nullable=False),
    Column("resource", Text, nullable=False),
    Column("channel", String(32), nullable=False),
    Column("sender", String(255), nullable=False),
    Column("correlation_id", String(128), nullable=False, index=True),
    Column("topic", String(255), nullable=False),
    Column("rule", String(255), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    UniqueConstraint("identifier_system", "identifier_value", name="uq_referral_identifier"),
)

# Ids of messages already processed, per sender (BaRS X-Request-Id, HL7 MSH-10), so a resend is
# answered again instead of accepted twice.
processed_messages = Table(
    "processed_messages",
    metadata,
    Column("sender", String(255), primary_key=True),
    Column("message_id", String(255), primary_key=True),
    Column("referral_id", String(64), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

outbox = Table(
    "outbox",
    metadata,
    Column("seq", Seq, primary_key=True, autoincrement=True),
    Column("event_id", String(64), nullable=False, unique=True),
    Column("referral_id", String(64), nullable=False, index=True),
    Column("topic", String(255), nullable=False),
    Column("key", String(64), nullable=False),
    Column("headers", Text, nullable=False),
    Column("value", Text, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("published_at", UtcDateTime()),
    Column("partition", Integer),
    Column("offset", BigInteger),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
)
Index("ix_outbox_unpublished", outbox.c.published_at, outbox.c.seq)

# Every hop of a referral, in order: what a trace shows.
history = Table(
    "referral_history",
    metadata,
    Column("seq", Seq, primary_key=True, autoincrement=True),
    Column("referral_id", String(64), nullable=False, index=True),
    Column("at", UtcDateTime(), nullable=False),
    Column("step", String(64), nullable=False),
    Column("detail", Text, nullable=False),
)

# The referral's FHIR Task: its status as the receiver moves it, current version here ...
tasks = Table(
    "tasks",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("referral_id", String(64), nullable=False, unique=True),
    Column("status", String(32), nullable=False, index=True),
    Column("owner", String(16), index=True),
    Column("requester", String(16), index=True),
    Column("nhs_number", String(16), nullable=False, index=True),
    Column("version", Integer, nullable=False),
    Column("resource", Text, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

# ... and every version, so the referrer can read the whole history.
task_versions = Table(
    "task_versions",
    metadata,
    Column("task_id", String(64), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("resource", Text, nullable=False),
    Column("at", UtcDateTime(), nullable=False),
)

# What delivery did with each (event, receiver): the key makes a redelivered event harmless, and
# `retry_id` names the one retry record still to act on, so a stale copy of it is recognised.
deliveries = Table(
    "deliveries",
    metadata,
    Column("seq", Seq, primary_key=True, autoincrement=True),
    Column("event_id", String(64), nullable=False),
    Column("receiver", String(128), nullable=False),
    Column("referral_id", String(64), nullable=False),
    Column("event_type", String(128), nullable=False),
    Column("format", String(32)),
    Column("status", String(32), nullable=False),  # delivered, retrying, dead-lettered
    Column("attempts", Integer, nullable=False),
    Column("version", Integer, nullable=False),  # optimistic concurrency between consumers
    Column("retry_id", String(64)),
    Column("next_attempt_at", UtcDateTime()),
    Column("origin_topic", String(255), nullable=False),
    Column("origin_partition", Integer, nullable=False),
    Column("origin_offset", BigInteger, nullable=False),
    Column("last_error", Text),
    Column("receipt", Text),  # what the receiver answered (Location, ACK control id)
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    UniqueConstraint("event_id", "receiver", name="uq_delivery_event_receiver"),
)
Index("ix_deliveries_referral", deliveries.c.referral_id, deliveries.c.receiver, deliveries.c.status)

# Partners' systems (OAuth2 clients) and the people who sign in to the web pages. Secrets and
# passwords are kept only as salted scrypt hashes (gateway/auth/hashing.py).
auth_clients = Table(
    "auth_clients",
    metadata,
    Column("client_id", String(64), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("ods", String(16), nullable=False),
    Column("scopes", Text, nullable=False),  # space-separated
    Column("all_organisations", Boolean, nullable=False),
    Column("roles", Text, nullable=False),  # space-separated, e.g. patient-data-viewer
    Column("secret_hash", Text, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

auth_users = Table(
    "auth_users",
    metadata,
    Column("username", String(64), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("ods", String(16), nullable=False),
    Column("scopes", Text, nullable=False),
    Column("all_organisations", Boolean, nullable=False),
    Column("roles", Text, nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

# The audit trail: one FHIR AuditEvent per action, append-only (no code path updates or deletes a
# row; the migration adds triggers that refuse it). `audit_entities` indexes what each event is about,
# with the referral's organisations, so an organisation can be shown what touched its referrals.
audit_events = Table(
    "audit_events",
    metadata,
    Column("seq", Seq, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("recorded", UtcDateTime(), nullable=False, index=True),
    Column("action", String(32), nullable=False),
    Column("outcome", String(2), nullable=False, index=True),
    Column("agent", String(255), nullable=False, index=True),
    Column("agent_ods", String(16), index=True),
    Column("source_address", String(64)),
    Column("resource", Text, nullable=False),
)

audit_entities = Table(
    "audit_entities",
    metadata,
    Column("event_id", String(64), primary_key=True),
    Column("reference", String(128), primary_key=True),
    Column("requester", String(16), index=True),
    Column("performer", String(16), index=True),
)
Index("ix_audit_entities_reference", audit_entities.c.reference)


# Every message that arrived on an inbound channel, with what became of it: the bytes as received,
# who sent it from where, and the outcome (accepted as which referral, a duplicate of which, refused
# with every issue and its location). Append-only: a trigger refuses UPDATE; the retention job deletes
# what is older than `retention.inbound_days`. A resubmission is a row of its own naming the original.
inbound_messages = Table(
    "inbound_messages",
    metadata,
    Column("seq", Seq, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("received_at", UtcDateTime(), nullable=False, index=True),
    Column("channel", String(32), nullable=False, index=True),
    Column("sender", String(255), nullable=False),
    Column("source_address", String(255)),
    Column("destination", String(255)),
    Column("control_id", String(255), index=True),  # MSH-10, X-Request-Id, the record's ce_id
    Column("correlation_id", String(128)),
    Column("content_type", String(128)),
    Column("raw", LargeBinary, nullable=False),
    Column("size", Integer, nullable=False),
    Column("outcome", String(16), nullable=False, index=True),  # accepted, duplicate, refused, failed
    Column("reason", String(32)),  # the refusal's class (gateway/inbound/arrival.py)
    Column("referral_id", String(64), index=True),
    Column("nhs_number", String(16), index=True),
    Column("issues", Text, nullable=False),  # JSON: [{"diagnostics", "expression", "code"}]
    Column("resubmit_of", String(64), index=True),
    Column("resubmitted_by", String(255)),
    Column("edit_diff", Text),
)
Index("ix_inbound_messages_sender_received", inbound_messages.c.sender, inbound_messages.c.received_at)


def pairs_among(first: Column[str], second: Column[str], pairs: Collection[tuple[str, str]]) -> ColumnElement[bool]:
    """Rows whose (first, second) is one of `pairs`. SQLite scans the whole table for a row-value IN
    (`(a, b) IN (VALUES ...)`) alone, so a batch's duplicate check grew with the table; with each
    column also IN its own values, both stores search the two-column index and keep the exact pairs
    from what it finds."""
    return and_(
        first.in_(sorted({a for a, _ in pairs})),
        second.in_(sorted({b for _, b in pairs})),
        tuple_(first, second).in_(list(pairs)),
    )
