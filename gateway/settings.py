"""One typed settings object for the whole gateway, read from environment variables and an optional
TOML file (`GATEWAY_CONFIG_FILE`); the environment wins.

Sections map to variables by their prefix: `KAFKA_BOOTSTRAP_SERVERS` is `kafka.bootstrap_servers`,
`API_PORT` is `api.port`, `STORE_URL` is `store.url`. Defaults run a whole gateway on a laptop:
embedded broker, SQLite in `./data`, HTTP on 127.0.0.1:8080, MLLP on 127.0.0.1:2575.
"""

from __future__ import annotations

import json
import os
import re
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

SCHEMAS_DIR = Path(__file__).resolve().parent.parent / "schemas"
_ODS_CODE = re.compile(r"^[A-Z0-9]{3,9}$")  # the shape gateway.canonical.ods checks


def topic_roles(schemas_dir: Path) -> dict[str, list[str]]:
    """The topic names schemas/topics.json gives each role (`referral`, `status`, `status-updates`,
    `retry`, `dead-letter`, `audit`), in the file's order: the one place a topic is named."""
    roles: dict[str, list[str]] = {}
    for topic in json.loads((schemas_dir / "topics.json").read_text())["topics"]:
        roles.setdefault(topic["role"], []).append(topic["name"])
    return roles


@cache
def _packaged_roles() -> dict[str, list[str]]:
    return topic_roles(SCHEMAS_DIR)


def _packaged(role: str) -> str:
    return _packaged_roles()[role][0]


def delivered_topics(roles: dict[str, list[str]]) -> list[str]:
    """What delivery reads: the referral topics, and the status topic (Task changes back to referrers)."""
    return [*roles["referral"], *roles["status"]]


class KafkaSettings(BaseModel):
    """Kafka: empty `bootstrap_servers` means the gateway runs the embedded Tansu broker itself."""

    bootstrap_servers: str | None = None
    embedded_host: str = "127.0.0.1"
    embedded_port: int = 9092
    client_id: str = "referral-gateway"
    acks: Literal["all", "1", "0"] = "all"
    enable_idempotence: bool | None = None  # None: on for Apache Kafka, off for Tansu (refuses it)
    replication_factor: int | None = None  # None: 1 embedded, 3 on a cluster
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    request_timeout_ms: int = 30_000
    consumer_group_prefix: str = "referral-gateway"
    session_timeout_ms: int | None = None  # None: 2 s embedded (fast local failover), 45 s on a cluster

    @property
    def embedded(self) -> bool:
        return not self.bootstrap_servers

    @property
    def servers(self) -> str:
        return self.bootstrap_servers or f"{self.embedded_host}:{self.embedded_port}"

    @property
    def idempotent(self) -> bool:
        return self.enable_idempotence if self.enable_idempotence is not None else not self.embedded

    @property
    def session_timeout(self) -> int:
        return self.session_timeout_ms or (2_000 if self.embedded else 45_000)

    @property
    def replicas(self) -> int:
        return self.replication_factor or (1 if self.embedded else 3)

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> KafkaSettings:
        if not self.embedded and self.acks != "all":
            raise ValueError("a Kafka cluster must be written with acks=all (KAFKA_ACKS)")
        if self.security_protocol.startswith("SASL") and not (self.sasl_username and self.sasl_password):
            raise ValueError("SASL needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD")
        return self


class ApiSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8080
    base_url: str | None = None  # how callers reach us, for Location headers; default from host:port
    max_body_bytes: int = 5 * 1024 * 1024
    reuse_port: bool = False  # SO_REUSEPORT: `serve --workers N` sets it in each worker process

    @property
    def public_url(self) -> str:
        return (self.base_url or f"http://{self.host}:{self.port}").rstrip("/")


class MllpSender(BaseModel):
    """One HL7 v2 sender: its sending facility (MSH-4.1) and the addresses it may connect from."""

    facility: str
    sources: list[str] = Field(default_factory=list)  # IPs or CIDRs; empty: wherever `allowed_sources` allows


class Hl7SenderOrganisations(BaseModel):
    """The organisations a sender's REF^I12 stand for when they carry no PRD segments (a PAS often sends
    MSH, EVN, RF1 and PID only), matched on MSH-4.1 and MSH-6.1. A PRD the message does carry wins;
    without an entry such a message is refused, naming the PRD it lacks."""

    sending_facility: str  # MSH-4.1
    receiving_facility: str  # MSH-6.1
    referring_ods: str  # the requester, when there is no PRD RP
    receiving_ods: str  # the performer, when there is no PRD RT

    @field_validator("referring_ods", "receiving_ods")
    @classmethod
    def _ods_code(cls, value: str) -> str:
        code = value.strip().upper()
        if not _ODS_CODE.fullmatch(code):
            raise ValueError(f"'{value}' is not an ODS code (MLLP_SENDER_ORGANISATIONS)")
        return code

    @property
    def key(self) -> tuple[str, str]:
        return self.sending_facility.strip().upper(), self.receiving_facility.strip().upper()


class MllpSettings(BaseModel):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 2575
    max_frame_bytes: int = 1024 * 1024
    idle_timeout_s: float = 300.0
    allowed_sources: list[str] = Field(default_factory=list)  # IPs or CIDRs; empty: any
    # Known senders (MLLP_SENDERS, JSON); empty: any MSH-4. Set: MSH-4 must name one, from its sources.
    senders: list[MllpSender] = Field(default_factory=list)
    # Organisations for REF^I12 without PRD segments, per sender (MLLP_SENDER_ORGANISATIONS, JSON); empty: none.
    sender_organisations: list[Hl7SenderOrganisations] = Field(default_factory=list)
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None
    reuse_port: bool = False  # SO_REUSEPORT: `serve --workers N` sets it in each worker process

    @model_validator(mode="after")
    def _one_entry_per_sender(self) -> MllpSettings:
        keys = [entry.key for entry in self.sender_organisations]
        if len(keys) != len(set(keys)):
            raise ValueError("MLLP_SENDER_ORGANISATIONS names one MSH-4 and MSH-6 pair more than once")
        return self


class StoreSettings(BaseModel):
    url: str | None = None  # default: SQLite in the data directory; or postgresql+asyncpg://user@host/db
    db_schema: str | None = None  # PostgreSQL: keep the gateway's tables in this schema (created if missing)
    batch_max: int = 256  # referrals committed in one transaction at most


class RelaySettings(BaseModel):
    batch_size: int = 500
    poll_interval_s: float = 1.0
    retry_backoff_s: float = 0.5
    retry_backoff_max_s: float = 15.0
    ack_timeout_s: float = 10.0  # a batch not acknowledged by then is sent again after recovery


class DeliveryGroup(BaseModel):
    """One consumer group (`<KAFKA_CONSUMER_GROUP_PREFIX>-<group_id>`) and the receivers (directory
    service ids) it delivers to; empty: every receiver no other group names. Gateway processes sharing
    a group share its load."""

    group_id: str
    receivers: list[str] = Field(default_factory=list)


class DeliverySettings(BaseModel):
    """Outbound delivery: consumer groups read the referral topics and deliver each event to its receiver."""

    enabled: bool = True
    # the referral topics, and the status topic: Task changes back to the referrer (schemas/topics.json)
    topics: list[str] = Field(default_factory=lambda: delivered_topics(_packaged_roles()))
    groups: list[DeliveryGroup] = Field(default_factory=lambda: [DeliveryGroup(group_id="delivery")])
    status_updates_group: str = "status-updates"  # the group reading receivers' Task updates (TopicSettings)
    retry_topic: str = Field(default_factory=lambda: _packaged("retry"))
    dead_letter_topic: str = Field(default_factory=lambda: _packaged("dead-letter"))
    max_attempts: int = Field(default=8, ge=1)  # the first delivery counts as one
    backoff_base_s: float = Field(default=5.0, gt=0)
    backoff_max_s: float = Field(default=900.0, gt=0)
    backoff_jitter: float = Field(default=0.5, ge=0, le=1)  # the share of each delay that is random
    http_timeout_s: float = Field(default=15.0, gt=0)
    mllp_timeout_s: float = Field(default=15.0, gt=0)  # send and wait for the ACK
    mllp_connect_timeout_s: float = Field(default=5.0, gt=0)  # open a connection to an MLLP receiver
    mllp_max_ack_bytes: int = Field(default=64 * 1024, ge=256)  # a longer answer closes the connection
    max_waiting: int = Field(default=1000, ge=1)  # retries held in memory per partition before it pauses
    # Deliveries sent to one receiver at once (its HTTP connections and MLLP connections, at most as many).
    # Events of one key (the patient) still go one after another, in offset order; other keys in parallel.
    in_flight_per_receiver: int = Field(default=8, ge=1)
    max_in_flight: int = Field(default=64, ge=1)  # records one group member handles at once, all receivers
    # Connections open to one MLLP receiver (each carries one message at a time, up to its ACK). Many HL7
    # v2 interfaces take one connection per sender, so one by default; more where the receiver allows.
    mllp_connections_per_receiver: int = Field(default=1, ge=1)
    # Where a delivery group with no committed offsets starts. "earliest": nothing published is ever
    # skipped (the ledger keeps a second look harmless). "latest" only for throwaway groups (tests, demos)
    # on a broker with history they must not replay.
    new_group_start: Literal["earliest", "latest"] = "earliest"
    # A retrying delivery whose retry is this long past due is taken for lost by the broker, and its
    # retry is published again (delivery/overdue.py); a copy that was only late the ledger answers.
    overdue_retry_s: float = Field(default=300.0, gt=0)

    @model_validator(mode="after")
    def _groups_do_not_overlap(self) -> DeliverySettings:
        named = [r for g in self.groups for r in g.receivers]
        if len(named) != len(set(named)):
            raise ValueError("a receiver is named by more than one delivery group (DELIVERY_GROUPS)")
        if sum(1 for g in self.groups if not g.receivers) > 1:
            raise ValueError("only one delivery group may take every other receiver (empty receivers)")
        if len({g.group_id for g in self.groups}) != len(self.groups):
            raise ValueError("delivery group ids must differ (DELIVERY_GROUPS)")
        return self


class TopicSettings(BaseModel):
    """The topics outside delivery's own (TOPICS_STATUS, TOPICS_STATUS_UPDATES, TOPICS_AUDIT). Each name
    left at its default is the one schemas/topics.json (in SCHEMAS_DIR) gives its role."""

    status: str = Field(default_factory=lambda: _packaged("status"))  # Task events back to referrers
    status_updates: str = Field(default_factory=lambda: _packaged("status-updates"))  # receivers' Task updates
    audit: str = Field(default_factory=lambda: _packaged("audit"))  # FHIR AuditEvents


class PadSettings(BaseModel):
    """The IAPT prescription pad (/pad): where its referrals go and what a positive risk screen tells
    the person filling it in. The crisis steps are local: set them to the area's crisis route."""

    iapt_service_ods: str = "NQ1IA"
    iapt_service_name: str = "NHS Talking Therapies"
    # Who stands as requester of a self-referral (UK Core wants an ODS code there); default: the IAPT service.
    self_referral_requester_ods: str | None = None
    crisis_steps: list[str] = Field(
        default_factory=lambda: [
            "If the patient's life is at immediate risk, call 999 and stay with them.",
            "Otherwise call the local 24-hour mental health crisis line now: NHS 111, mental health option, "
            "and tell them the patient has current thoughts of self-harm or suicide.",
            "Tell the patient's GP practice today and record the risk screen in your clinical notes.",
            "This referral has gone to NHS Talking Therapies as urgent for their duty team; it does not replace "
            "the steps above.",
        ]
    )
    self_referral_crisis_steps: list[str] = Field(
        default_factory=lambda: [
            "If you might act on these thoughts or you are not safe now, call 999 or go to A&E.",
            "Call NHS 111 and choose the mental health option, at any time, day or night.",
            "You can talk to Samaritans on 116 123, free, 24 hours a day.",
            "We have sent your referral to NHS Talking Therapies as urgent. Their duty team will contact you, "
            "but please use the numbers above if you need help before then.",
        ]
    )

    @property
    def self_referral_requester(self) -> str:
        return self.self_referral_requester_ods or self.iapt_service_ods


class MonitorSettings(BaseModel):
    """The integration engineers' tools (/monitor, `referral-gateway lag|trace|dlq|tail`)."""

    sample_interval_s: float = Field(default=5.0, gt=0)  # how often the broker's offsets are sampled
    history_s: float = Field(default=3600.0, gt=0)  # how far back the dashboard's charts reach (kept in memory)
    # Whether everyone may see patient identifiers unmasked (message browser, trace, `tail --unmasked`).
    # Off: only a person or partner with the `patient-data-viewer` role may (gateway/monitoring/access.py).
    unmasked_allowed: bool = False
    browse_limit: int = Field(default=100, ge=1, le=1000)  # messages shown at most per page of the browser


class RetentionSettings(BaseModel):
    """How long the store keeps what it no longer needs; the referral and its Task are kept (they are
    the record). Kafka's own retention is the cluster's topic configuration."""

    enabled: bool = True
    interval_s: float = Field(default=3600.0, gt=0)  # how often the pruning job runs
    outbox_days: float = Field(default=14.0, gt=0)  # published events (a dead letter: once replayed or discarded)
    history_days: float = Field(default=400.0, gt=0)  # a referral's history and delivery records, after its last step
    inbound_days: float = Field(default=90.0, gt=0)  # the inbound message log (every message, as received)

    @model_validator(mode="after")
    def _history_outlives_messages(self) -> RetentionSettings:
        if self.history_days < self.outbox_days:
            raise ValueError("histories must be kept at least as long as messages (RETENTION_HISTORY_DAYS)")
        return self


class WatcherSettings(BaseModel):
    """The wait watcher (gateway/safety/watcher.py): how often it looks for referrals waiting at a Task
    status longer than their service's limit (schemas/directory/wait-limits.json). A breach is raised,
    escalated and cleared at most one interval late; the limits themselves are data, not settings."""

    enabled: bool = True
    interval_s: float = Field(default=60.0, gt=0)


class InboundSettings(BaseModel):
    """The inbound message log (INBOUND_*): every message that arrives, with what became of it (the
    monitor's Inbound page, `referral-gateway inbound`). How long it is kept: RETENTION_INBOUND_DAYS."""

    enabled: bool = True
    bulk_max: int = Field(default=1000, ge=1, le=100_000)  # messages one bulk resubmission sends at most


class IntakeSettings(BaseModel):
    """How the intake treats the ServiceRequests the gateway's own mappings build (INTAKE_*).

    `validate_mapped`: validate the HL7 v2 and pad mappings' ServiceRequest JSON with fhir.resources
    on every message, as well. Off by default: the mappings are valid by construction (each builder
    writes only values that fit their FHIR types, and a property test over tens of thousands of
    generated messages holds every accepted mapping to fhir.resources R4B), and that validation was
    the largest single share of an HL7 v2 referral's CPU. Switch it on to check a mapping of your own
    change in a live system. FHIR received from outside (FHIR HTTP, $process-message, MESH FHIR) is
    untrusted and validated every time, whatever this says; the UK Core rules run on every referral.
    """

    validate_mapped: bool = False


class AuthSettings(BaseModel):
    """Who may call the HTTP API: partners' systems with OAuth2 client-credentials tokens the gateway
    issues (`POST /oauth2/token`), people signed in at `/signin` for the web pages. Partners and
    people are set up with `referral-gateway partners|users add`."""

    # HS256 key for tokens and session cookies (at least 32 characters). Default: generated once into
    # DATA_DIR/signing.key (mode 0600). Several gateway processes must share one: set AUTH_SIGNING_KEY.
    signing_key: SecretStr | None = None
    issuer: str = "referral-gateway"
    token_ttl_s: int = Field(default=900, gt=0, le=24 * 3600)
    session_ttl_s: int = Field(default=8 * 3600, gt=0, le=7 * 24 * 3600)
    clock_skew_s: int = Field(default=30, ge=0, le=300)
    rate_limit_per_s: float = Field(default=50.0, gt=0)  # each client's sustained rate
    rate_limit_burst: int = Field(default=200, ge=1)  # and how far above it a client may go at once
    registry_cache_s: float = Field(default=5.0, ge=0)  # how soon a removed partner's tokens stop working
    # `serve` on a loopback address with no partners and no users creates a development partner
    # (DATA_DIR/local-dev-client.json, mode 0600) so the laptop default works at once.
    local_partner: bool = True

    @model_validator(mode="after")
    def _strong_key(self) -> AuthSettings:
        if self.signing_key is not None and len(self.signing_key.get_secret_value()) < 32:
            raise ValueError("AUTH_SIGNING_KEY must be at least 32 characters")
        return self


MeshFormat = Literal["bars-json", "bars-xml", "hl7v2"]


class MeshWorkflow(BaseModel):
    """A MESH workflow a mailbox takes (Mex-WorkflowID) and the format its messages are in: a BaRS
    message Bundle as FHIR JSON or XML, or an HL7 v2 file (REF^I12 in, RRI^I12 as status). Its answers
    travel on the workflow of the same id with `_ACK` after it, as MESH workflows pair them."""

    id: str
    format: MeshFormat

    @property
    def ack(self) -> str:
        return f"{self.id}_ACK"


class MeshMailbox(BaseModel):
    """One of the gateway's own MESH mailboxes: polled for what others send it, and the one outbound
    messages are sent from (the first mailbox, unless `MeshSettings.send_from` names another)."""

    id: str
    password: SecretStr
    workflows: list[MeshWorkflow] = Field(default_factory=list)
    # Mutual TLS: the mailbox's client certificate and its key (PEM files), as MESH issues them.
    cert_file: Path | None = None
    key_file: Path | None = None


class MeshSettings(BaseModel):
    """MESH (Message Exchange for Social Care and Health): off unless `url` and a mailbox are set.
    `MESH_URL`, `MESH_SHARED_KEY`, `MESH_MAILBOXES` (JSON), `MESH_POLL_INTERVAL_S`, ..."""

    url: str | None = None  # e.g. https://msg.intspineservices.nhs.uk, or a local mesh-sandbox
    shared_key: SecretStr | None = None  # the MESH environment's HMAC key for NHSMESH tokens
    ca_file: Path | None = None  # the CA bundle MESH's server certificate is checked against
    verify_tls: bool = True
    mailboxes: list[MeshMailbox] = Field(default_factory=list)
    send_from: str | None = None  # the mailbox outbound messages leave from; default: the first
    poll_interval_s: float = Field(default=300.0, gt=0)  # MESH asks clients not to poll more often than this
    track_interval_s: float = Field(default=10.0, gt=0)  # how often a sent message's tracking is read
    # How long a delivery waits for the receiver to download; past that it is looked at again after
    # the longest delivery back-off, by tracking the same message (never sending it again while MESH
    # holds it), without using up an attempt.
    track_timeout_s: float = Field(default=30.0, gt=0)
    chunk_size_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)  # larger messages are sent in chunks
    timeout_s: float = Field(default=30.0, gt=0)  # one HTTP call to MESH

    @property
    def enabled(self) -> bool:
        return bool(self.url and self.mailboxes)

    @property
    def sender(self) -> MeshMailbox:
        wanted = self.send_from or self.mailboxes[0].id
        return next(m for m in self.mailboxes if m.id == wanted)

    @model_validator(mode="after")
    def _sender_is_ours(self) -> MeshSettings:
        if self.send_from and self.send_from not in {m.id for m in self.mailboxes}:
            raise ValueError("MESH_SEND_FROM must name one of MESH_MAILBOXES")
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_nested_delimiter="_",
        nested_model_default_partial_update=True,
        env_nested_max_split=1,
        extra="ignore",
        case_sensitive=False,
    )

    data_dir: Path = Path("data")
    schemas_dir: Path = SCHEMAS_DIR
    log_level: str = "INFO"
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    mllp: MllpSettings = Field(default_factory=MllpSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    relay: RelaySettings = Field(default_factory=RelaySettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    pad: PadSettings = Field(default_factory=PadSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    monitor: MonitorSettings = Field(default_factory=MonitorSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    watcher: WatcherSettings = Field(default_factory=WatcherSettings)
    inbound: InboundSettings = Field(default_factory=InboundSettings)
    intake: IntakeSettings = Field(default_factory=IntakeSettings)
    mesh: MeshSettings = Field(default_factory=MeshSettings)

    @model_validator(mode="after")
    def _topic_names_from_schemas(self) -> Settings:
        """A SCHEMAS_DIR of a deployment's own names its topics: a name left at the packaged default
        becomes the one that directory's topics.json gives the same role."""
        if self.schemas_dir.resolve() == SCHEMAS_DIR or not (self.schemas_dir / "topics.json").is_file():
            return self  # a directory without topics.json is refused when the runtime loads the topics
        roles = topic_roles(self.schemas_dir)
        delivery, topics = self.delivery, self.topics
        changes: dict[str, object] = {}
        if delivery.topics == delivered_topics(_packaged_roles()):
            changes["topics"] = delivered_topics(roles)
        for field, role in (("retry_topic", "retry"), ("dead_letter_topic", "dead-letter")):
            if getattr(delivery, field) == _packaged(role):
                changes[field] = roles[role][0]
        named = {
            field: roles[role][0]
            for field, role in (("status", "status"), ("status_updates", "status-updates"), ("audit", "audit"))
            if getattr(topics, field) == _packaged(role)
        }
        self.delivery, self.topics = delivery.model_copy(update=changes), topics.model_copy(update=named)
        return self

    @property
    def store_url(self) -> str:
        return self.store.url or f"sqlite+aiosqlite:///{(self.data_dir / 'gateway.db').resolve()}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: tuple[PydanticBaseSettingsSource, ...] = (init_settings, env_settings)
        config_file = os.environ.get("GATEWAY_CONFIG_FILE")
        if config_file:
            sources += (TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)),)
        return sources
