"""Every image provider adapter, built from settings: the registry bootstrap injects.

All of them are built, whichever is the default (`provider`): a provider's callbacks and
reconciliation keep working for the tasks it already has after the default changes, and
parsing a callback needs no credentials.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import httpx

from imagetron_images.adapters.goapi import GoApiProvider
from imagetron_images.adapters.midjourney_proxy import MidjourneyProxyApi, MidjourneyProxyProvider
from imagetron_images.adapters.openai_images import OpenAIImagesProvider, StagingStore
from imagetron_images.adapters.replicate import ReplicateProvider
from imagetron_images.app.ports import ImageProvider
from imagetron_images.settings import ImagesSettings
from imagetron_platform.first_use import OnFirstUse

if TYPE_CHECKING:
    from openai import AsyncOpenAI


def build_providers(
    settings: ImagesSettings,
    client: httpx.AsyncClient,
    staging: StagingStore,
    openai: OnFirstUse[AsyncOpenAI],
) -> Mapping[str, ImageProvider]:
    """`staging`: where a synchronous provider (OpenAI Images) puts its results; `openai`:
    the SDK client it generates with (`openai_images.openai_client`), built at its first
    generation."""
    webhook_base = settings.webhook_public_base_url
    webhook_secret = settings.webhook_secret.get_secret_value()
    token_key = settings.webhook_token_key.get_secret_value()
    mj_secret = settings.midjourney_proxy_api_secret
    providers: tuple[ImageProvider, ...] = (
        GoApiProvider(
            client,
            base_url=settings.goapi_base_url,
            api_key=settings.goapi_api_key.get_secret_value(),
            webhook_public_base_url=webhook_base,
            webhook_secret=webhook_secret,
            webhook_token_key=token_key,
        ),
        MidjourneyProxyProvider(
            client,
            base_url=settings.midjourney_proxy_base_url,
            api_secret=mj_secret.get_secret_value() if mj_secret is not None else None,
            webhook_public_base_url=webhook_base,
            webhook_token_key=token_key,
            api=MidjourneyProxyApi(settings.midjourney_proxy_api),
        ),
        ReplicateProvider(
            client,
            base_url=settings.replicate_base_url,
            api_token=settings.replicate_api_token.get_secret_value(),
            model=settings.replicate_model,
            version=settings.replicate_version,
            extra_input=settings.replicate_input,
            webhook_public_base_url=webhook_base,
            webhook_token_key=token_key,
        ),
        OpenAIImagesProvider(
            openai,
            staging,
            model=settings.openai_image_model,
            count=settings.openai_image_count,
        ),
    )
    return {provider.name: provider for provider in providers}
