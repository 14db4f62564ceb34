"""What the rest of the exporter knows about one Captain Data API version: ``ApiAdapter``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from exporter import __version__

if TYPE_CHECKING:
    from exporter.config import Config, WorkspaceConfig, _Reader
    from exporter.failures import ErrorReader
    from exporter.guide import ApiCall, StatusGuide
    from exporter.parsing import Run
    from exporter.sink import PollSource, StateSink
    from exporter.transport import ApiTransport
    from exporter.unknown_statuses import UnknownStatuses

#: The ``User-Agent`` of every request.
USER_AGENT = f"captaindata-exporter/{__version__}"


class SourceFactory(Protocol):
    """The constructor every version's source shares."""

    def __call__(
        self,
        transport: ApiTransport,
        workspace: WorkspaceConfig,
        config: Config,
        clock: Callable[[], float] = ...,
    ) -> PollSource: ...


@dataclass(frozen=True, slots=True)
class ReadRun:
    """One run read back by its uid (after a push): the run, and the workflow (v3: the API's
    ``workflow_uid``; v4: the run's action) it belongs to, as the API says."""

    run: Run
    workflow_uid: str


class RunParser(Protocol):
    """Parses the body of a one-run read; None when the run in it cannot be understood; raises
    ``BadResponse`` when the body is not a run object at all."""

    def __call__(
        self, body: bytes, unknown: UnknownStatuses, errors: ErrorReader, now: float | None = None
    ) -> ReadRun | None: ...


class SideReader(Protocol):
    """One periodic read beside the runs poll (credits, accounts): reads and hands what it read to
    the sink; raises RequestFailed when it cannot."""

    async def read(self, sink: StateSink) -> None: ...


class SideReaderFactory(Protocol):
    def __call__(self, transport: ApiTransport, workspace: WorkspaceConfig) -> SideReader: ...


@dataclass(frozen=True)
class SideRead:
    """A periodic read of a version's API beside the runs poll, on its own interval, through the
    workspace's transport (same request budget and 429 window). ``name`` is the workspace's
    configuration block that turns it on (``credits``, ``accounts``)."""

    name: str
    #: Its values of the ``endpoint`` label, present at 0 from the start when it is on.
    endpoints: tuple[str, ...]
    reader: SideReaderFactory


class SettingsReader(Protocol):
    """Reads a version's own block of a workspace's configuration (``v4:``)."""

    def __call__(self, reader: _Reader, value: object, where: str) -> object: ...


@dataclass(frozen=True)
class ApiAdapter:
    """One API version: how to authenticate, what to read and how, and what its statuses mean."""

    version: str  # the ``api_version`` of the configuration
    default_base_url: str
    #: Every value of the ``endpoint`` label, present at 0 from the start.
    endpoints: tuple[str, ...]
    #: Every value of the ``api_status`` label (the API's own statuses, lower-cased, and ``unknown``).
    api_status_values: tuple[str, ...]
    headers: Callable[[WorkspaceConfig], dict[str, str]]
    source: SourceFactory
    #: The status guide's API calls for a run of this version (the first is the one to make).
    api_calls: Callable[[StatusGuide], tuple[ApiCall, ...]]
    #: The status guide's action for a run of this version.
    action: Callable[[StatusGuide], str]
    #: The one-run read a push event becomes: its ``endpoint`` label, its path (the uid URL-encoded)
    #: and its parser. The label is not in ``endpoints``: it appears once push reads a run.
    run_endpoint: str = ""
    run_path: Callable[[str], str] = str
    parse_run: RunParser | None = None
    #: Whether a pushed run of a workflow the state does not track yet adds that workflow (v4: an
    #: action is known only from its runs; v3: the workflow list decides).
    push_adds_workflow: bool = False
    #: Whether a workspace must say its ``workspace_uid``.
    needs_workspace_uid: bool = True
    #: The workspace key of this version's own configuration block, and its reader (the block is
    #: ``WorkspaceConfig.settings``); None when the version has none.
    settings_key: str | None = None
    read_settings: SettingsReader | None = None
    #: Periodic reads beside the runs poll (v3: credits, accounts; v4 documents none yet: a v4
    #: credits source is one more SideRead here once the API documents its shape).
    side_reads: tuple[SideRead, ...] = ()

    def has_side_read(self, name: str) -> bool:
        return any(read.name == name for read in self.side_reads)
