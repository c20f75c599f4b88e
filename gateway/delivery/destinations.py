"""The service directory as delivery's `Destinations`: a receiver's (or a referrer's) preferred
endpoint, read as format and address. Pure look-ups; the directory is loaded once at start-up.
"""

from __future__ import annotations

from gateway.delivery.outbound import Destination
from gateway.routing.directory import Directory


class DirectoryDestinations:
    def __init__(self, directory: Directory) -> None:
        self._directory = directory

    def destination(self, receiver: str) -> Destination:
        endpoint = self._directory.endpoint(receiver)  # NotFound (not retriable) when it has none
        return Destination(receiver, endpoint.format, endpoint.address, endpoint.workflow, endpoint.payload)
