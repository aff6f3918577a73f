"""Our entities as the contract's models: what the gateway, the events and the UI see."""

from __future__ import annotations

from types import SimpleNamespace

from imagetron_contracts.models import prompts as prompts_contract
from imagetron_contracts.models import publications as contract
from imagetron_platform.views import view
from imagetron_publisher.domain.batch import Batch
from imagetron_publisher.domain.publication import Publication, StockMetadata, StoredImage
from imagetron_stock.rules import StockFinding


def finding_view(finding: StockFinding) -> prompts_contract.StockFinding:
    return view(prompts_contract.StockFinding, finding)


def metadata_view(metadata: StockMetadata) -> contract.StockMetadata:
    return view(
        contract.StockMetadata, metadata, keywords=list(metadata.keywords), generative_ai=True
    )


def source_view(image: StoredImage) -> contract.SourceImage:
    return view(contract.SourceImage, image, image_id=image.id, bytes=image.size_bytes)


def publication_view(publication: Publication) -> contract.Publication:
    file = publication.file
    # Not `view(...)`: its second parameter is itself named `source`.
    values = {
        **vars(publication),
        "source": source_view(publication.source),
        "metadata": metadata_view(publication.metadata),
        "findings": [finding_view(f) for f in publication.findings],
        "file": None if file is None else view(contract.PreparedFile, file, bytes=file.size_bytes),
        "remote_name": publication.remote_name,
    }
    return contract.Publication.model_validate(SimpleNamespace(**values), from_attributes=True)


def batch_view(batch: Batch, counts: dict[str, int]) -> contract.PublicationBatch:
    return view(contract.PublicationBatch, batch, counts=counts)
