"""The in-memory destination behind the tests' sinks (``tests._fhir_sink``,
``tests._facts_sink``): keeps every item it is sent, answers "kept".

Touches: nothing.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from eai.config import DestinationConfig
from eai.messages import DeliveryResult, OutboxItem

__all__ = ["MemorySink"]

C = TypeVar("C", bound=DestinationConfig)


class MemorySink(Generic[C]):
    def __init__(self, config: C) -> None:
        self.config = config
        self.items: list[OutboxItem] = []

    async def start(self) -> None:
        """Nothing to prepare."""

    async def send(self, item: OutboxItem) -> DeliveryResult:
        self.items.append(item)
        return DeliveryResult(detail="kept")

    async def close(self) -> None:
        """Nothing to release."""
