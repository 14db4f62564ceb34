"""The API versions the exporter reads, one adapter each; ``api_version`` picks one with ``adapter``.

A new version (or another read, such as credits) is one more module here and one more line in
``ADAPTERS``: the configuration, the poller, the state and the status page all ask this registry.
"""

from __future__ import annotations

from typing import Final

from exporter.api import v3, v4
from exporter.api.adapter import ApiAdapter

#: The adapters by ``api_version``, the default first.
ADAPTERS: Final[dict[str, ApiAdapter]] = {api.version: api for api in (v3.ADAPTER, v4.ADAPTER)}
#: Every supported ``api_version``.
API_VERSIONS: Final[tuple[str, ...]] = tuple(ADAPTERS)
DEFAULT_API_VERSION: Final = API_VERSIONS[0]


def adapter(api_version: str) -> ApiAdapter:
    """The adapter of ``api_version``; KeyError for a version the exporter does not read (the
    configuration refuses those)."""
    return ADAPTERS[api_version]
