"""A private multi-node Ray cluster on loopback for tests: started and stopped by the test alone.

Each node gets its own loopback address (127.0.0.2, 127.0.0.3, ...; Ray rewrites 127.0.0.1 to
the machine's outward address), its own free ports and a cluster-wide auth token in a short
temporary directory (Unix socket paths must stay under 108 bytes). Every ``ray start`` runs in
a new session, so :meth:`LoopbackCluster.stop` signals exactly the processes it left behind:
never ``ray stop``, which kills every Ray process on the machine, other users' included.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def session_pids(sid: int) -> list[int]:
    """Live processes whose session id is ``sid``."""
    pids = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            pids.append(int(p))
    return pids


def stop_sessions(sids: list[int], grace: float = 3.0) -> None:
    """SIGTERM every process of these sessions, SIGKILL what is left after ``grace`` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        for sid in sids:
            for pid in session_pids(sid):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        deadline = time.time() + wait
        while any(session_pids(s) for s in sids) and time.time() < deadline:
            time.sleep(0.2)
        if not any(session_pids(s) for s in sids):
            return


class LoopbackCluster:
    def __init__(self, head_ip: str = "127.0.0.2"):
        self.temp_dir = tempfile.mkdtemp(prefix="rc", dir="/tmp")
        self.head_ip = head_ip
        self.address: str | None = None
        self.sids: list[int] = []
        token = Path(self.temp_dir) / "auth_token"
        token.write_text(secrets.token_hex(32))
        token.chmod(0o600)
        # Ray >= 2.5x turns token auth on for a new head; every node and the driver share this token.
        self.env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token), "RAY_USAGE_STATS_ENABLED": "0"}

    def _start(self, args: list[str], ip: str, num_cpus: int, name: str) -> None:
        cmd = [RAY, "start", f"--node-ip-address={ip}", f"--num-cpus={num_cpus}", f"--node-name={name}",
               f"--temp-dir={self.temp_dir}", f"--ray-client-server-port={free_port(ip)}",
               f"--dashboard-agent-listen-port={free_port(ip)}", f"--dashboard-agent-grpc-port={free_port(ip)}",
               f"--runtime-env-agent-port={free_port(ip)}", f"--metrics-export-port={free_port(ip)}",
               "--object-store-memory=100000000", "--disable-usage-stats", *args]
        with subprocess.Popen(cmd, env={**os.environ, **self.env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, start_new_session=True) as p:
            self.sids.append(p.pid)  # the session id of everything this `ray start` leaves running
            out, _ = p.communicate(timeout=240)
        if p.returncode != 0:
            raise RuntimeError(f"ray start failed ({p.returncode}):\n{out[-3000:]}")

    def start_head(self, num_cpus: int = 1) -> str:
        port = free_port(self.head_ip)
        self._start(["--head", f"--port={port}", "--include-dashboard=false",
                     f"--dashboard-port={free_port(self.head_ip)}"], self.head_ip, num_cpus, "head")
        self.address = f"{self.head_ip}:{port}"
        return self.address

    def add_node(self, ip: str, num_cpus: int = 1, name: str = "second") -> None:
        self._start([f"--address={self.address}"], ip, num_cpus, name)

    def pids(self) -> list[int]:
        return [pid for sid in self.sids for pid in session_pids(sid)]

    def stop(self) -> None:
        stop_sessions(self.sids)
        shutil.rmtree(self.temp_dir, ignore_errors=True)
