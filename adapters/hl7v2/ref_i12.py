"""REF^I12 (patient referral, HL7 v2.3.1 to v2.5.1) to the canonical referral: one UK Core
ServiceRequest naming the patient by NHS number and both organisations by ODS code, carrying the
patient, the providers and the observations as contained resources. The full table is
schemas/hl7v2/ref_i12_mapping.md.

    MSH-3^MSH-4  -> InboundReferral.sender           MSH-10 -> message_id (and correlation_id)
    RF1-1 (0283) -> status      RF1-2 (0280) -> priority      RF1-3 -> code     RF1-5 -> category
    RF1-6        -> identifier  RF1-7 / RF1-8 -> occurrencePeriod    RF1-9 (else MSH-7) -> authoredOn
    PID          -> subject, contained Patient                                   (patient.py)
    PRD RP / RT  -> requester / performer, contained Practitioners             (providers.py)
                    (no PRD: the sender's configured organisations, when the deployment has them)
    DG1 / OBX / NTE -> reasonCode / supportingInfo / note                        (clinical.py)
    PRD RP PLN-2 -> extension SourceOfServiceRequest (GP unless the referrer says otherwise)

Deterministic: the same message always gives the same ServiceRequest (no clock, no random ids),
so a redelivery is recognised as the same referral. Must not: route, store, publish or
acknowledge; UK Core rules are the intake's, except those needed to read the message at all.
"""

from __future__ import annotations

from fhir.resources.R4B.servicerequest import ServiceRequest

from adapters.hl7v2 import clinical, datatypes, patient, providers
from adapters.hl7v2.datatypes import Json
from adapters.hl7v2.header import Header
from adapters.hl7v2.parser import Composite, Message, Segment
from adapters.hl7v2.providers import Provider
from adapters.hl7v2.tables import Hl7Tables, MessageType, Profile
from gateway.canonical import primitives, systems, trusted
from gateway.canonical.referral import InboundReferral
from gateway.errors import InvalidReferral, Issue
from gateway.settings import Hl7SenderOrganisations

CHANNEL = "hl7v2-mllp"
STRUCTURE = "REF_I12"
ROLE_DISPLAY = {"RP": "Referring provider (PRD RP)", "RT": "Referred-to provider (PRD RT)"}


def to_referral(
    message: Message,
    head: Header,
    kind: MessageType,
    hl7: Hl7Tables,
    organisations: Hl7SenderOrganisations | None = None,
    correlation_id: str | None = None,
) -> InboundReferral:
    """Map a parsed REF^I12 whose header the caller has read and checked (`header.check` gave `kind`);
    raises `InvalidReferral` naming HL7 fields. `organisations`: the sender's, for a message without PRD."""
    data = service_request(message, head, hl7, organisations)
    return InboundReferral(
        service_request=trusted.model(ServiceRequest, data),
        channel=CHANNEL,
        sender=head.sender,
        correlation_id=correlation_id or head.control_id,
        message_id=head.control_id,
        reason=kind.reason,
        resource=data,
    )


def service_request(
    message: Message, head: Header, hl7: Hl7Tables, organisations: Hl7SenderOrganisations | None = None
) -> Json:
    """The ServiceRequest as FHIR JSON, valid by construction: every builder writes only values that fit
    their FHIR types, or refuses the field (tests/trust/test_valid_by_construction.py)."""
    rf1, pid = _required(message, "RF1"), _required(message, "PID")
    number = patient.nhs_number_of(pid, hl7.identifiers.nhs_number)
    referring, receiving = (organisations.referring_ods, organisations.receiving_ods) if organisations else (None, None)
    requester = providers.provider(message, providers.REFERRING, hl7, referring)
    performer = providers.provider(message, providers.REFERRED_TO, hl7, receiving)
    observations, notes = clinical.observations_and_notes(message, hl7)
    contained = [patient.patient(pid, number, hl7), *_practitioners(requester, performer), *observations]
    sr: Json = {
        "resourceType": "ServiceRequest",
        "contained": contained,
        "extension": [_source_of_referral(requester, hl7.profile)],
        "identifier": [_identifier(rf1.first(6), head, hl7)],
        **_rf1(rf1, head, hl7),
        "subject": {"identifier": {"system": systems.NHS_NUMBER, "value": number}},
        "requester": _organisation(requester),
        "performer": [_organisation(performer)],
        "reasonCode": clinical.reasons(message, hl7) or None,
        "supportingInfo": [_supporting(resource) for resource in contained],
        "note": notes or None,
    }
    return {k: v for k, v in sr.items() if v is not None}


def _required(message: Message, name: str) -> Segment:
    found = message.first(name)
    if found is None:
        raise InvalidReferral(
            f"a REF^I12 needs a {name} segment", Issue(f"the {name} segment is missing", name, "structure")
        )
    return found


def _rf1(rf1: Segment, head: Header, hl7: Hl7Tables) -> Json:
    tables, zone = hl7.tables, hl7.profile.local_time_zone
    start = datatypes.date_time(rf1.text(7), "RF1-7", zone)
    end = datatypes.date_time(rf1.text(8), "RF1-8", zone)
    authored = datatypes.date_time(rf1.text(9), "RF1-9", zone) or datatypes.date_time(head.time, "MSH-7", zone)
    return {
        "status": _from_table(rf1.text(1), tables.referral_status.to_fhir, "RF1-1", default="active"),
        "intent": "order",
        "priority": _from_table(rf1.text(2), tables.referral_priority.to_fhir, "RF1-2", default="routine"),
        "category": _concepts(rf1.first(5), hl7),
        "code": datatypes.codeable_concept(rf1.first(3), tables.coding_systems),
        "occurrencePeriod": {k: v for k, v in (("start", start), ("end", end)) if v} or None,
        "authoredOn": authored,
    }


def _from_table(code: str, table: dict[str, str], where: str, default: str) -> str:
    """A coded RF1 field: unknown codes are refused, never guessed (an unknown priority might be urgent)."""
    code = code.strip()
    if not code:
        return default
    if code.upper() not in table:
        raise InvalidReferral(
            f"{where} '{code}' is not a code the gateway knows",
            Issue(f"known: {', '.join(table)}", where, "code-invalid"),
        )
    return table[code.upper()]


def _concepts(ce: Composite, hl7: Hl7Tables) -> list[Json] | None:
    concept = datatypes.codeable_concept(ce, hl7.tables.coding_systems)
    return [concept] if concept else None


def _identifier(ei: Composite, head: Header, hl7: Hl7Tables) -> Json:
    """RF1-6: the referral's business identifier, the key that makes a resend a duplicate."""
    value, namespace = primitives.string(ei.get(1)), primitives.code(ei.get(2)) or ""
    if not value:
        raise InvalidReferral(
            "the referral has no originating referral identifier", Issue("RF1-6 is required", "RF1-6", "required")
        )
    ids = hl7.identifiers
    universal, kind = primitives.code(ei.get(3)), ei.get(4).strip().upper()
    if kind == "ISO" and universal:
        system = f"urn:oid:{universal}"
    elif kind == "URI" and universal:
        system = universal
    elif namespace.upper() in ids.referral_namespaces:
        system = ids.referral_namespaces[namespace.upper()]
    else:
        system = f"{ids.local_referral_prefix}{namespace or head.sending_facility or head.sending_application}"
    return {"system": primitives.uri(system), "value": value}


def _organisation(provider: Provider) -> Json:
    ref: Json = {"identifier": {"system": systems.ODS_CODE, "value": provider.ods_code}}
    return {**ref, "display": provider.display} if provider.display else ref


def _practitioners(*found: Provider) -> list[Json]:
    return [p.practitioner for p in found if p.practitioner is not None]


def _supporting(resource: Json) -> Json:
    kind, ident = resource["resourceType"], resource["id"]
    if kind == "Patient":
        display = "Patient details sent by the referrer (PID)"
    elif kind == "Practitioner":
        display = ROLE_DISPLAY["RP" if ident == providers.PRACTITIONER_IDS["RP"] else "RT"]
    else:
        code = resource["code"]
        display = code.get("text") or next((c.get("display") for c in code.get("coding", []) if c.get("display")), "")
        display = display or "Observation (OBX)"
    return {"reference": f"#{ident}", "display": display}


def _source_of_referral(referrer: Provider, profile: Profile) -> Json:
    """UK Core SourceOfServiceRequest: a GP referral unless the referrer's PRD-7 says otherwise."""
    rules = profile.source_of_referral
    source = next(
        (
            rule
            for rule in rules.by_referrer
            for kind, value in referrer.identifier_types
            if kind == rule.identifier_type and value.upper().startswith(rule.prefix)
        ),
        rules.default,
    )
    coding = {"system": systems.SNOMED_CT, "code": source.code, "display": source.display}
    return {"url": systems.EXT_SOURCE_OF_SERVICE_REQUEST, "valueCodeableConcept": {"coding": [coding]}}
