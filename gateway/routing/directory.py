"""The service directory: who can receive referrals, where, and in which formats.

Read from `schemas/directory/directory.json`, a FHIR R4 Bundle (type collection) of Organization,
HealthcareService, Location and Endpoint resources, so a deployment replaces the data and no code.
A HealthcareService's id is the directory id routing decisions name; its identifiers (a Directory
of Services id, `https://fhir.nhs.uk/Id/dos-service-id`) are how senders name it, and the id itself is
also its identifier in `https://referral-gateway.nhs.example/Id/healthcare-service`. A service without endpoints
of its own is reached through its organisation's; the first endpoint is the one delivery uses
(`Directory.endpoint(service_id)`: its `format` and `address` are what delivery's Destination holds).

    Endpoint.connectionType   format          Destination.address
    hl7-fhir-rest             fhir-rest       the FHIR base URL
    hl7-fhir-msg              fhir-messaging  the FHIR base URL ($process-message)
    hl7v2-mllp                hl7v2-mllp      host:port (Endpoint.address is mllp://host:port)
    kafka (local code)        kafka           the topic (Endpoint.address is kafka:TOPIC)

Pure: reads the file once, then answers look-ups. Must not send anything or choose a route.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.endpoint import Endpoint as FhirEndpoint
from fhir.resources.R4B.healthcareservice import HealthcareService
from fhir.resources.R4B.location import Location
from fhir.resources.R4B.organization import Organization

from gateway.canonical import systems, uris
from gateway.errors import NotFound

DIRECTORY_FILE = Path("directory") / "directory.json"
TIER_SYSTEM = "https://referral-gateway.nhs.example/CodeSystem/service-tier"

#: Endpoint.connectionType code → the format name outbound delivery speaks.
FORMATS = {
    "hl7-fhir-rest": "fhir-rest",
    "hl7-fhir-msg": "fhir-messaging",
    "hl7v2-mllp": "hl7v2-mllp",
    "kafka": "kafka",
}
_ADDRESS_PREFIXES = {"hl7v2-mllp": "mllp://", "kafka": "kafka:"}
T = TypeVar("T")


@dataclass(frozen=True)
class Endpoint:
    id: str
    name: str
    format: str  # one of FORMATS' values
    address: str  # as delivery uses it: base URL, host:port, or topic
    mime_types: tuple[str, ...]


@dataclass(frozen=True)
class Service:
    id: str
    name: str
    ods: str  # the providing organisation's ODS code
    organisation: str
    tier: str | None  # e.g. "Tier II", "Health and Wellbeing pathway"
    types: frozenset[str]  # HealthcareService.type codes
    locations: tuple[str, ...]  # location names
    endpoints: tuple[Endpoint, ...]  # own, else the organisation's; the first is preferred
    identifiers: frozenset[tuple[str, str]] = frozenset()  # (system, value): DoS ids and the directory id

    @property
    def formats(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(e.format for e in self.endpoints))


class Directory:
    def __init__(self, services: list[Service], organisations: dict[str, str], version: str) -> None:
        self.version = version
        self._services = {s.id: s for s in services}
        self._organisations = organisations  # ODS code → name
        self._by_identifier = {ident: s for s in services for ident in s.identifiers}

    def __contains__(self, service_id: object) -> bool:
        return service_id in self._services

    def find(self, service_id: str) -> Service | None:
        return self._services.get(service_id)

    def service(self, service_id: str) -> Service:
        found = self._services.get(service_id)
        if found is None:
            raise NotFound(f"no service '{service_id}' in the directory")
        return found

    def by_identifier(self, system: str, value: str) -> Service | None:
        """The service a sender names by identifier (a DoS id, or the directory's own id)."""
        return self._by_identifier.get((uris.canonical(system), value))

    def service_owner(self, system: str, value: str) -> str | None:
        """The ODS code of the organisation providing the service so named, if the directory lists it."""
        found = self.by_identifier(system, value)
        return found.ods if found else None

    def by_ods(self, ods: str) -> list[Service]:
        """The services an organisation provides, in directory order."""
        return [s for s in self._services.values() if s.ods == ods]

    def referrer_service(self, ods: str) -> str | None:
        """Where status goes back to a referring organisation: its first service with an endpoint."""
        return next((s.id for s in self.by_ods(ods) if s.endpoints), None)

    def organisation_name(self, ods: str) -> str | None:
        return self._organisations.get(ods)

    def services(self) -> list[Service]:
        return list(self._services.values())

    def endpoint(self, service_id: str) -> Endpoint:
        """Where delivery sends a referral routed to this service: its preferred endpoint."""
        service = self.service(service_id)
        if not service.endpoints:
            raise NotFound(f"the directory gives service '{service_id}' no endpoint")
        return service.endpoints[0]


def load_directory(schemas_dir: Path) -> Directory:
    bundle = Bundle.model_validate_json((schemas_dir / DIRECTORY_FILE).read_bytes())
    resources = [e.resource for e in bundle.entry or [] if e.resource is not None]
    endpoints = {str(r.id): _endpoint(r) for r in resources if isinstance(r, FhirEndpoint)}
    locations = {str(r.id): str(r.name or r.id) for r in resources if isinstance(r, Location)}
    organisations = {str(r.id): r for r in resources if isinstance(r, Organization)}
    services = [_service(r, organisations, endpoints, locations) for r in resources if isinstance(r, HealthcareService)]
    names = {_ods(o): str(o.name or o.id) for o in organisations.values()}
    version = str(bundle.meta.versionId) if bundle.meta and bundle.meta.versionId else "unversioned"
    return Directory(services, names, version)


def _endpoint(resource: FhirEndpoint) -> Endpoint:
    code = str(resource.connectionType.code)
    if code not in FORMATS:
        raise ValueError(f"directory: Endpoint/{resource.id} has connectionType '{code}', which delivery cannot use")
    address = str(resource.address)
    prefix = _ADDRESS_PREFIXES.get(code, "")
    return Endpoint(
        id=str(resource.id),
        name=str(resource.name or resource.id),
        format=FORMATS[code],
        address=address.removeprefix(prefix),
        mime_types=tuple(str(m) for m in resource.payloadMimeType or []),
    )


def _service(
    resource: HealthcareService,
    organisations: dict[str, Organization],
    endpoints: dict[str, Endpoint],
    locations: dict[str, str],
) -> Service:
    org_id = _local_id(resource.providedBy, "Organization") if resource.providedBy else None
    if org_id not in organisations:
        raise ValueError(f"directory: HealthcareService/{resource.id} is not provided by an Organization in the bundle")
    org = organisations[org_id]
    own = [_local_id(ref, "Endpoint") for ref in resource.endpoint or []]
    inherited = [_local_id(ref, "Endpoint") for ref in org.endpoint or []]
    return Service(
        id=str(resource.id),
        name=str(resource.name or resource.id),
        ods=_ods(org),
        organisation=str(org.name or org.id),
        tier=_tier(resource),
        types=frozenset(str(c.code) for cc in resource.type or [] for c in cc.coding or [] if c.code),
        locations=tuple(_known(locations, _local_id(ref, "Location"), "Location") for ref in resource.location or []),
        endpoints=tuple(_known(endpoints, e, "Endpoint") for e in (own or inherited)),
        identifiers=frozenset(
            [(systems.SERVICE_ID, str(resource.id))]
            + [(uris.canonical(str(i.system)), str(i.value)) for i in resource.identifier or [] if i.system and i.value]
        ),
    )


def _known(found: dict[str, T], local_id: str, resource_type: str) -> T:
    if local_id not in found:
        raise ValueError(f"directory: {resource_type}/{local_id} is referred to but not in the bundle")
    return found[local_id]


def _tier(resource: HealthcareService) -> str | None:
    for program in resource.program or []:
        for coding in program.coding or []:
            if coding.system == TIER_SYSTEM:
                return str(coding.display or coding.code)
    return None


def _ods(org: Organization) -> str:
    for ident in org.identifier or []:
        if ident.system == systems.ODS_CODE and ident.value:
            return str(ident.value)
    raise ValueError(f"directory: Organization/{org.id} has no ODS code")


def _local_id(reference: object, resource_type: str) -> str:
    """`Organization/RX1PN` → `RX1PN`; the directory only refers within itself."""
    text = str(getattr(reference, "reference", "") or "")
    kind, _, local = text.partition("/")
    if kind != resource_type or not local:
        raise ValueError(f"directory: '{text}' is not a reference to a {resource_type} in the bundle")
    return local
