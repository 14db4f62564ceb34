"""Build the container image for real, without a registry: a base root filesystem made of Debian's
packages (mmdebstrap, cached), imported and built on with podman, then mounted and run through chroot
(``podman run`` does not work in this sandbox: its runtime cannot set up cgroups)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.procs import run_captured

PODMAN = shutil.which("podman")
MMDEBSTRAP = shutil.which("mmdebstrap")
CHROOT = shutil.which("chroot")

#: The base: what both stages of the Dockerfile need from a Debian system, and nothing to build with.
BASE_SUITE = "bookworm"
BASE_VARIANT = "essential"  # Essential: yes packages only (no apt), plus the includes
#: libstdc++6: google-re2's wheel links it (the upstream python:slim images have it already).
BASE_PACKAGES = ("ca-certificates", "passwd", "python3", "python3-venv", "libstdc++6")
#: The same with python3-pip, whose system Python is "externally managed" (PEP 668): the Dockerfile must
#: leave it alone and still build.
PIP_BASE_PACKAGES = (*BASE_PACKAGES, "python3-pip")
BASE_DPKG_OPTIONS = tuple(f"path-exclude=/usr/share/{d}/*" for d in ("doc", "info", "locale", "man"))


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "captaindata-exporter"


def output(result: subprocess.CompletedProcess[str], tail: int = 6000) -> str:
    return (
        f"{result.args}\nexit {result.returncode}\n"
        f"stdout:\n{result.stdout[-tail:]}\nstderr:\n{result.stderr[-tail:]}"
    )


def checked(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    if result.returncode != 0:
        raise AssertionError(output(result))
    return result


# --------------------------------------------------------------------------------------------------
# The base root filesystem (mmdebstrap), cached by its package list
# --------------------------------------------------------------------------------------------------


def debian_sources(paths: Sequence[Path] | None = None) -> list[str]:
    """This machine's Debian mirror for the base's suite (and its -updates, -security), as sources.list
    lines: mmdebstrap must use the mirror the machine already reaches, not a default one."""
    if paths is None:
        apt = Path("/etc/apt")
        paths = [apt / "sources.list", *sorted((apt / "sources.list.d").glob("*"))]
    entries: list[tuple[str, list[str], list[str]]] = []  # (uri, suites, components)
    for path in paths:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields: dict[str, str] = {}
                for line in stanza.splitlines():
                    if line.strip().startswith("#") or ":" not in line or line[:1].isspace():
                        continue
                    key, _, value = line.partition(":")
                    fields[key.strip().lower()] = value.strip()
                if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes") == "no":
                    continue
                for uri in fields.get("uris", "").split():
                    entries.append(
                        (uri, fields.get("suites", "").split(), fields.get("components", "").split())
                    )
        else:
            for line in text.splitlines():
                words = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
                if len(words) >= 3 and words[0] == "deb":
                    entries.append((words[1], [words[2]], words[3:]))
    lines: list[str] = []
    for uri, suites, components in entries:
        if not re.search(r"/debian(-security)?/?$", uri):
            continue  # third-party repositories
        for suite in suites:
            if re.fullmatch(rf"{BASE_SUITE}(?:[-/][\w-]+)?", suite):
                line = f"deb {uri} {suite} {' '.join(components or ['main'])}"
                if line not in lines:
                    lines.append(line)
    return lines


def base_key(packages: Sequence[str] = BASE_PACKAGES) -> str:
    """What the base tarball is made of; a change to it bootstraps a new one."""
    recipe = {
        "suite": BASE_SUITE,
        "variant": BASE_VARIANT,
        "packages": sorted(packages),
        "dpkg": list(BASE_DPKG_OPTIONS),
        "arch": os.uname().machine,
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def base_tarball(packages: Sequence[str] = BASE_PACKAGES) -> tuple[Path, bool]:
    """The base root filesystem as a tarball, and whether it came from the cache."""
    assert MMDEBSTRAP
    directory = cache_dir()
    tarball = directory / f"debian-base-{BASE_SUITE}-{base_key(packages)}.tar"
    if tarball.is_file():
        return tarball, True
    directory.mkdir(parents=True, exist_ok=True)
    partial = tarball.with_name(f"{tarball.stem}.partial-{os.getpid()}.tar")
    argv = [
        MMDEBSTRAP,
        "--format=tar",
        f"--variant={BASE_VARIANT}",
        f"--include={','.join(packages)}",
        *(f"--dpkgopt={option}" for option in BASE_DPKG_OPTIONS),
        BASE_SUITE,
        str(partial),
        *debian_sources(),
    ]
    try:
        checked(run_captured(argv, timeout=1200))
        partial.replace(tarball)  # atomic: a concurrent run sees a whole tarball or none
    finally:
        partial.unlink(missing_ok=True)
    return tarball, False


# --------------------------------------------------------------------------------------------------
# podman, on a private store
# --------------------------------------------------------------------------------------------------


@dataclass
class Podman:
    """podman on its own storage (vfs: no overlay mounts to leak) under ``home``, removed afterwards."""

    home: Path

    def argv(self, *args: str) -> list[str]:
        assert PODMAN
        return [
            PODMAN,
            "--root",
            str(self.home / "root"),
            "--runroot",
            str(self.home / "runroot"),
            "--tmpdir",
            str(self.home / "tmp"),
            "--storage-driver=vfs",
            "--cgroup-manager=cgroupfs",
            "--events-backend=file",
            *args,
        ]

    def __call__(self, *args: str, timeout: float = 300) -> str:
        return checked(run_captured(self.argv(*args), timeout=timeout)).stdout

    def logged(self, *args: str, timeout: float = 300) -> str:
        """stdout and stderr together (podman build writes the steps' output to both)."""
        result = checked(run_captured(self.argv(*args), timeout=timeout))
        return result.stdout + result.stderr

    def inspect(self, ref: str) -> dict[str, Any]:
        (data,) = json.loads(self("image", "inspect", ref))
        assert isinstance(data, dict)
        return data


# --------------------------------------------------------------------------------------------------
# The built image
# --------------------------------------------------------------------------------------------------


@dataclass
class BuiltImage:
    ref: str
    inspect: dict[str, Any]
    rootfs: Path  # where `podman image mount` shows the image's files
    base_size: int
    build_log: str
    timings: dict[str, float] = field(default_factory=dict)
    base_cached: bool = False

    @property
    def config(self) -> dict[str, Any]:
        config = self.inspect["Config"]
        assert isinstance(config, dict)
        return config

    @property
    def size(self) -> int:
        return int(self.inspect["Size"])

    def env(self, **overrides: str) -> dict[str, str]:
        env = dict(item.split("=", 1) for item in self.config.get("Env") or [])
        env.update(overrides)
        return env

    def userspec(self) -> str:
        user = str(self.config.get("User") or "0")
        uid, _, gid = user.partition(":")
        return f"{uid}:{gid or uid}"

    def chroot_argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` inside the image, as its user, from ``/`` (chroot resolves argv[0] on the image's PATH
        when it runs with :meth:`env`)."""
        assert CHROOT
        workdir = self.config.get("WorkingDir") or "/"
        assert workdir == "/", f"running from {workdir} is not supported here"
        return [CHROOT, f"--userspec={self.userspec()}", str(self.rootfs), *argv]

    def run(self, argv: Sequence[str], timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
        return run_captured(self.chroot_argv(argv), timeout=timeout, env=self.env(**env))


def copy_context(root: Path, context: Path) -> None:
    """The repository's files as a build context; podman applies .dockerignore to it itself."""
    ignored = shutil.ignore_patterns(
        ".git", "__pycache__", "*.py[cod]", ".*_cache", "*.egg-info", ".venv", "build", "dist", "wheels"
    )
    shutil.copytree(root, context, ignore=ignored, symlinks=True)


def fill_wheels(context: Path) -> None:
    """What an air-gapped user does beforehand: every wheel the build needs, in ``wheels/``."""
    requires = tomllib.loads((context / "pyproject.toml").read_text())["build-system"]["requires"]
    argv = [sys.executable, "-m", "pip", "wheel", "--wheel-dir", str(context / "wheels"), str(context)]
    checked(run_captured([*argv, *requires], timeout=900))


@contextmanager
def built_image(
    root: Path, workdir: Path, tag: str, base_packages: Sequence[str] = BASE_PACKAGES
) -> Iterator[BuiltImage]:
    """The Dockerfile of ``root`` built on a Debian base of ``base_packages`` from its wheels/ (no
    index), mounted."""
    # Not under workdir: podman refuses a runroot path longer than 50 characters.
    podman = Podman(Path(tempfile.mkdtemp(prefix="cde-podman-")))
    for sub in ("root", "runroot", "tmp"):
        (podman.home / sub).mkdir()
    timings: dict[str, float] = {}

    def timed(name: str, start: float) -> None:
        timings[name] = round(time.monotonic() - start, 1)

    base_ref = f"localhost/captaindata-exporter-base:{base_key(base_packages)}"
    ref = f"localhost/captaindata-exporter:{tag}"
    mounted = False
    try:
        start = time.monotonic()
        tarball, cached = base_tarball(base_packages)
        timed("base (cached)" if cached else "base (mmdebstrap)", start)
        start = time.monotonic()
        podman("import", str(tarball), base_ref)
        timed("import", start)
        start = time.monotonic()
        context = workdir / "context"
        copy_context(root, context)
        fill_wheels(context)
        timed("wheels", start)
        start = time.monotonic()
        build_log = podman.logged(
            "build",
            "--isolation=chroot",
            "--format=docker",  # the OCI format drops HEALTHCHECK
            "--layers=false",  # vfs copies the whole tree for each layer kept
            "--pull=never",
            f"--build-arg=PYTHON_IMAGE={base_ref}",
            f"--tag={ref}",
            str(context),
            timeout=1200,
        )
        timed("build", start)
        rootfs = Path(podman("image", "mount", ref).strip())
        mounted = True
        yield BuiltImage(
            ref=ref,
            inspect=podman.inspect(ref),
            rootfs=rootfs,
            base_size=int(podman.inspect(base_ref)["Size"]),
            build_log=build_log,
            timings=timings,
            base_cached=cached,
        )
    finally:
        try:
            if mounted:
                podman("image", "unmount", "--all")
        finally:
            shutil.rmtree(podman.home, ignore_errors=True)
