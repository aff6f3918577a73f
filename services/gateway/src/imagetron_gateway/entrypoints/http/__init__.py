"""The gateway's HTTP routers. `params` registers the `{name:id}` path convertor that every
router's paths use, so it is imported before any of them."""

from imagetron_gateway.entrypoints.http import params as params
