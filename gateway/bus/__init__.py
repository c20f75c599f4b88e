"""The bus: the embedded broker, topic definitions, the event envelope, and the outbox relay."""
