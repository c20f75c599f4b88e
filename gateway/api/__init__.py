"""HTTP surfaces: the FHIR API and web pages. Handlers parse with an adapter, call the intake, and
render; they hold no business rules."""
