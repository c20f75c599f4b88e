"""The MESH channel: the gateway's own MESH mailboxes polled for referrals and business answers
(poller → inbound → intake / status), and MESH as an outbound format (outbox), all through
NHS Digital's mesh-client (client)."""
