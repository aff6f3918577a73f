"""Outside a laptop, a service refuses to start with placeholder secrets; a public
listener serves `/metrics` only with its token."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr, ValidationError

from imagetron_gateway.settings import GatewaySettings
from imagetron_images.settings import ImagesSettings
from imagetron_platform.http import MetricsAccess, install_platform

REAL = {
    "webhook_secret": SecretStr("3b0f5b3e6c1f4e0e9a3e5b"),
    "webhook_token_key": SecretStr("f2c9a8d7e6b5a4c3d2e1f0"),
    "events_token_secret": SecretStr("9e8d7c6b5a4f3e2d1c0b"),
}


@pytest.mark.parametrize("environment", ["production", "staging"])
def test_placeholder_secrets_refuse_to_start_outside_a_laptop(environment):
    with pytest.raises(ValidationError) as refused:
        GatewaySettings(environment=environment)
    for name in ("WEBHOOK_SECRET", "WEBHOOK_TOKEN_KEY", "EVENTS_TOKEN_SECRET"):
        assert f"IMAGETRON_{name}" in str(refused.value)
    with pytest.raises(ValidationError, match="IMAGETRON_WEBHOOK_SECRET"):
        GatewaySettings(
            environment=environment,
            **{**REAL, "webhook_secret": SecretStr("EXAMPLE-CHANGE-ME-webhook-secret")},
        )
    with pytest.raises(ValidationError, match="IMAGETRON_S3_SECRET_KEY"):
        ImagesSettings(environment=environment, **REAL, goapi_api_key=SecretStr("k" * 20))
    assert GatewaySettings(environment=environment, **REAL).environment == environment


def test_placeholders_are_fine_on_a_laptop():
    for environment in ("local", "compose"):
        assert GatewaySettings(environment=environment).is_local


async def _get_metrics(access: MetricsAccess, headers: dict) -> int:
    app = FastAPI()
    install_platform(app, "test", metrics_access=access)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return (await client.get("/metrics", headers=headers)).status_code


async def test_metrics_need_the_token_and_a_public_listener_without_one_hides_them():
    token = MetricsAccess(token="metrics-token")
    assert await _get_metrics(token, {}) == 401
    assert await _get_metrics(token, {"Authorization": "Bearer wrong"}) == 401
    assert await _get_metrics(token, {"Authorization": "Bearer \u00e9".encode("latin-1")}) == 401
    assert await _get_metrics(token, {"Authorization": "Bearer metrics-token"}) == 200
    assert await _get_metrics(MetricsAccess(served=False), {}) == 404
    public = GatewaySettings(environment="production", **REAL).metrics_access(public=True)
    assert not public.served
    assert GatewaySettings().metrics_access(public=True).served
