"""Push: v3 webhooks and v4 callbacks received on a listener of their own (docs/push.md).

Nothing here imports aiohttp at import time of the package: ``exporter.push.config`` is read by
``--check-config``, which stays quick."""
