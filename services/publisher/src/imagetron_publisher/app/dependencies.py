from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from imagetron_contracts.models.publications import Agency
from imagetron_platform.clock import Clock
from imagetron_publisher.app.ports import (
    AgencyDelivery,
    CredentialCipher,
    FileRenderer,
    FileStore,
    MetadataAdvisor,
    UnitOfWork,
)
from imagetron_publisher.app.slots import AccountSlots


@dataclass(frozen=True, kw_only=True)
class Dependencies:
    """The adapters behind the ports: built once by bootstrap, shared by every handler."""

    # A fresh unit of work per message: one holds one session and cannot be shared by
    # handlers running concurrently.
    new_uow: Callable[[], UnitOfWork]
    clock: Clock
    cipher: CredentialCipher
    advisor: MetadataAdvisor
    renderer: FileRenderer
    store: FileStore
    agencies: Mapping[Agency, AgencyDelivery]
    slots: AccountSlots
    #: The largest original the publisher reads from the bucket.
    max_original_bytes: int = 100_000_000
