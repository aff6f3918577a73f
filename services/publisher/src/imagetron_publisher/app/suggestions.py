"""Metadata suggestions: the prompts service's language model proposes title, keywords and
category for a draft publication; the result is linted like anything the artist types."""

from __future__ import annotations

import logging

from imagetron_contracts.models.publications import SuggestMetadataJob
from imagetron_platform.clock import Clock
from imagetron_platform.jobs import Delivery, RetryLater
from imagetron_publisher.app.messages import announce
from imagetron_publisher.app.ports import (
    MetadataAdvisor,
    SuggestionRefused,
    SuggestionUnavailable,
    UnitOfWork,
)

log = logging.getLogger(__name__)

SUGGEST_CONSUMER = "publisher-suggest"


async def suggest_metadata(
    job: SuggestMetadataJob,
    delivery: Delivery,
    uow: UnitOfWork,
    advisor: MetadataAdvisor,
    clock: Clock,
) -> None:
    async with uow:
        publication = await uow.publications.get(job.owner_id, job.publication_id)
    if publication is None or not publication.suggesting:
        return  # withdrawn, edited by hand meanwhile, or answered already
    try:
        suggested = await advisor.suggest(publication.source)
    except SuggestionUnavailable as exc:
        if not delivery.is_last:
            raise RetryLater(str(exc)) from exc
        suggested, reason = None, f"{exc} (after {delivery.attempt} attempts)."
    except SuggestionRefused as exc:
        suggested, reason = None, str(exc)
    async with uow:
        if not await uow.claim(SUGGEST_CONSUMER, delivery.message_id):
            return
        publication = await uow.publications.get(job.owner_id, job.publication_id, for_update=True)
        if publication is None:
            return
        if suggested is not None:
            changes = publication.apply_suggestion(suggested, clock())
        else:
            log.warning("no metadata suggestion for %s: %s", publication.id, reason)
            changes = publication.suggestion_failed(reason, clock())
        await uow.publications.save(publication)
        await announce(uow, changes)
        await uow.commit()
