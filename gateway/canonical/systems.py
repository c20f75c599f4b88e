"""Identifier systems, code systems and extension URLs used across the gateway (UK Core, BaRS)."""

NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"
ODS_CODE = "https://fhir.nhs.uk/Id/ods-organization-code"
ODS_SITE_CODE = "https://fhir.nhs.uk/Id/ods-site-code"
SDS_USER_ID = "https://fhir.nhs.uk/Id/sds-user-id"
GMC_NUMBER = "https://fhir.hl7.org.uk/Id/gmc-number"
HCPC_NUMBER = "https://fhir.hl7.org.uk/Id/hcpc-number"
SNOMED_CT = "http://snomed.info/sct"
ICD_10 = "http://hl7.org/fhir/sid/icd-10"

#: Where the gateway records referral ids it assigns and those it receives without a system.
REFERRAL_ID = "https://referral-gateway.nhs.example/Id/referral"

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
