"""Metadata suggestions from the prompts service (which owns the language model, its
adapter and its ledger), over request/reply."""

from __future__ import annotations

from imagetron_contracts.models.prompts import (
    StockMetadataSuggestion,
    SuggestStockMetadataCommand,
)
from imagetron_contracts.models.publications import FileType
from imagetron_contracts.streams import RPC_PROMPTS_SUGGEST_METADATA
from imagetron_platform.errors import ProblemError, ServiceTimeout, ServiceUnavailable
from imagetron_platform.rpc import RpcClient
from imagetron_publisher.app.ports import SuggestionRefused, SuggestionUnavailable
from imagetron_publisher.domain.publication import StockMetadata, StoredImage


class PromptsAdvisor:
    """The MetadataAdvisor port. `timeout` is above the prompts service's own LLM deadline,
    so its 502/504 (which say why) arrive rather than ours."""

    def __init__(self, rpc: RpcClient, *, timeout: float) -> None:
        self._rpc = rpc
        self._timeout = timeout

    async def suggest(self, image: StoredImage) -> StockMetadata:
        command = SuggestStockMetadataCommand(
            owner_id=image.owner_id,
            prompt_id=image.prompt_id,
            prompt_text=image.prompt_text[:4000],
            title=(image.prompt_title or None) and image.prompt_title[:200],
        )
        try:
            answer = await self._rpc.call(
                RPC_PROMPTS_SUGGEST_METADATA,
                command,
                StockMetadataSuggestion,
                timeout=self._timeout,
            )
        except (ServiceUnavailable, ServiceTimeout) as exc:
            raise SuggestionUnavailable(exc.detail) from exc
        except ProblemError as exc:
            raise SuggestionRefused(exc.detail) from exc
        return StockMetadata(
            title=answer.title,
            keywords=tuple(answer.keywords),
            category=answer.category,
            file_type=FileType.photo if answer.photo_realistic else FileType.illustration,
            fictional_people_and_property=answer.shows_people_or_property,
        )
