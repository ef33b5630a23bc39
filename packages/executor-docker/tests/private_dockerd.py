"""A Docker daemon of the test's own, which the test may kill and start again.

The fault tests stop the daemon mid-run (SIGTERM, SIGKILL) and start it again on the
same directories. They never touch the system daemon: this one has

- its own API socket (``--host unix://<dir>/docker.sock``), ``--data-root``,
  ``--exec-root``, ``--pidfile`` and ``--config-file`` (empty), all under one
  temporary directory;
- its own containerd (started by dockerd under the exec root), in containerd
  namespaces of its own (``--containerd-namespace``, ``--containerd-plugins-namespace``)
  and its own cgroup parent;
- its own bridge: an interface ``jrtestN`` created here with an address in
  ``10.99.N.0/24`` and passed as ``--bridge`` (never ``--bridge none``, which would make
  dockerd delete the host's ``docker0``); ``--iptables=false --ip-masq=false
  --ip-forward=false`` keep the host's firewall and sysctls as they are.

The test image is imported into it from the busybox-static binary, the way
``.ci/prepare-docker.sh`` makes the system one. Every signal goes to this daemon's own
pid, read from its pid file, never to a process found by name.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.constants
import docker.errors
import requests

from jobrelay_docker._transport import use_safe_unix_transport

__all__ = ["PrivateDockerd", "private_dockerd"]

IMAGE = "jobrelay-test/busybox:latest"
_MIN_API = docker.constants.MINIMUM_DOCKER_API_VERSION
_START_TIMEOUT = 60.0
_STOP_TIMEOUT = 30.0


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=False, capture_output=True, text=True, timeout=30)


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


def _free_bridge() -> tuple[str, int]:
    """Return an interface name ``jrtestN`` that does not exist yet, and its N."""
    for number in range(10):
        name = f"jrtest{number}"
        if _run("ip", "link", "show", name).returncode != 0:
            return name, number
    raise RuntimeError("jrtest0..jrtest9 all exist: remove stale test bridges first")


def _busybox_rootfs(tar_path: Path) -> None:
    """Write a tar of a root filesystem with busybox-static and its applet links."""
    busybox = shutil.which("busybox")
    if busybox is None:
        raise RuntimeError("busybox (busybox-static) is not installed")
    applets = _run(busybox, "--list").stdout.split()
    with tarfile.open(tar_path, "w") as tar:

        def directory(name: str, mode: int = 0o755) -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, mode
            tar.addfile(info)

        def text(name: str, content: str) -> None:
            data = content.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, fileobj=io.BytesIO(data))

        for name in ("bin", "etc", "work"):
            directory(name)
        directory("tmp", 0o1777)
        tar.add(busybox, arcname="bin/busybox")
        for applet in applets:
            if applet != "busybox":
                link = tarfile.TarInfo(f"bin/{applet}")
                link.type, link.linkname = tarfile.SYMTYPE, "busybox"
                tar.addfile(link)
        text("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n")
        text("etc/group", "root:x:0:\nnogroup:x:65534:\n")


class PrivateDockerd:
    """One private dockerd: start, signal and restart it on the same directories."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tag = uuid.uuid4().hex[:8]
        self.socket = root / "docker.sock"
        self.url = f"unix://{self.socket}"
        self.pidfile = root / "docker.pid"
        self.log_path = root / "dockerd.log"
        self.bridge, number = _free_bridge()
        self.subnet_address = f"10.99.{number}.1/24"
        self.process: subprocess.Popen[bytes] | None = None
        self.api_version = _MIN_API
        self.starts = 0

    # -- the bridge -------------------------------------------------------------------

    def create_bridge(self) -> None:
        """Create our bridge interface with its address; it is ours to delete later."""
        for argv in (
            ("ip", "link", "add", self.bridge, "type", "bridge"),
            ("ip", "addr", "add", self.subnet_address, "dev", self.bridge),
            ("ip", "link", "set", self.bridge, "up"),
        ):
            done = _run(*argv)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip()}")

    def delete_bridge(self) -> None:
        """Delete the bridge this object created (and nothing else)."""
        _run("ip", "link", "del", self.bridge)

    # -- the daemon -------------------------------------------------------------------

    def argv(self) -> list[str]:
        """The dockerd command line."""
        config = self.root / "daemon.json"
        if not config.exists():
            config.write_text(json.dumps({}))
        return [
            "dockerd",
            f"--host={self.url}",
            f"--data-root={self.root / 'data'}",
            f"--exec-root={self.root / 'exec'}",
            f"--pidfile={self.pidfile}",
            f"--config-file={config}",
            f"--containerd-namespace=jrtest-{self.tag}",
            f"--containerd-plugins-namespace=jrtest-{self.tag}-plugins",
            f"--cgroup-parent=jrtest-{self.tag}",
            f"--bridge={self.bridge}",
            "--iptables=false",
            "--ip-masq=false",
            "--ip-forward=false",
            "--log-level=warn",
        ]

    def start(self) -> None:
        """Start dockerd and wait until it answers; raise if it does not."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError("the private dockerd is already running")
        self.starts += 1
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                self.argv(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        finally:
            log.close()
        deadline = time.monotonic() + _START_TIMEOUT
        while not self.answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = self.log_path.read_text(errors="replace")[-3000:]
                self.kill(signal.SIGKILL)
                raise RuntimeError(f"private dockerd did not come up:\n{tail}")
            time.sleep(0.1)
        with self.api() as api:
            self.api_version = str(api.version()["ApiVersion"])

    def answers(self) -> bool:
        """True when the daemon answers a ping on its socket."""
        if not self.socket.exists():
            return False
        api = self.api(timeout=2)
        try:
            return bool(api.ping())
        except (docker.errors.DockerException, requests.RequestException, OSError):
            return False
        finally:
            api.close()

    @property
    def pid(self) -> int | None:
        """The running daemon's pid (from our own Popen, checked against the pid file)."""
        if self.process is None or self.process.poll() is not None:
            return None
        return self.process.pid

    def kill(self, sig: signal.Signals) -> None:
        """Send ``sig`` to our dockerd and wait until it has exited."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(_STOP_TIMEOUT)
        if sig is signal.SIGKILL:
            # dockerd's containerd child dies with it (parent-death signal); the pid
            # file and socket stay behind, as after a real crash.
            self._wait_containerd_gone()

    def _wait_containerd_gone(self) -> None:
        pid_file = self.root / "exec" / "containerd" / "containerd.pid"
        with contextlib.suppress(OSError, ValueError):
            pid = int(pid_file.read_text().strip())
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except OSError:
                    return
                time.sleep(0.05)

    def restart(self, *, down: float, sig: signal.Signals = signal.SIGKILL) -> None:
        """Stop the daemon with ``sig``, keep it down ``down`` seconds, start it again."""
        self.kill(sig)
        time.sleep(down)
        self.start()

    def sweep(self) -> None:
        """Remove what a killed daemon can leave behind: processes, mounts, cgroups.

        After a SIGKILL, dockerd's containerd dies with it, and the runtime shims
        and container processes it started may outlive both. Everything found here
        is ours by construction: processes in our cgroup parent or naming our
        containerd socket, mounts under our directory.
        """
        cgroups = sorted(Path("/sys/fs/cgroup").glob(f"*/jrtest-{self.tag}"))
        for group in cgroups:
            for procs in group.rglob("cgroup.procs"):
                with contextlib.suppress(OSError, ValueError):
                    for pid in procs.read_text().split():
                        _kill(int(pid))
        marker = f"{self.root}/exec/containerd/".encode()
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                with contextlib.suppress(OSError):
                    if marker in (proc / "cmdline").read_bytes():
                        _kill(int(proc.name))
        with contextlib.suppress(OSError):
            mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
            for mount in sorted(mounts, key=len, reverse=True):
                if mount == str(self.root) or mount.startswith(f"{self.root}/"):
                    _run("umount", "-l", mount)
        deadline = time.monotonic() + 5  # killed processes leave their cgroups shortly
        while any(group.exists() for group in cgroups) and time.monotonic() < deadline:
            for group in cgroups:
                for directory in sorted(group.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                    if directory.is_dir():
                        with contextlib.suppress(OSError):
                            directory.rmdir()
                with contextlib.suppress(OSError):
                    group.rmdir()
            time.sleep(0.05)

    def api(self, timeout: float = 30) -> docker.APIClient:
        """A raw client on this daemon (the test's own eyes).

        The API version is fixed (docker-py would ask the daemon from inside its
        constructor, and leak the socket when that fails), and the transport closes
        its socket when connecting fails, as the executor's does.
        """
        api = docker.APIClient(base_url=self.url, timeout=timeout, version=self.api_version)
        return use_safe_unix_transport(api)

    def import_image(self) -> None:
        """Import the busybox-static root filesystem as the test image."""
        tar_path = self.root / "rootfs.tar"
        _busybox_rootfs(tar_path)
        with self.api(timeout=120) as api:
            repository, tag = IMAGE.rsplit(":", 1)
            api.import_image_from_file(
                str(tar_path),
                repository=repository,
                tag=tag,
                changes=["ENV PATH=/bin", 'CMD ["sh"]'],
            )
            api.inspect_image(IMAGE)
        tar_path.unlink()


@contextlib.contextmanager
def private_dockerd() -> Iterator[PrivateDockerd]:
    """Run a private dockerd with the test image for the block; remove all of it after."""
    root = Path(tempfile.mkdtemp(prefix="jrd-", dir="/tmp"))
    daemon = PrivateDockerd(root)
    daemon.create_bridge()
    try:
        daemon.start()
        daemon.import_image()
        yield daemon
    finally:
        if daemon.pid is None and daemon.starts:
            # Stopped by the test: start it once more so it cleans up its containers.
            with contextlib.suppress(RuntimeError):
                daemon.start()
        with contextlib.suppress(Exception), daemon.api() as api:
            for summary in api.containers(all=True):
                api.remove_container(summary["Id"], force=True, v=True)
        daemon.kill(signal.SIGTERM)
        daemon.sweep()
        daemon.delete_bridge()
        shutil.rmtree(root, ignore_errors=True)
