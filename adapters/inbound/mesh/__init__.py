"""MESH files in: a partner's BaRS Bundle (JSON or XML) or HL7 v2 file to the canonical model, and
the refusal a sender is given back (messages.py)."""
