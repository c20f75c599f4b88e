"""The IAPT prescription pad: a physiotherapist's (or a patient's own) referral to NHS Talking Therapies.

    web form / JSON fields ──fields.py──▶ QuestionnaireResponse ◀── FHIR POST /QuestionnaireResponse
                                               │
                        conformance.py (against the Questionnaire) + rules.py (consent, identifiers, dates)
                                               │
                                    mapping.py ──▶ InboundReferral(channel="pad")

The Questionnaire (schemas/questionnaires/iapt-prescription-pad.json) and the code tables
(schemas/pad/) are data. Must not: route, store or publish; the intake does that.
"""
