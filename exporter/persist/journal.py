"""The state directory (``state.path``): what the counters need to survive a restart.

One journal file per workspace, appended to after each change with only the workflows that changed, and
compacted (rewritten through a temporary file and a rename) when it grows past twice its live size.
The format is described in docs/configuration.md; FORMAT_VERSION changes whenever it does.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import threading
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

FORMAT_NAME = "captaindata-exporter-state"
FORMAT_VERSION = 1
LOCK_FILE = "LOCK"
JOURNAL_SUFFIX = ".journal"
#: Suffixes of a rejected journal, kept beside the new one for inspection (only the latest of each).
CORRUPT_SUFFIX = ".corrupt"
MISMATCH_SUFFIX = ".mismatch"
MOVED_SUFFIX = ".moved"  # the workspace is another shard's now (exporter/sharding.py)
#: A journal is compacted once it is larger than this many times its live records, and than this size.
COMPACT_RATIO = 2.0
COMPACT_MIN_BYTES = 64 * 1024

_WORKSPACE_KEY = ""  # the key of the workspace record among the workflow uids (never a valid uid)
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


class StateDirectoryError(Exception):
    """The state directory cannot be used (not creatable, not writable, in use by another process)."""


class _Rejected(Exception):
    """Why a journal was not loaded; ``mismatch`` when it is valid but another workspace's."""

    def __init__(self, reason: str, mismatch: bool = False) -> None:
        super().__init__(reason)
        self.mismatch = mismatch


@dataclass(frozen=True)
class WorkspaceIdentity:
    """What a journal must match to be restored: a file from another workspace or API is ignored."""

    name: str
    workspace_uid: str
    base_url: str
    api_version: str
    #: For a workspace split by workflow, which shard's part among how many ("" when polled whole):
    #: another split is another set of workflows, so its journal starts a fresh baseline.
    part: str = ""

    def as_dict(self) -> dict[str, str]:
        return {
            "name": self.name,
            "workspace_uid": self.workspace_uid,
            "base_url": self.base_url,
            "api_version": self.api_version,
            **({"part": self.part} if self.part else {}),
        }


@dataclass
class Loaded:
    """The records of a journal: the workspace's and the live workflows' (uid -> record)."""

    workspace: dict[str, Any] | None = None
    workflows: dict[str, dict[str, Any]] = field(default_factory=dict)


def _encode(record: Mapping[str, Any]) -> bytes:
    payload = json.dumps(record, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    data = payload.encode("ascii")
    return b"%08x %s\n" % (zlib.crc32(data), data)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name}")


def _decode(line: bytes) -> Any:
    """One journal line (without its newline) -> its JSON value; ValueError when damaged."""
    if len(line) < 10 or line[8:9] != b" ":
        raise ValueError("malformed line")
    checksum, data = line[:8], line[9:]
    try:
        expected = int(checksum, 16)
    except ValueError:
        raise ValueError("malformed checksum") from None
    if zlib.crc32(data) != expected:
        raise ValueError("checksum mismatch")
    return json.loads(data.decode("ascii"), parse_constant=_reject_constant)


def _file_name(workspace_name: str) -> str:
    digest = hashlib.sha256(workspace_name.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{_UNSAFE.sub('_', workspace_name)[:40]}-{digest}{JOURNAL_SUFFIX}"


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.ENOTSUP):  # filesystems that cannot sync a directory
            raise
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    """``data`` whole (os.write may write only part of it)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def parse_journal(content: bytes, identity: WorkspaceIdentity) -> tuple[Loaded, dict[str, bytes], bool]:
    """Replay a journal: (records, the live encoded line of each key, whether a torn tail was dropped).

    Records apply a batch at a time, at the batch's commit line. What follows the last commit line is an
    append cut short (kill -9, power loss) and is dropped; any other damage raises :class:`_Rejected`."""
    lines = content.split(b"\n")
    torn = lines.pop() != b""  # the text after the last newline: empty unless an append was cut short
    if not lines:
        raise _Rejected("empty file" if not torn else "no complete header line")
    try:
        header = _decode(lines[0])
    except (ValueError, RecursionError) as error:
        raise _Rejected(f"unreadable header: {error}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise _Rejected("not a captaindata-exporter state file")
    if header.get("version") != FORMAT_VERSION:
        raise _Rejected(f"format version {repr(header.get('version'))[:40]}, expected {FORMAT_VERSION}")
    if header.get("workspace") != identity.as_dict():
        raise _Rejected("written for another workspace or configuration", mismatch=True)
    loaded = Loaded()
    live: dict[str, bytes] = {}
    pending: list[tuple[str, dict[str, Any] | None, bytes]] = []
    for number, line in enumerate(lines[1:], start=2):
        try:
            record = _decode(line)
            if isinstance(record, dict) and record.get("kind") == "commit":
                _commit(pending, record, loaded, live)
                pending = []
            else:
                key, data = _record_key(record)
                pending.append((key, data, line + b"\n"))
        except (ValueError, RecursionError) as error:
            if any(_is_commit(later) for later in lines[number:]):
                raise _Rejected(f"line {number}: {error}") from None
            torn = True
            break
    if pending:
        torn = True
    if loaded.workspace is None:  # every save records the workspace: nothing was ever committed
        raise _Rejected("no complete record")
    return loaded, live, torn


def _commit(
    pending: list[tuple[str, dict[str, Any] | None, bytes]],
    record: dict[str, Any],
    loaded: Loaded,
    live: dict[str, bytes],
) -> None:
    keys = set(live)
    for key, data, _line in pending:
        if data is None:
            keys.discard(key)
        else:
            keys.add(key)
    if record.get("live") != len(keys):
        raise _Rejected(f"a commit expects {record.get('live')!r} records, the journal has {len(keys)}")
    for key, data, line in pending:
        if key == _WORKSPACE_KEY:
            loaded.workspace = data
        elif data is None:
            loaded.workflows.pop(key, None)
        else:
            loaded.workflows[key] = data
        if data is None:
            live.pop(key, None)
        else:
            live[key] = line


def _is_commit(line: bytes) -> bool:
    try:
        record = _decode(line)
    except (ValueError, RecursionError):
        return False
    return isinstance(record, dict) and record.get("kind") == "commit"


def _record_key(record: Any) -> tuple[str, dict[str, Any] | None]:
    if not isinstance(record, dict):
        raise ValueError("record is not an object")
    kind, data = record.get("kind"), record.get("data")
    if kind == "workspace" and isinstance(data, dict):
        return _WORKSPACE_KEY, data
    uid = record.get("uid")
    if kind == "workflow" and isinstance(uid, str) and uid and (data is None or isinstance(data, dict)):
        return uid, data
    raise ValueError("unknown record")


class WorkspaceJournal:
    """The journal of one workspace. :meth:`save` is thread-safe and never runs twice at once; it
    blocks on disk I/O, so it runs in a worker thread (the sink's)."""

    def __init__(self, directory: Path, identity: WorkspaceIdentity) -> None:
        self.directory = directory
        self.identity = identity
        self.path = directory / _file_name(identity.name)
        self._lock = threading.Lock()
        self._header = _encode(
            {"format": FORMAT_NAME, "version": FORMAT_VERSION, "workspace": identity.as_dict()}
        )
        self._live: dict[str, bytes] = {}  # key -> its latest encoded line (what a compaction writes)
        self._live_bytes = len(self._header)
        self._file_bytes = 0
        self._needs_rewrite = True  # no file of ours yet: the first save writes a complete one
        self.compactions = 0

    def load(self) -> Loaded | None:
        """The saved records, or None for a fresh start (no file, or a file that cannot be used: it is
        logged and renamed aside). Never raises."""
        with self._lock:
            try:
                return self._load()
            except Exception as error:  # an unreadable file must never stop the exporter
                self._set_aside(f"{type(error).__name__}: {error}", CORRUPT_SUFFIX)
                return None

    def _load(self) -> Loaded | None:
        log = {"workspace": self.identity.name, "path": str(self.path)}
        try:
            content = self.path.read_bytes()
        except FileNotFoundError:
            logger.info("no saved state: starting with a fresh baseline", extra=log)
            return None
        except OSError as error:
            self._set_aside(f"cannot read: {error.strerror or error}", CORRUPT_SUFFIX)
            return None
        try:
            loaded, live, torn = parse_journal(content, self.identity)
        except _Rejected as rejected:
            self._set_aside(str(rejected), MISMATCH_SUFFIX if rejected.mismatch else CORRUPT_SUFFIX)
            return None
        self._live = live
        self._live_bytes = len(self._header) + sum(map(len, live.values()))
        self._file_bytes = len(content)
        # A torn tail is dropped by rewriting the file; otherwise appends go on after the last record.
        self._needs_rewrite = torn
        if torn:
            logger.warning("saved state ended with an incomplete record: dropped it", extra=log)
        logger.info(
            "restoring saved state",
            extra={**log, "workflows": len(loaded.workflows), "bytes": len(content)},
        )
        return loaded

    def set_aside_moved(self, reason: str) -> None:
        """The workspace is another shard's now: its journal here is set aside, so that if it comes
        back to this shard later it starts from a fresh baseline, not from stale counts."""
        with self._lock:
            if self.path.exists():
                self._set_aside(reason, MOVED_SUFFIX)

    def discard(self, reason: str) -> None:
        """The loaded records could not be used: set the file aside as corrupt."""
        with self._lock:
            if self.path.exists():
                self._set_aside(reason, CORRUPT_SUFFIX)

    def _set_aside(self, reason: str, suffix: str) -> None:
        kept = self.path.with_name(self.path.name + suffix)
        try:
            os.replace(self.path, kept)
            _fsync_directory(self.directory)
        except OSError as error:
            kept_text = f"not kept ({error.strerror or error})"
        else:
            kept_text = str(kept)
        logger.warning(
            "saved state not used: starting with a fresh baseline",
            extra={"workspace": self.identity.name, "reason": reason, "kept_as": kept_text},
        )
        self._live = {}
        self._live_bytes = len(self._header)
        self._needs_rewrite = True

    def save(
        self, workspace: Mapping[str, Any] | None, workflows: Mapping[str, Mapping[str, Any] | None]
    ) -> set[str]:
        """Record the workspace's record (when given) and each changed workflow's (None: it is gone),
        as one batch: a crash keeps or loses it whole. Returns the keys of the records that are not
        JSON-able (logged and left out; "" is the workspace's). Raises OSError."""
        lines: dict[str, bytes | None] = {}
        skipped: set[str] = set()
        records: list[tuple[str, Mapping[str, Any] | None, dict[str, Any]]] = [
            (uid, data, {"kind": "workflow", "uid": uid, "data": data}) for uid, data in workflows.items()
        ]
        if workspace is not None:
            records.append((_WORKSPACE_KEY, workspace, {"kind": "workspace", "data": workspace}))
        for key, data, record in records:
            try:
                lines[key] = None if data is None else _encode(record)
            except (ValueError, TypeError, RecursionError) as error:
                skipped.add(key)
                logger.error(
                    "a state record cannot be saved; it is left out",
                    extra={"workspace": self.identity.name, "workflow_uid": key, "error": str(error)},
                )
        with self._lock:
            appended = b"".join(
                line if line is not None else _encode({"kind": "workflow", "uid": uid, "data": None})
                for uid, line in lines.items()
                if line is not None or uid in self._live
            )
            for key, line in lines.items():
                previous = self._live.pop(key, None)
                self._live_bytes -= len(previous) if previous is not None else 0
                if line is not None:
                    self._live[key] = line
                    self._live_bytes += len(line)
            too_big = self._file_bytes + len(appended) > max(
                COMPACT_MIN_BYTES, COMPACT_RATIO * self._live_bytes
            )
            if self._needs_rewrite or too_big:
                self._rewrite()
            elif appended:
                self._append(appended + self._commit_line())
        return skipped

    def _append(self, data: bytes) -> None:
        self._needs_rewrite = True  # until the data is known to be on disk whole (the open may fail)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            _write_all(fd, data)
            os.fsync(fd)
            self._needs_rewrite = False
        finally:
            os.close(fd)
            self._file_bytes += len(data)

    def _rewrite(self) -> None:
        self._needs_rewrite = True
        temporary = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        size = 0
        try:
            for chunk in (self._header, *self._live.values(), self._commit_line()):
                _write_all(fd, chunk)
                size += len(chunk)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, self.path)
        _fsync_directory(self.directory)
        self._file_bytes = size
        self._needs_rewrite = False
        self.compactions += 1

    def _commit_line(self) -> bytes:
        return _encode({"kind": "commit", "live": len(self._live)})

    @property
    def file_bytes(self) -> int:
        return self._file_bytes

    @property
    def live_bytes(self) -> int:
        return self._live_bytes


class StateDirectory:
    """``state.path``: created if missing (mode 0700), locked for this process while it runs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_fd: int | None = None

    def open(self) -> None:
        try:
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as error:
            raise StateDirectoryError(f"{self.path}: {error.strerror or error}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise StateDirectoryError(f"{self.path} is in use by another exporter process") from None
        if not os.access(self.path, os.W_OK):
            os.close(fd)
            raise StateDirectoryError(f"{self.path}: not writable") from None
        self._lock_fd = fd

    def journal(self, identity: WorkspaceIdentity) -> WorkspaceJournal:
        return WorkspaceJournal(self.path, identity)

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the lock
            self._lock_fd = None
