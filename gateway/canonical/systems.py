"""Identifier systems, code systems and extension URLs used across the gateway (UK Core, BaRS)."""

NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"
ODS_CODE = "https://fhir.nhs.uk/Id/ods-organization-code"
ODS_SITE_CODE = "https://fhir.nhs.uk/Id/ods-site-code"
SDS_USER_ID = "https://fhir.nhs.uk/Id/sds-user-id"
GMC_NUMBER = "https://fhir.hl7.org.uk/Id/gmc-number"
HCPC_NUMBER = "https://fhir.hl7.org.uk/Id/hcpc-number"
GMP_NUMBER = "https://fhir.hl7.org.uk/Id/gmp-number"
NMC_NUMBER = "https://fhir.hl7.org.uk/Id/nmc-number"
SDS_ROLE_PROFILE_ID = "https://fhir.nhs.uk/Id/sds-role-profile-id"
#: Directory of Services (DoS) service id: how BaRS names a receiving HealthcareService.
DOS_SERVICE_ID = "https://fhir.nhs.uk/Id/dos-service-id"
UBRN = "https://fhir.nhs.uk/Id/UBRN"
#: The identifier systems that name an individual professional (UK Core Practitioner).
PRACTITIONER_SYSTEMS = (SDS_USER_ID, GMC_NUMBER, GMP_NUMBER, NMC_NUMBER, HCPC_NUMBER)
SNOMED_CT = "http://snomed.info/sct"
ICD_10 = "http://hl7.org/fhir/sid/icd-10"

#: Where the gateway records referral ids it assigns and those it receives without a system.
REFERRAL_ID = "https://referral-gateway.nhs.example/Id/referral"

#: The directory's own service ids (HealthcareService.id in schemas/directory), for senders that name
#: a service the DoS does not list.
SERVICE_ID = "https://referral-gateway.nhs.example/Id/healthcare-service"
#: The gateway's key for a patient not yet traced to an NHS number (see gateway/canonical/patient.py).
UNTRACED_PATIENT = "https://referral-gateway.nhs.example/Id/untraced-patient"

#: UK Core NHS number verification status (on Patient.identifier, the NHS number slice).
EXT_NHS_NUMBER_VERIFICATION = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus"
NHS_NUMBER_VERIFICATION = "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland"
VERIFIED = ("01", "Number present and verified")
TRACE_REQUIRED = ("03", "Trace required")
#: Flags on a referral's meta.tag, searchable with `_tag`.
REFERRAL_FLAGS = "https://referral-gateway.nhs.example/CodeSystem/referral-flag"
FLAG_NHS_NUMBER_TO_BE_TRACED = ("nhs-number-to-be-traced", "NHS number to be traced")
#: Who, by name, asked for the referral: a reference to a contained PractitionerRole (the requester
#: element stays the organisation, so every reader of ServiceRequest.requester keeps its ODS code).
EXT_REQUESTING_PRACTITIONER = "https://referral-gateway.nhs.example/StructureDefinition/requesting-practitioner"

#: UK Core extension carrying the source of a referral (SNOMED CT coded).
EXT_SOURCE_OF_SERVICE_REQUEST = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-SourceOfServiceRequest"

#: SNOMED CT codes for the source of referral, as IAPT services report on them.
SOURCE_GP = ("108161000000109", "Referral by general practitioner")
SOURCE_PHYSIOTHERAPIST = ("185370009", "Referral by physiotherapist")
SOURCE_SELF_IAPT = ("1036481000000106", "Self-referral to improving access to psychological therapies")

# NHS Booking and Referral Standard (BaRS) message definitions.
BARS_MESSAGE_EVENTS = "https://fhir.nhs.uk/CodeSystem/message-events-bars"
BARS_MESSAGE_REASON = "https://fhir.nhs.uk/CodeSystem/message-reason-bars"
BARS_EVENT_SERVICEREQUEST_REQUEST = "servicerequest-request"
BARS_EVENT_SERVICEREQUEST_RESPONSE = "servicerequest-response"

OPERATION_OUTCOME_CODES = "http://hl7.org/fhir/issue-type"
