"""Builds and runs the repository's container images and compose stack with podman, for
``tests/e2e/test_container_stack.py``.

No image registry is reachable on the test machines, so the base image comes from Debian's package
mirror (``deploy/base-image.sh``: debootstrap, then ``podman import``, kept between runs) and every
Dockerfile is built ``FROM`` it. What podman needs on these machines, found by trial:

- the ``runc`` runtime (crun is not installed with Debian's podman here), and ``default_ulimits = []``
  because the sandbox forbids raising resource limits: both in a ``containers.conf`` named by
  ``CONTAINERS_CONF``;
- ``--network host`` for builds that run ``apt-get`` and ``pip install``, with the host's CA bundle
  mounted for pip (``PIP_CERT``), since the package index is reached through an intercepting proxy;
- ``--format docker``: the OCI image format has no ``HEALTHCHECK``.

The stack runs on podman's bridge network (netavark, with aardvark-dns resolving service names).
"""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
BASE_IMAGE = "localhost/hsmgate-base:bookworm"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
#: (image, build context) of the stack's three images, tagged for the test
IMAGES = {
    "HSMGATE_IMAGE": ("localhost/hsmgate:test-stack", REPO),
    "POSTGRES_IMAGE": ("localhost/hsmgate-postgres:test-stack", REPO / "deploy" / "postgres"),
    "HAPROXY_IMAGE": ("localhost/hsmgate-haproxy:test-stack", REPO / "deploy" / "haproxy"),
}
BUILD_STAGE_IMAGE = "localhost/hsmgate-build:test-stack"
#: The label of every image the repository's Dockerfiles make
IMAGE_LABEL = "org.opencontainers.image.vendor=hsmgate"
CONTAINERS_CONF = """\
[containers]
default_ulimits = []

[engine]
runtime = "runc"
"""


def podman_env(conf_dir: Path) -> dict[str, str]:
    """This process's environment with a ``containers.conf`` made for these machines."""
    conf = conf_dir / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    return {**os.environ, "CONTAINERS_CONF": str(conf)}


def run(args: list[str], env: dict[str, str], *, timeout: float = 600, check: bool = True,
        cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure (with ``check``) raise with its output's tail."""
    result = subprocess.run(args, check=False, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args[:4])} … exited with {result.returncode}:\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def ensure_base_image(env: dict[str, str]) -> float:
    """``deploy/base-image.sh`` (a no-op when the image exists); returns the seconds it took."""
    start = time.monotonic()
    run(["bash", str(REPO / "deploy" / "base-image.sh"), BASE_IMAGE], env, timeout=900)
    return time.monotonic() - start


def build_images(env: dict[str, str]) -> float:
    """Build the three images from the base image; returns the seconds it took.

    podman's layer cache makes a rebuild of unchanged layers free. The hsmgate image's build stage
    is tagged too (``BUILD_STAGE_IMAGE``), so that it stays a cache; what earlier builds left
    untagged (every image of these Dockerfiles carries the label ``IMAGE_LABEL``) is removed."""
    start = time.monotonic()
    builds = [(BUILD_STAGE_IMAGE, REPO, "build"), *((image, context, None) for image, context in IMAGES.values())]
    for image, context, target in builds:
        args = ["podman", "build", "--quiet", "--format", "docker", "--network", "host",
                "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "--tag", image]
        if target:
            args += ["--target", target]
        if HOST_CA_BUNDLE.exists():
            args += ["--volume", f"{HOST_CA_BUNDLE.parent}:/run/host-certs:ro",
                     "--build-arg", f"PIP_CERT=/run/host-certs/{HOST_CA_BUNDLE.name}"]
        run([*args, str(context)], env, timeout=900)
    elapsed = time.monotonic() - start
    run(["podman", "image", "prune", "--force", "--filter", f"label={IMAGE_LABEL}"], env, check=False)
    return elapsed


def image_size(env: dict[str, str], image: str) -> int:
    """The image's size in bytes, as podman reports it."""
    return int(run(["podman", "image", "inspect", "--format", "{{.Size}}", image], env).stdout.strip())


@dataclass
class Stack:
    """One run of compose.yaml under its own project name, with fresh secrets and free host ports."""

    project: str
    port: int
    stats_port: int
    env: dict[str, str]
    api_keys: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, env: dict[str, str], port: int, stats_port: int) -> Stack:
        keys = {role: secrets.token_hex(24) for role in ("KEY_MANAGEMENT", "KEY_OPERATION", "SERVICE")}
        stack_env = {
            **env,
            **{name: image for name, (image, _) in IMAGES.items()},
            "HSMGATE_PKCS11_PIN": secrets.token_hex(8),
            "SOFTHSM_SO_PIN": secrets.token_hex(8),
            "POSTGRES_PASSWORD": secrets.token_hex(16),
            **{f"HSMGATE_API_KEYS_{role}": key for role, key in keys.items()},
            "HSMGATE_BIND": "127.0.0.1",
            "HSMGATE_STACK_PORT": str(port),
            "HSMGATE_STATS_PORT": str(stats_port),
        }
        return cls(f"hsmgate-test-{os.getpid()}", port, stats_port, stack_env, keys)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def compose(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """``podman-compose -p <project> -f compose.yaml …``."""
        beside_python = Path(sys.executable).with_name("podman-compose")  # the test extra's, not an older one on PATH
        podman_compose = str(beside_python) if beside_python.exists() else shutil.which("podman-compose") or "podman-compose"
        return run([podman_compose, "-p", self.project, "-f", str(REPO / "compose.yaml"), *args], self.env,
                   timeout=timeout)

    def container(self, service: str) -> str:
        """The container's name podman-compose gives a service."""
        return f"{self.project}_{service}_1"

    def up(self) -> None:
        self.compose("up", "-d", "--no-build")

    def down(self) -> None:
        """Remove the stack's containers, network and volumes, even when compose itself fails."""
        try:
            self.compose("down", "--volumes", "--timeout", "5")
        except (AssertionError, subprocess.TimeoutExpired):
            pass
        label = f"label=io.podman.compose.project={self.project}"
        for kind in ("container", "volume", "network"):
            names = run(["podman", kind, "ls", "--quiet", "--filter", label]
                        + (["--all"] if kind == "container" else []), self.env, check=False).stdout.split()
            if names:
                force = ["--force", "--time", "0"] if kind == "container" else ["--force"] if kind == "volume" else []
                run(["podman", kind, "rm", *force, *names], self.env, check=False)

    def backend_stats(self) -> dict[str, dict[str, str]]:
        """HAProxy's stats page (CSV) rows of the backend ``hsmgate``: its servers and ``BACKEND``."""
        text = httpx.get(f"http://127.0.0.1:{self.stats_port}/stats;csv", timeout=5).text.lstrip("# ")
        return {row["svname"]: row for row in csv.DictReader(io.StringIO(text))
                if row["pxname"] == "hsmgate" and row["svname"] != "FRONTEND"}

    def backend_states(self) -> dict[str, str]:
        """HAProxy's view of each hsmgate server: ``{"hsmgate-1": "UP", …}``."""
        return {name: row["status"] for name, row in self.backend_stats().items() if name != "BACKEND"}

    def wait_serving(self, timeout: float = 180) -> float:
        """Wait until HAProxy sees both instances UP and answers /health; returns the seconds waited."""
        start = time.monotonic()
        states: dict[str, str] | str = "no answer yet"
        while time.monotonic() - start < timeout:
            try:
                states = self.backend_states()
                if set(states.values()) == {"UP"} and len(states) == 2 \
                        and httpx.get(f"{self.url}/health", timeout=5).status_code == 200:
                    return time.monotonic() - start
            except httpx.HTTPError as exc:
                states = repr(exc)
            time.sleep(0.5)
        raise AssertionError(f"the stack did not serve within {timeout} s: HAProxy says {states}\n{self.logs()}")

    def logs(self) -> str:
        """The last lines of every container's log, for a failure message."""
        parts = []
        for service in ("postgres", "init", "hsmgate-1", "hsmgate-2", "haproxy"):
            result = run(["podman", "logs", "--tail", "15", self.container(service)], self.env, check=False)
            parts.append(f"--- {service}:\n{result.stdout}{result.stderr}")
        return "\n".join(parts)

    def haproxy_log_unanswered(self) -> list[str]:
        """HAProxy's log lines of requests not answered 200 (health checks are not logged)."""
        result = run(["podman", "logs", self.container("haproxy")], self.env, check=False)
        return [line for line in (result.stdout + result.stderr).splitlines()
                if "api hsmgate/" in line and '" 200 ' not in line and " 200 " not in line]

    def inspect(self, container: str) -> dict[str, object]:
        """``podman inspect`` of one container."""
        return json.loads(run(["podman", "inspect", container], self.env).stdout)[0]

    def client(self, role: str) -> httpx.Client:
        """A client through HAProxy with the API key of ``role`` (``KEY_MANAGEMENT``, ``KEY_OPERATION``)."""
        return httpx.Client(base_url=self.url, headers={"X-API-KEY": self.api_keys[role]}, timeout=30)
