"""
The Docker image, built from ``docker/Dockerfile.server`` and run here.

No container can be started in this sandbox (the runtime's ``setrlimit`` is
refused), but an image can be built and its file system run:

- a Debian base like the official ``python:3.11-slim-bookworm`` (Debian
  bookworm, Python 3.11, a ``python`` command) is made with ``debootstrap``
  and imported into podman (Debian's archive can be reached from here,
  Docker Hub cannot); the Dockerfile's ``PYTHON_IMAGE`` build argument
  points at it, everything else is the Dockerfile users build;
- ``podman build --isolation=chroot`` on vfs storage, with podman's storage
  and configuration in a temporary directory (none of the machine's own);
  pip in the build installs from a wheelhouse downloaded here beforehand
  and asks no index (``PIP_NO_INDEX``/``PIP_FIND_LINKS``, build arguments
  users behind a mirror have too);
- the image's ``ENTRYPOINT`` and ``CMD``, read from ``podman image inspect``,
  run under ``chroot --userspec`` as the image's ``USER`` in a container's
  root file system (``podman create`` + ``podman mount``), with the image's
  environment, working directory and own ``/etc/mmo/mmo.toml``, on 127.0.0.1
  and loopback multicast with TTL 0 only; ``/healthz`` answers, the image's
  ``HEALTHCHECK`` command passes, and players log in.

Needs root, ``podman`` and ``debootstrap`` (``scripts/system-deps.sh``
installs them); skipped with the reason elsewhere. The packages debootstrap
fetches and the base it makes are kept in ``~/.cache/mmo-tests`` (a week at
most), so only the first run on a machine downloads them.
"""

from __future__ import annotations

import configparser
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support import Process, WireClient, cluster_args, wait_until

from mmo.wire import messages as m

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = "docker/Dockerfile.server"

# The official base's Debian and what it has that a minimal Debian lacks.
SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "python-is-python3")
BASE_IMAGE = "localhost/mmo-test/python:3.11-bookworm"
IMAGE = "localhost/mmo-test/server:latest"
WHEELHOUSE = "wheelhouse"
BASE_MAX_AGE = 7 * 24 * 3600.0

# Only 127.0.0.1: players and HTTP on ports of their own, multicast on the
# loopback interface with TTL 0 (the defaults, said again in case the
# image's config ever names others).
LOOPBACK = ["--listen", "tcp:0:interface=127.0.0.1", "--http", "tcp:0:interface=127.0.0.1",
            "--iface", "127.0.0.1", "--ttl", "0"]

pytestmark = pytest.mark.timeout(1200)


def unavailable() -> str | None:
    """Why the image cannot be built and run here, or None."""
    if not sys.platform.startswith("linux"):
        return "needs Linux"
    if os.geteuid() != 0:
        return "needs root (debootstrap, mount and chroot)"
    missing = [tool for tool in ("podman", "debootstrap") if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (scripts/system-deps.sh installs them)"
    return None


REASON = unavailable()
if REASON:
    pytestmark = [pytestmark, pytest.mark.skip(reason=REASON)]


def run(argv: list[str], timeout: float, **kwargs: Any) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)
    assert result.returncode == 0, (
        f"{' '.join(map(str, argv))} exited with {result.returncode}:\n"
        f"{(result.stdout + result.stderr)[-4000:]}")
    return result


def mounts_under(path: Path) -> list[str]:
    """The mount points at or under ``path``, from this process's mount table."""
    prefix = str(path.resolve())
    found = []
    with open("/proc/self/mountinfo") as table:
        for line in table:
            point = line.split()[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return found


# -- the base: Debian bookworm with Python 3.11, as the official image --------


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    path = Path(base) / "mmo-tests"
    path.mkdir(parents=True, exist_ok=True)
    return path


def debootstrap(target: Path, debs: Path, log: Path) -> None:
    argv = ["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
            f"--cache-dir={debs}", SUITE, str(target)]
    with open(log, "w") as out:
        done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, timeout=900)
    text = log.read_text(errors="replace")
    if done.returncode != 0 and re.search(r"Failed getting release file|Couldn't download|"
                                          r"Temporary failure resolving", text):
        pytest.skip(f"the Debian archive cannot be reached: {text.strip()[-300:]}")
    assert done.returncode == 0, f"{' '.join(argv)}:\n{text[-4000:]}"


def base_tarball(work: Path) -> Path:
    """
    A tar of the base's root file system, made with debootstrap unless one
    made alike less than a week ago is in the cache. Made slim as the
    official image is: no package lists or archives, documentation, manual
    pages or translations, and an empty /dev (the runtime fills it).
    """
    cache = cache_dir()
    key = hashlib.sha256(repr((SUITE, BASE_PACKAGES, os.uname().machine)).encode()).hexdigest()
    tarball = cache / f"image-base-{SUITE}-{key[:12]}.tar"
    with open(cache / "image-base.lock", "w") as lock:
        # Tests of other checkouts may be making the same base.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if tarball.exists() and time.time() - tarball.stat().st_mtime < BASE_MAX_AGE:
            return tarball
        debs = cache / "debootstrap-debs"
        debs.mkdir(exist_ok=True)
        rootfs = work / "rootfs"
        debootstrap(rootfs, debs, work / "debootstrap.log")
        for pattern in ("var/cache/apt/archives/*.deb", "var/cache/apt/*.bin",
                        "var/lib/apt/lists/*", "usr/share/doc/*", "usr/share/man/*",
                        "usr/share/locale/*", "usr/share/info/*"):
            for path in rootfs.glob(pattern):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        partial = tarball.with_suffix(".partial")
        run(["tar", "-C", str(rootfs), "--numeric-owner", "--exclude=./dev/*",
             "-cf", str(partial), "."], timeout=300)
        partial.replace(tarball)
        # debootstrap mounts /proc and /sys in the target while it works.
        left = mounts_under(rootfs)
        assert not left, f"debootstrap left mounted: {left}"
        shutil.rmtree(rootfs)
        return tarball


# -- podman, with its storage and configuration in a temporary directory ------


class Podman:
    def __init__(self, state: Path) -> None:
        self.state = state
        for name in ("storage", "run", "tmp", "networks"):
            (state / name).mkdir(parents=True)
        (state / "storage.conf").write_text(
            f'[storage]\ndriver = "vfs"\ngraphroot = "{state / "storage"}"\n'
            f'runroot = "{state / "run"}"\n')
        (state / "containers.conf").write_text(
            f'[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
            f'events_logfile_path = "{state / "events.log"}"\n'
            f'tmp_dir = "{state / "tmp"}"\nimage_copy_tmp_dir = "{state / "tmp"}"\n'
            f'[network]\nnetwork_config_dir = "{state / "networks"}"\n')
        # Fully qualified names only: nothing is looked up on a registry.
        (state / "registries.conf").write_text("unqualified-search-registries = []\n")
        self.env = {
            **os.environ,
            "CONTAINERS_STORAGE_CONF": str(state / "storage.conf"),
            "CONTAINERS_CONF": str(state / "containers.conf"),
            "CONTAINERS_REGISTRIES_CONF": str(state / "registries.conf"),
            "TMPDIR": str(state / "tmp"),
        }

    def __call__(self, *args: str, timeout: float = 120) -> str:
        return run(["podman", *args], timeout=timeout, env=self.env).stdout

    def build(self, context: Path, log: Path, *args: str) -> None:
        argv = ["podman", "build", *args, str(context)]
        with open(log, "w") as out:
            done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, timeout=900,
                                  env=self.env)
        assert done.returncode == 0, (
            f"{' '.join(argv)}:\n{log.read_text(errors='replace')[-6000:]}")

    def remove(self) -> None:
        """Delete the storage, after checking that nothing is mounted in it."""
        left = mounts_under(self.state)
        assert not left, f"still mounted, storage kept in {self.state}: {left}"
        shutil.rmtree(self.state)


# -- what the build gets: the tracked files and a wheelhouse -------------------


def tracked_files() -> list[str]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the tracked files are unknown")
    out = run(["git", "ls-files"], timeout=60, cwd=ROOT).stdout
    return [line for line in out.splitlines() if (ROOT / line).is_file()]


def requirements() -> list[str]:
    """What pip installs in the image: mmo's dependencies (with the redis extra) and its build backend."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    needed = [line.strip() for section in (cfg["options"]["install_requires"],
                                           cfg["options.extras_require"]["redis"])
              for line in section.splitlines() if line.strip()]
    build = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    return needed + build


def download_wheels(into: Path, python_version: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:",
         "--python-version", python_version, "-d", str(into), *requirements()],
        capture_output=True, text=True, timeout=600)
    if result.returncode != 0 and re.search(r"Could not find a version|NewConnectionError|"
                                            r"Max retries exceeded", result.stderr):
        pytest.skip(f"the package registry cannot be reached: {result.stderr[-300:]}")
    assert result.returncode == 0, result.stderr[-4000:]


def build_context(into: Path) -> Path:
    for name in tracked_files():
        (into / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, into / name)
    return into


# -- the image -------------------------------------------------------------------


@dataclass
class Image:
    podman: Podman
    ref: str
    inspect: dict[str, Any]
    work: Path
    timings: dict[str, float]

    @property
    def config(self) -> dict[str, Any]:
        return self.inspect["Config"]


def python_version(tarball: Path) -> str:
    """X.Y of the base's python3, from the tar's list of files."""
    names = run(["tar", "-tf", str(tarball), "./usr/bin/"], timeout=120).stdout
    versions = re.findall(r"^\./usr/bin/python(3\.\d+)$", names, re.M)
    assert versions, "no python3.X in the base"
    return versions[0]


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Image]:
    work = tmp_path_factory.mktemp("image")
    timings: dict[str, float] = {}
    started = time.monotonic()
    tarball = base_tarball(work)
    timings["base"] = time.monotonic() - started

    context = build_context(work / "context")
    mark = time.monotonic()
    download_wheels(context / WHEELHOUSE, python_version(tarball))
    timings["wheels"] = time.monotonic() - mark

    podman = Podman(work / "podman")
    try:
        mark = time.monotonic()
        podman("import", str(tarball), BASE_IMAGE, timeout=300)
        timings["import"] = time.monotonic() - mark
        mark = time.monotonic()
        # --layers=false: one layer per stage, not a copy of the whole file
        # system per instruction (vfs has no copy-on-write); docker format
        # keeps the HEALTHCHECK (OCI images have none).
        podman.build(
            context, work / "build.log",
            "--isolation=chroot", "--pull=never", "--layers=false",
            "--format=docker", "-f", str(context / DOCKERFILE), "-t", IMAGE,
            "--build-arg", f"PYTHON_IMAGE={BASE_IMAGE}",
            "--build-arg", "PIP_NO_INDEX=1",
            "--build-arg", f"PIP_FIND_LINKS=/src/{WHEELHOUSE}")
        timings["build"] = time.monotonic() - mark
        (inspect,) = json.loads(podman("image", "inspect", IMAGE))
        timings["total"] = time.monotonic() - started
        yield Image(podman, IMAGE, inspect, work, timings)
    finally:
        podman.remove()


# -- a container's root file system, run with chroot ----------------------------

# The devices a container runtime gives every container.
DEVICES = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8),
           "urandom": (1, 9), "tty": (5, 0)}


def mount(*args: str) -> None:
    run(["mount", *args], timeout=30)


def unmount(path: Path) -> None:
    if subprocess.run(["umount", str(path)], capture_output=True, timeout=30).returncode:
        # Busy (a process left inside): detach it now, freed when unused.
        run(["umount", "--lazy", str(path)], timeout=30)


def populate_dev(dev: Path) -> None:
    for name, (major, minor) in DEVICES.items():
        os.mknod(dev / name, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
        os.chmod(dev / name, 0o666)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, dev / name)
    for name, mode in (("pts", 0o755), ("shm", 0o1777)):
        (dev / name).mkdir()
        os.chmod(dev / name, mode)


@contextmanager
def container_root(image: Image) -> Iterator[Path]:
    """
    The root file system of a new container of the image (the image's files,
    its volumes' contents included, in a writable copy), with /proc and a
    /dev of a container's devices mounted; unmounted and removed after.
    """
    podman = image.podman
    cid = podman("create", "--network=none", image.ref).strip()
    mounted: list[Path] = []
    try:
        root = Path(podman("mount", cid).strip())
        mount("-t", "proc", "-o", "nosuid,nodev,noexec", "proc", str(root / "proc"))
        mounted.append(root / "proc")
        mount("-t", "tmpfs", "-o", "nosuid,mode=0755,size=1m", "tmpfs", str(root / "dev"))
        mounted.append(root / "dev")
        populate_dev(root / "dev")
        yield root
    finally:
        for path in reversed(mounted):
            unmount(path)
        podman("rm", "--force", cid)


def user_of(config: dict[str, Any]) -> tuple[int, int]:
    user, _, group = config["User"].partition(":")
    return int(user), int(group or user)


def chroot_argv(root: Path, config: dict[str, Any], command: list[str],
                env: dict[str, str] | None = None) -> list[str]:
    """
    ``command`` as the runtime would run it in the image: as its USER, in
    its WORKDIR, with its environment only (plus ``env``).
    """
    uid, gid = user_of(config)
    variables = [*config["Env"], *(f"{k}={v}" for k, v in (env or {}).items())]
    return ["chroot", f"--userspec={uid}:{gid}", str(root),
            "/usr/bin/env", "-i", "-C", config.get("WorkingDir") or "/", *variables, *command]


class ImageNode(Process):
    """The image's ENTRYPOINT and CMD with ``flags`` after them, chrooted."""

    def __init__(self, image: Image, root: Path, name: str, *flags: str) -> None:
        config = image.config
        command = [*config["Entrypoint"], *config["Cmd"], *LOOPBACK, *cluster_args(), *flags]
        super().__init__(chroot_argv(root, config, command), image.work, name)
        match = self.wait_for(r"listening for players on \S+ \(IPv4Address\(type='TCP', "
                              r"host='127\.0\.0\.1', port=(\d+)\)\)", timeout=60)
        self.port = int(match.group(1))
        http = self.wait_for(r"serving metrics and health on \S+ \(IPv4Address\("
                             r"type='TCP', host='127\.0\.0\.1', port=(\d+)\)\)", timeout=30)
        self.http_port = int(http.group(1))
        self.wait_for(r"node \S+ started", timeout=30)

    def status(self, field: str) -> str:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return line.split(":", 1)[1].split()[0]
        raise AssertionError(f"no {field} in /proc/{self.proc.pid}/status")

    def stop_with(self, signal_name: str) -> None:
        """The image's STOPSIGNAL: the node drains and exits 0."""
        self.signal(signal.Signals[signal_name])
        code = self.wait(30)
        assert code == 0, self.output[-4000:]
        assert "Server Shut Down." in self.output


def healthz(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return 0, str(e)


def error_of(client: WireClient) -> m.Error:
    err = client.expect(m.Error)
    client.wait_closed()
    client.close()
    return err


# -- the tests ---------------------------------------------------------------------


def test_the_image_is_configured_as_the_dockerfile_says(image: Image) -> None:
    config = image.config
    assert config["Entrypoint"] == ["twistd", "--nodaemon", "--pidfile=", "mmo"]
    assert config["Cmd"] == ["--config", "/etc/mmo/mmo.toml"]
    assert config["User"] == "10001:10001"
    assert config["WorkingDir"] == "/var/lib/mmo"
    assert set(config["Volumes"]) == {"/etc/mmo", "/var/lib/mmo"}
    assert set(config["ExposedPorts"]) == {"4000/tcp", "9100/tcp", "30001/udp"}
    assert config["StopSignal"] == "SIGTERM"
    assert image.inspect["Healthcheck"]["Test"] == [
        "CMD", "python", "/opt/mmo/libexec/healthcheck.py"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["PATH"].startswith("/opt/mmo/bin:")
    assert env["MMO_HEALTH_URL"] == "http://127.0.0.1:9100/healthz"
    # Build arguments of the build stage stay out of the final image.
    history = json.dumps(image.inspect["History"])
    assert "PIP_FIND_LINKS" not in history and "PIP_NO_INDEX" not in history
    print(f"image built in {image.timings}")


def test_the_entrypoint_serves_players_as_uid_10001(image: Image) -> None:
    config = image.config
    uid, gid = user_of(config)
    signal_name = config["StopSignal"]
    with container_root(image) as root:
        data = root / config["WorkingDir"].lstrip("/")
        # USER names the image's own user and group, which own the data volume.
        assert f"mmo:x:{uid}:{gid}:" in (root / "etc/passwd").read_text()
        assert f"mmo:x:{gid}:" in (root / "etc/group").read_text()
        assert (data.stat().st_uid, data.stat().st_gid) == (uid, gid)
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        assert (root / "etc/mmo/mmo.toml").read_bytes() == (ROOT / "docker/mmo.toml").read_bytes()
        nodes: list[ImageNode] = []
        try:
            # An operator opens registration for a first run (docs/OPERATIONS.md,
            # "Registration and guessing") ...
            first = ImageNode(image, root, "image-node-1", "--open-registration")
            nodes.append(first)
            assert first.status("Uid") == str(uid) and first.status("Gid") == str(gid)
            assert os.readlink(f"/proc/{first.proc.pid}/root") == str(root)
            assert "ttl 0" in first.output and "via 127.0.0.1" in first.output
            assert wait_until(lambda: healthz(first.http_port)[0] == 200, timeout=30,
                              what="/healthz 200")
            assert healthz(first.http_port) == (200, "ok\n")
            check = image.inspect["Healthcheck"]["Test"]
            assert check[0] == "CMD"
            health = subprocess.run(
                chroot_argv(root, config, check[1:], env={
                    "MMO_HEALTH_URL": f"http://127.0.0.1:{first.http_port}/healthz"}),
                capture_output=True, text=True, timeout=60)
            assert (health.returncode, health.stdout) == (0, "ok\n"), health.stderr
            alice = WireClient(first.port)
            assert alice.login("alice").zone
            alice.close()
            first.stop_with(signal_name)

            # ... then the image's own config: registration closed, the
            # account kept in the volume.
            second = ImageNode(image, root, "image-node-2")
            nodes.append(second)
            alice = WireClient(second.port)
            assert alice.login("alice").zone
            alice.close()
            stranger = WireClient(second.port)
            stranger.send(m.Hello(m.PROTOCOL_VERSION, "t"), m.Login("mallory", "pw"))
            assert error_of(stranger).code == m.ErrorCode.REGISTRATION_CLOSED
            second.stop_with(signal_name)
        finally:
            for node in nodes:
                node.stop()
        for node in nodes:
            assert "Traceback" not in node.output, node.output[-4000:]
            # The plugin caches were made at build time, by root.
            assert "Unable to write to plugin cache" not in node.output, node.output[-4000:]
        owned = {path.name: path.stat() for path in data.iterdir()}
        assert {"mmo.sqlite3", "cluster.key"} <= set(owned)
        assert all(st.st_uid == uid for st in owned.values()), owned
        assert stat.S_IMODE(owned["cluster.key"].st_mode) == 0o600
