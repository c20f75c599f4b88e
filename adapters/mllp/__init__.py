"""MLLP, the frame every HL7 v2 message travels in over TCP, shared by both directions: the sans-IO
connection (`connection.py`) and the few lines that join it to asyncio streams (`streams.py`). The
listener (gateway/mllp), the outbound client (adapters/outbound/hl7v2_mllp.py), the demo receiver and
the benchmarks' senders all frame through it.
Must not: decode or parse a message (adapters/hl7v2 does), or decide what a frame means.
"""
