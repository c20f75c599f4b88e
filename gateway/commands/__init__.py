"""The integration engineers' commands of `referral-gateway` (gateway/cli.py registers them):

    topics               the gateway's topics with their partitions and end offsets
    lag                  each consumer group's committed offsets and lag
    tail TOPIC           a topic's events as JSON lines, patient identifiers masked
    trace Q              every hop of a referral, by id, identifier, NHS number or correlation id
    dlq list|show|replay|discard
                         dead letters, and replaying or discarding them
    inbound list|show|resubmit
                         the inbound message log, and sending refused messages again

Each works against the embedded broker or a configured cluster, and the store, from the settings;
each is a thin face of gateway/monitoring, which the web pages share.
"""

from __future__ import annotations

import argparse

from gateway.commands import broker, dead_letters, inbound, tracing


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    broker.add_commands(sub)
    tracing.add_commands(sub)
    dead_letters.add_commands(sub)
    inbound.add_commands(sub)
