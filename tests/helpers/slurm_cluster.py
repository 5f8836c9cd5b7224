"""A private single-node Slurm cluster on 127.0.0.1, for tests (Debian's munge, slurmctld, slurmd and
slurm-client, Slurm 22.05; how it is used: README, "Cluster (Slurm)").

Everything lives in a runtime directory of its own: a MUNGE key and socket, the slurm.conf, state, spool,
logs and pid files, on ports picked free at start. Only one system path is touched: the job steps that
snakemake-executor-plugin-slurm starts inside a job run `srun` with SLURM_CONF removed from the
environment, so srun reads the compiled-in /etc/slurm/slurm.conf. The cluster links that path to its own
file, and only when nothing is there (a machine with a real Slurm configuration is left alone).

`stop()` cancels the cluster's jobs and stops only the daemons it started, by their pid files.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

DEFAULT_CONF = Path("/etc/slurm/slurm.conf")
RUNTIME_PREFIX = "cxrbench-slurm-"
NODE = "localhost"
DAEMONS = ("munged", "slurmctld", "slurmd")
COMMANDS = ("mungekey", "sbatch", "srun", "squeue", "sinfo", "scancel", "timeout")
# Daemons live in sbin, which a non-login PATH may lack.
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])
# Seconds the controller keeps a finished job visible to squeue. The plugin trusts
# `--slurm-status-command squeue` only when this is at least 3x its first status-check interval, and the
# test reads every job of the run back from squeue, so it outlasts any tiny run.
MIN_JOB_AGE = 3600
# Memory is no consumable here (CR_Core), so the node may advertise at least what the workflow's cluster
# jobs ask for (16 GB for decoding and training) also on a smaller test machine.
ADVERTISED_MEMORY_MB = 32768


class ClusterUnavailable(Exception):
    """Slurm cannot be run on this machine; the message says why (tests skip on it)."""


def timed(cmd: list[str], seconds: int) -> list[str]:
    """`cmd` under `timeout -k`: TERM to its process group after `seconds`, KILL 10 s later."""
    return ["timeout", "-k", "10", str(seconds), *cmd]


def run_timed(cmd: list[str], seconds: int, **popen_args) -> subprocess.CompletedProcess:
    """`cmd` under `timeout -k`, output captured as text. If this process is interrupted meanwhile, the
    timeout process is told to stop: it passes the signal to the command's whole process group and kills
    what is left 10 s later, so nothing outlives the caller."""
    with subprocess.Popen(timed(cmd, seconds), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          **popen_args) as process:
        try:
            stdout, stderr = process.communicate()
        except BaseException:
            process.terminate()
            process.wait()
            raise
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@contextlib.contextmanager
def terminate_unwinds() -> Iterator[None]:
    """Within the block, SIGTERM (e.g. a CI time limit) acts like Ctrl-C: KeyboardInterrupt unwinds through
    `finally` clauses that stop the cluster, and pytest ends the session."""

    def unwind(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, unwind)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def find(program: str) -> str | None:
    return shutil.which(program, path=SEARCH_PATH)


def why_unavailable() -> str | None:
    """Why a private cluster cannot start here, or None when it can."""
    if os.geteuid() != 0:
        return "starting Slurm daemons needs root"
    missing = [name for name in DAEMONS + COMMANDS if find(name) is None]
    if missing:
        return (f"not installed: {', '.join(missing)} (Debian: apt-get install munge slurmctld slurmd "
                "slurm-client; .ci/run does this)")
    if DEFAULT_CONF.exists():
        target = f" (links to {DEFAULT_CONF.resolve()})" if DEFAULT_CONF.is_symlink() else ""
        return (f"{DEFAULT_CONF} already exists{target}: this machine has a Slurm configuration, or a test "
                "cluster from a killed run is still up; the test leaves it alone")
    if DEFAULT_CONF.is_symlink() and not _stale_link_of_ours():
        return f"{DEFAULT_CONF} is a broken link to {DEFAULT_CONF.readlink()}, which the test leaves alone"
    return None


def _stale_link_of_ours() -> bool:
    """A dangling /etc/slurm/slurm.conf link into a runtime directory that a killed run left behind."""
    return (DEFAULT_CONF.is_symlink() and not DEFAULT_CONF.exists()
            and DEFAULT_CONF.readlink().parent.name.startswith(RUNTIME_PREFIX))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise RuntimeError("MemTotal missing from /proc/meminfo")


def _running(pid: int, name: str) -> bool:
    """Whether `pid` is a live (not zombie) process called `name`; False once it exited or was reused."""
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return comm == name and state != "Z"


def _pid_in(pid_file: Path) -> int:
    """The pid a daemon wrote, or -1 when it wrote none (never started, or removed it on exit)."""
    return int(pid_file.read_text().split()[0]) if pid_file.is_file() else -1


def _stop_daemon(pid_file: Path, name: str, grace_s: float = 15.0) -> None:
    """TERM the daemon named in `pid_file` (if it is still that daemon), KILL it after `grace_s`."""
    pid = _pid_in(pid_file)
    if not _running(pid, name):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while _running(pid, name) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _running(pid, name):
        os.kill(pid, signal.SIGKILL)


class SlurmCluster:
    """One node (`localhost`, all CPUs) in one partition named `partition`, which is not the default
    partition: a job reaches it only when the submitter names it."""

    def __init__(self, partition: str) -> None:
        self.partition = partition
        self.root: Path | None = None
        self._linked_default_conf = False

    @property
    def conf(self) -> Path:
        assert self.root is not None, "cluster not started"
        return self.root / "slurm.conf"

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """`base` (default: this process's environment) for Slurm's client commands: pointed at this
        cluster, without Slurm variables inherited from an enclosing job or shell."""
        env = {key: value for key, value in (os.environ if base is None else base).items()
               if not key.startswith(("SLURM_", "SBATCH_", "SRUN_", "SQUEUE_"))}
        env["SLURM_CONF"] = str(self.conf)
        return env

    def run(self, *cmd: str, seconds: int = 30) -> subprocess.CompletedProcess:
        """A Slurm client command against this cluster; raises with its output when it fails."""
        result = run_timed(list(cmd), seconds, env=self.env())
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result

    def start(self, ready_within_s: float = 60.0) -> None:
        reason = why_unavailable()
        if reason:
            raise ClusterUnavailable(reason)
        # munged wants every directory above its socket searchable by all; pytest's tmp dirs are 0700.
        self.root = Path(tempfile.mkdtemp(prefix=RUNTIME_PREFIX, dir="/tmp"))
        self.root.chmod(0o755)
        for sub in ("munge", "state", "spool"):
            (self.root / sub).mkdir(mode=0o700)
        try:
            self._start_munge()
            self.conf.write_text(self._slurm_conf())
            DEFAULT_CONF.parent.mkdir(parents=True, exist_ok=True)
            if _stale_link_of_ours():
                DEFAULT_CONF.unlink()
            DEFAULT_CONF.symlink_to(self.conf)
            self._linked_default_conf = True
            # Each daemon forks into the background once it is up, and the command returns.
            self.run(find("slurmctld"), "-f", str(self.conf))
            self.run(find("slurmd"), "-f", str(self.conf), "-N", NODE)
            self._wait_until_idle(ready_within_s)
        except BaseException as error:
            logs = self.log_tails()
            self.stop()
            if isinstance(error, (OSError, RuntimeError)):
                raise ClusterUnavailable(f"Slurm did not start: {error}\n{logs}") from error
            raise

    def _start_munge(self) -> None:
        munge = self.root / "munge"
        self.run(find("mungekey"), "--create", f"--keyfile={munge / 'munge.key'}")
        self.run(find("munged"), f"--socket={self.root / 'munge.socket'}", f"--key-file={munge / 'munge.key'}",
                 f"--pid-file={self.root / 'munged.pid'}", f"--log-file={self.root / 'munged.log'}",
                 f"--seed-file={munge / 'munged.seed'}")

    def _slurm_conf(self) -> str:
        root = self.root
        cpus = len(os.sched_getaffinity(0))
        memory_mb = max(int(_memory_mb() * 0.9), ADVERTISED_MEMORY_MB)
        return "\n".join([
            "ClusterName=cxrbench-test",
            f"SlurmctldHost={NODE}",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={root / 'munge.socket'}",
            f"StateSaveLocation={root / 'state'}",
            f"SlurmdSpoolDir={root / 'spool'}",
            f"SlurmctldPidFile={root / 'slurmctld.pid'}",
            f"SlurmdPidFile={root / 'slurmd.pid'}",
            f"SlurmctldLogFile={root / 'slurmctld.log'}",
            f"SlurmdLogFile={root / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SwitchType=switch/none",
            "MpiDefault=none",
            "SchedulerType=sched/backfill",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            # The node's advertised memory (below) comes from here, not from the hardware.
            "SlurmdParameters=config_overrides",
            "ReturnToService=2",
            "JobAcctGatherType=jobacct_gather/none",
            f"MinJobAge={MIN_JOB_AGE}",
            "InactiveLimit=0",
            "KillWait=5",
            f"NodeName={NODE} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN",
            f"PartitionName={self.partition} Nodes={NODE} Default=NO MaxTime=INFINITE State=UP",
            "",
        ])

    def _wait_until_idle(self, within_s: float) -> None:
        deadline = time.monotonic() + within_s
        state = ""
        while time.monotonic() < deadline:
            state = run_timed([find("sinfo"), "-h", "-n", NODE, "-o", "%T"], 10, env=self.env()).stdout.strip()
            if state == "idle":
                return
            time.sleep(0.5)
        raise RuntimeError(f"node {NODE} not idle after {within_s:.0f} s (state: {state or 'no answer'})")

    def jobs(self, name: str) -> list[dict[str, str]]:
        """The controller's record of every job called `name` (snakemake-executor-plugin-slurm names each
        job of a run after the run's id), finished ones included."""
        fields = {"id": "%i", "state": "%T", "partition": "%P", "cpus": "%C", "comment": "%k"}
        result = self.run(find("squeue"), "--states=all", "--noheader", "--name", name,
                          f"--format={'|'.join(fields.values())}")
        return [dict(zip(fields, line.split("|"))) for line in result.stdout.splitlines() if line.strip()]

    def log_tails(self, lines: int = 15) -> str:
        if self.root is None:
            return ""
        tails = []
        for log in ("munged.log", "slurmctld.log", "slurmd.log"):
            path = self.root / log
            if path.is_file():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                tails.append("\n".join([f"--- {path.name}", *tail]))
        return "\n".join(tails)

    def stop(self) -> None:
        """Cancel the cluster's jobs, stop its daemons by their pid files, remove what start() made."""
        if self.root is None:
            return
        try:
            if _running(_pid_in(self.root / "slurmctld.pid"), "slurmctld"):
                self._cancel_all_jobs()
        finally:
            for pid_file, name in (("slurmd.pid", "slurmd"), ("slurmctld.pid", "slurmctld"),
                                   ("munged.pid", "munged")):
                _stop_daemon(self.root / pid_file, name)
            if self._linked_default_conf and DEFAULT_CONF.is_symlink() and DEFAULT_CONF.readlink() == self.conf:
                DEFAULT_CONF.unlink()
            self._linked_default_conf = False
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def _cancel_all_jobs(self, within_s: float = 30.0) -> None:
        """Jobs run under slurmstepd, which outlives slurmd: end them before the daemons go."""
        squeue = [find("squeue"), "--noheader", "--format=%i", "--states=PENDING,RUNNING,COMPLETING,CONFIGURING"]
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            active = self.run(*squeue).stdout.split()
            if not active:
                return
            self.run(find("scancel"), *active)
            time.sleep(1)

    def __enter__(self) -> SlurmCluster:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
