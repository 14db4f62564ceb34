"""The container image, built for real from the Dockerfile (on a base of Debian packages, from a wheels/
directory: the air-gapped path) and run as its own user: what a user pulling it relies on.

No registry is reachable and ``podman run`` does not work here, so the base comes from mmdebstrap (cached
between runs) and the image's command runs through ``podman image mount`` and chroot, as the image's
user, sharing the host's loopback.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

import exporter
from tests.support.image import CHROOT, MMDEBSTRAP, PIP_BASE_PACKAGES, PODMAN, BuiltImage, built_image
from tests.support.net import LOOPBACK, free_port, wait_until
from tests.support.procs import log_tail, running_process

pytestmark = [
    pytest.mark.slow_image,
    pytest.mark.skipif(
        PODMAN is None or MMDEBSTRAP is None or CHROOT is None,
        reason="podman and mmdebstrap are not installed (apt-get install podman mmdebstrap)",
    ),
]

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "deploy" / "compose" / "compose.yaml"
USER_ID = 10001
DEFAULT_PORT = 10237
HEALTH_URL_ENV = "CAPTAINDATA_HEALTHCHECK_URL"
#: A compiler, linker or build tool on the image's PATH (versioned and target-prefixed names too).
BUILD_TOOL = re.compile(
    r"(?:[\w.-]+-)?(?:gcc|g\+\+|cc|c\+\+|cpp|clang|clang\+\+|ld|as|make|cmake|ninja|pip|pip3|easy_install)"
    r"(?:-?[\d.]+)?"
)
#: Debian packages that build things (the Debian base lists its packages; the upstream one does too).
BUILD_PACKAGE = re.compile(
    r"(?:gcc|g\+\+|cpp|clang|binutils|make|cmake|build-essential|libc6-dev|python3(?:\.\d+)?-(?:dev|pip|setuptools))"
    r"(?:-[\d.]+)?"
)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BuiltImage]:
    with built_image(ROOT, tmp_path_factory.mktemp("image"), tag=exporter.__version__) as built:
        yield built


@pytest.fixture(scope="module")
def pip_base_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BuiltImage]:
    """The same Dockerfile on a Debian base whose python3 carries pip (python3-pip, PEP 668)."""
    workdir = tmp_path_factory.mktemp("image-pip-base")
    with built_image(ROOT, workdir, f"{exporter.__version__}-pip-base", PIP_BASE_PACKAGES) as built:
        yield built


@dataclass
class Demo:
    url: str
    port: int
    log_path: Path


def compose_exporter_command() -> list[str]:
    """The compose stack's exporter command (--demo on :10237); its other services are upstream images."""
    command = yaml.safe_load(COMPOSE_FILE.read_text())["services"]["exporter"]["command"]
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def with_listen_address(args: list[str], address: str) -> list[str]:
    for index, arg in enumerate(args):
        if arg == "--web.listen-address":
            return [*args[: index + 1], address, *args[index + 2 :]]
        if arg.startswith("--web.listen-address="):
            return [*args[:index], f"--web.listen-address={address}", *args[index + 1 :]]
    return [*args, "--web.listen-address", address]


@pytest.fixture(scope="module")
def demo(image: BuiltImage, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """The image's ENTRYPOINT with the compose command, inside the image as its user, on a free port."""
    port = free_port()
    args = with_listen_address(compose_exporter_command(), f"{LOOPBACK}:{port}")
    assert "--demo" in args
    argv = image.chroot_argv([*image.config["Entrypoint"], *args])
    log_path = tmp_path_factory.mktemp("image-demo") / "exporter.log"
    with running_process(argv, log_path, env=image.env()) as proc:
        url = f"http://{LOOPBACK}:{port}"

        def serving() -> bool:
            assert proc.poll() is None, f"the exporter exited with {proc.returncode}"
            return httpx.get(f"{url}/metrics", timeout=5).status_code == 200

        try:
            wait_until(serving, 60, "the exporter inside the image to serve /metrics")
        except (TimeoutError, AssertionError) as error:
            raise AssertionError(f"{error}\n{argv}\n{log_tail(log_path)}") from None
        yield Demo(url=url, port=port, log_path=log_path)


def healthcheck_argv(image: BuiltImage) -> list[str]:
    test = image.inspect.get("Healthcheck") or image.config.get("Healthcheck")
    assert test, "the image has no HEALTHCHECK (built with --format oci?)"
    kind, *command = test["Test"]
    if kind == "CMD-SHELL":
        return ["/bin/sh", "-c", *command]
    assert kind == "CMD", test
    return list(command)


def test_image_reports_its_size(image: BuiltImage, capsys: pytest.CaptureFixture[str]) -> None:
    assert image.size > image.base_size > 0
    with capsys.disabled():
        print(
            f"\n[image] {image.ref}: {image.size / 1e6:.0f} MB, "
            f"on a {image.base_size / 1e6:.0f} MB Debian base "
            f"(the exporter and its dependencies add {(image.size - image.base_size) / 1e6:.0f} MB); "
            f"seconds: {image.timings}"
        )


def test_image_builds_from_the_wheels_directory_alone(image: BuiltImage) -> None:
    """The context has wheels/: every pip step of the build looks there and at no index."""
    log = image.build_log
    assert "Looking in links: /context/wheels" in log, log[-3000:]
    assert "Looking in indexes" not in log, log[-3000:]
    assert not re.search(r"https?://\S*(pypi|pythonhosted)", log), log[-3000:]


def test_image_runs_as_uid_10001(image: BuiltImage) -> None:
    user = image.config.get("User", "")
    uid, _, gid = user.partition(":")
    assert uid == str(USER_ID), f"the image's USER is {user!r}, not {USER_ID}"
    assert gid.isdigit()
    assert int(gid) != 0, f"the image's group is root: {user!r}"
    passwd = (image.rootfs / "etc" / "passwd").read_text()
    assert re.search(rf"^\w[\w-]*:[^:]*:{USER_ID}:{gid}:", passwd, re.M), (
        "no passwd entry for the image's user"
    )
    result = image.run(["python", "-c", "import os; print(os.getuid(), os.getgid())"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [uid, gid]


def test_image_metadata(image: BuiltImage) -> None:
    config: dict[str, Any] = image.config
    assert config["Entrypoint"] == ["captaindata-exporter"]
    assert config["Cmd"] == ["--config", "/etc/captaindata-exporter/config.yaml"]
    assert f"{DEFAULT_PORT}/tcp" in config.get("ExposedPorts", {})
    assert config["Labels"]["org.opencontainers.image.version"] == exporter.__version__
    result = image.run([*config["Entrypoint"], "--version"])
    assert result.returncode == 0, result.stderr
    assert exporter.__version__ in result.stdout


def test_image_holds_no_compiler_or_build_tool(image: BuiltImage) -> None:
    found: list[str] = []
    for directory in image.env()["PATH"].split(":"):
        path = image.rootfs / directory.lstrip("/")
        if path.is_dir():
            found += [f"{directory}/{p.name}" for p in sorted(path.iterdir()) if BUILD_TOOL.fullmatch(p.name)]
    status = image.rootfs / "var" / "lib" / "dpkg" / "status"
    if status.exists():
        for stanza in status.read_text().split("\n\n"):
            name = re.search(r"^Package: (\S+)", stanza, re.M)
            if name and "Status: install ok installed" in stanza and BUILD_PACKAGE.fullmatch(name.group(1)):
                found.append(f"package {name.group(1)}")
    modules = image.run(
        [
            "python",
            "-c",
            "import importlib.util as u; "
            "print(*[m for m in ('pip', 'setuptools', 'wheel') if u.find_spec(m)])",
        ]
    )
    assert modules.returncode == 0, modules.stderr
    found += [f"python module {m}" for m in modules.stdout.split()]
    assert not found, f"build tools in the runtime image: {found}"


def test_image_default_command_needs_a_mounted_config(image: BuiltImage) -> None:
    """Without a config mounted at the default path, the image stops at once and says what is missing."""
    result = image.run([*image.config["Entrypoint"], *image.config["Cmd"]], timeout=60)
    assert result.returncode != 0, "the default command ran without a config file"
    assert "/etc/captaindata-exporter/config.yaml" in result.stdout + result.stderr


def test_demo_inside_the_image_serves_metrics(demo: Demo) -> None:
    def present() -> bool:
        text = httpx.get(f"{demo.url}/metrics", timeout=5).text
        return all(
            re.search(rf"^{name}(?:{{[^}}]*}})? ", text, re.M)
            for name in ("captaindata_up", "captaindata_exporter_build_info")
        )

    try:
        wait_until(present, 60, "captaindata_up and captaindata_exporter_build_info", interval=0.5)
    except TimeoutError as error:
        raise AssertionError(f"{error}\n{log_tail(demo.log_path)}") from None


def test_healthcheck_inside_the_image(image: BuiltImage, demo: Demo) -> None:
    argv = healthcheck_argv(image)
    timeout = image.inspect["Healthcheck"].get("Timeout", 5e9) / 1e9 + 10
    default = image.env().get(HEALTH_URL_ENV)
    # In production the probe targets the exporter's default listen address; here the demo has a free port.
    assert default == f"http://127.0.0.1:{DEFAULT_PORT}/-/healthy", f"{HEALTH_URL_ENV}={default!r}"
    probe = {HEALTH_URL_ENV: default.replace(f":{DEFAULT_PORT}/", f":{demo.port}/")}
    result = image.run(argv, timeout=timeout, **probe)
    assert result.returncode == 0, f"HEALTHCHECK {argv} failed:\n{result.stdout}\n{result.stderr}"
    nobody = {HEALTH_URL_ENV: default.replace(f":{DEFAULT_PORT}/", f":{free_port()}/")}
    result = image.run(argv, timeout=timeout, **nobody)
    assert result.returncode != 0, "the HEALTHCHECK passes with nothing listening"


def test_image_builds_on_a_base_whose_python_has_pip(
    pip_base_image: BuiltImage, capsys: pytest.CaptureFixture[str]
) -> None:
    """The venv is what must be free of pip; the base's system Python (externally managed) is left alone."""
    image = pip_base_image
    with capsys.disabled():
        print(f"\n[image on a python3-pip base] {image.size / 1e6:.0f} MB; seconds: {image.timings}")
    venv = image.rootfs / "opt" / "captaindata-exporter"
    assert not [p.name for p in (venv / "bin").iterdir() if BUILD_TOOL.fullmatch(p.name)]
    assert not list(venv.glob("lib/python3*/site-packages/pip"))
    found = image.run(
        ["python", "-c", "import importlib.util as u, sys; print(sys.prefix, u.find_spec('pip'))"]
    )
    assert found.stdout.split() == ["/opt/captaindata-exporter", "None"], found.stdout + found.stderr
    system = image.run(["/usr/bin/python3", "-m", "pip", "--version"])
    assert system.returncode == 0, f"the base's pip was touched: {system.stdout}{system.stderr}"
    version = image.run([*image.config["Entrypoint"], "--version"])
    assert version.returncode == 0, version.stderr
    assert exporter.__version__ in version.stdout
