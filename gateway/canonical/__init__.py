"""The canonical model: one FHIR R4 ServiceRequest (UK Core identifiers) plus where it came from."""
