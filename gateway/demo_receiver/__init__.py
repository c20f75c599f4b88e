"""A demo receiving service: real FHIR HTTP and HL7 v2 MLLP endpoints that accept referrals, remember
what they got (in memory, and in a JSON Lines file if given one), and can be told to fail or be slow.

It is what `referral-gateway demo-receiver` runs and what the delivery tests deliver to. It behaves as
a careful receiver should: a referral sent twice (same business identifier, X-Request-Id or MSH-10)
is kept once, and every request, repeated or failed, is counted so a test can see what arrived.
Must not: take part in the gateway's own delivery path (it is the other side of it).
"""

from gateway.demo_receiver.ledger import Behaviour, Hit, Received, ReceivedReferrals
from gateway.demo_receiver.server import DemoReceiver

__all__ = ["Behaviour", "DemoReceiver", "Hit", "Received", "ReceivedReferrals"]
