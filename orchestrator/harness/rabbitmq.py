"""A throwaway RabbitMQ node of one's own, for what cannot be staged on the shared broker.

The machine's broker (``rabbit@localhost`` on 127.0.0.1:5672) serves everyone
and must never be stopped; a test or a ``saga check`` campaign that kills a
broker gets a :class:`RabbitNode` instead: its own node name, AMQP port,
distribution port, configuration, Mnesia directory, feature flags and logs, all
in one folder, and no plugin (the management plugin would take the shared
node's 15672).

What the node shares with the machine's broker, and is left alone:

- ``epmd``, the Erlang port mapper every node on the host registers with. If
  none runs, the first node starts one that outlives it: it is never counted
  among the node's processes, hence never killed;
- the Erlang cookie. Started as root, the server runs as the ``rabbitmq``
  system user (like the Debian scripts do) and so does ``rabbitmqctl``: both
  read that user's cookie and the CLI can talk to the node.

The node's OS processes (the start script, ``beam.smp``, ``erl_child_setup``
and the port programs it spawns) are found by the ``RABBITMQ_NODENAME`` in
their environment, which every one of them inherits from the start: unlike
the process tree, that survives the parent's death, so :meth:`RabbitNode.crash`
can kill them all and nothing is left behind.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import quote

from orchestrator.harness.processes import down_for, free_port, port_free

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
"""Where the Debian package keeps the scripts ``/usr/sbin``'s wrappers call."""

SERVER = RABBITMQ_BIN / "rabbitmq-server"
CTL = RABBITMQ_BIN / "rabbitmqctl"

SYSTEM_USER = "rabbitmq"

#: The ports rabbitmqctl's own Erlang distribution listens on (rabbitmq-env's
#: default): a node listening there would make the CLI fail.
CLI_DIST_PORTS = range(35672, 35683)

#: Processes that carry a node's environment but belong to every node.
SHARED_PROGRAMS = frozenset({"epmd"})


class BrokerError(RuntimeError):
    """A private node could not be started, stopped or reached."""


def rabbitmq_installed() -> bool:
    """Whether a private node can be made here (the server scripts are installed)."""
    return all(os.access(path, os.X_OK) for path in (SERVER, CTL))


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _node_port(*taken: int) -> int:
    """A free port that is neither in ``taken`` nor one rabbitmqctl needs."""
    while True:
        port = free_port()
        if port not in taken and port not in CLI_DIST_PORTS:
            return port


def _base_environment() -> dict[str, str]:
    """This process's environment without RabbitMQ or Erlang settings.

    The node is configured only through what it is given, whatever the shell
    that started the tool has exported.
    """
    return {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}


def _environ_has(pid: int, entry: bytes) -> bool:
    try:
        # A zombie holds no port nor file and cannot be killed again: not running.
        if Path(f"/proc/{pid}/stat").read_bytes().rpartition(b")")[2].split()[0] == b"Z":
            return False
        if Path(f"/proc/{pid}/comm").read_text().strip() in SHARED_PROGRAMS:
            return False
        return entry in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except (OSError, IndexError):  # gone meanwhile, or not ours to read
        return False


class RabbitNode:
    """One RabbitMQ node in a folder of its own, on loopback ports of its own.

    Its data outlives :meth:`crash` and :meth:`stop`: started again, the node
    recovers its durable queues and their persistent messages. Only
    :meth:`destroy` deletes them.
    """

    def __init__(
        self, root: Path, port: int | None = None, config: Mapping[str, str] | None = None
    ) -> None:
        """A node (not started) in ``root`` with AMQP port ``port`` (a free one if None).

        ``config``: more ``rabbitmq.conf`` settings (``default_user``, say), after the
        harness's own.
        """
        self.root = root
        self.config = dict(config or {})
        """The extra ``rabbitmq.conf`` settings."""
        self.port = port if port is not None else _node_port()
        self.dist_port = _node_port(self.port)
        """Its Erlang distribution port (what rabbitmqctl connects to, via epmd)."""
        self.name = f"saga-test-{self.port}@localhost"
        """Its Erlang node name, for ``rabbitmqctl -n``."""
        self.user = SYSTEM_USER if os.geteuid() == 0 else None
        """The system user the node runs as (None: this process's user)."""
        self.crashes: list[tuple[float, float]] = []
        """(down at, up again at), ``time.monotonic()`` seconds."""
        self._proc: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"RabbitNode({self.name}, port={self.port}, root={self.root})"

    @property
    def config_file(self) -> Path:
        """Its ``rabbitmq.conf``."""
        return self.root / "rabbitmq.conf"

    @property
    def log_dir(self) -> Path:
        """``RABBITMQ_LOG_BASE``: the node's log is ``<name>.log`` there."""
        return self.root / "log"

    @property
    def output(self) -> Path:
        """What the start script prints (banner, boot failures), every start appended."""
        return self.log_dir / "server.out"

    @property
    def pid_file(self) -> Path:
        """Where the node writes the OS pid of its ``beam.smp``."""
        return self.root / f"{self.name}.pid"

    def url(self, vhost: str = "/") -> str:
        """The AMQP URL of virtual host ``vhost`` for the node's default user (guest
        unless ``config`` names another)."""
        user = quote(self.config.get("default_user", "guest"), safe="")
        password = quote(self.config.get("default_pass", "guest"), safe="")
        return f"amqp://{user}:{password}@127.0.0.1:{self.port}/{quote(vhost, safe='')}"

    def _as_user(self, *argv: str) -> list[str]:
        if self.user is None:
            return list(argv)
        return ["runuser", "-u", self.user, "--", *argv]

    def _server_environment(self) -> dict[str, str]:
        root = self.root
        return {
            **_base_environment(),
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": str(self.config_file),
            "RABBITMQ_CONFIG_FILES": str(root / "conf.d"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(root / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(root / "rabbitmq-env.conf"),
            "RABBITMQ_MNESIA_BASE": str(root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.log_dir),
            "RABBITMQ_PID_FILE": str(self.pid_file),
            "RABBITMQ_FEATURE_FLAGS_FILE": str(root / "feature_flags"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(root / "enabled_plugins"),
            # The node name on the command line lets `pgrep -f NAME` find the VM;
            # the distribution listens on loopback only, as the shared node's does.
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": (
                f"-kernel inet_dist_use_interface {{127,0,0,1}} -saga_node {self.name}"
            ),
            # Only used when this node is the first of the host and starts epmd.
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    def _prepare(self) -> None:
        """Write the node's files (again: harmless) and hand the folder to its user."""
        for directory in (self.root, self.root / "conf.d", self.root / "mnesia", self.log_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.port}\n"
            "loopback_users = none\n"
            # The node's log goes to its file only; stdout keeps the banner.
            "log.console = false\n"
            + "".join(f"{key} = {value}\n" for key, value in self.config.items())
        )
        # Empty, so the machine's /etc/rabbitmq/rabbitmq-env.conf is not read.
        (self.root / "rabbitmq-env.conf").write_text("")
        (self.root / "enabled_plugins").write_text("[].\n")
        if self.user is None:
            return
        try:
            pwd.getpwnam(self.user)
        except KeyError:
            raise BrokerError(f"no {self.user} system user: install rabbitmq-server") from None
        for path in (self.root, *self.root.rglob("*")):
            shutil.chown(path, self.user, self.user)
        reachable = subprocess.run(
            self._as_user("test", "-w", str(self.root), "-a", "-x", str(self.root)),
            capture_output=True,
            check=False,
        )
        if reachable.returncode != 0:
            # pytest's tmp_path is under a 0700 directory of root's, for one.
            raise BrokerError(
                f"{self.root} is out of the {self.user} user's reach (a parent directory "
                "not searchable by others?): put the node under /tmp"
            )

    def _ctl(self, *args: str, timeout_s: float = 60) -> str:
        return self.cli("rabbitmqctl", *args, timeout_s=timeout_s)

    def cli(self, tool: str, *args: str, timeout_s: float = 60) -> str:
        """``tool -n name args``, ``tool`` a RabbitMQ CLI (``rabbitmqctl``,
        ``rabbitmq-diagnostics``...), run as the node's user; its stdout, or
        :class:`BrokerError` with what it said.
        """
        env = {
            **_base_environment(),
            "RABBITMQ_CONF_ENV_FILE": str(self.root / "rabbitmq-env.conf"),
        }
        try:
            done = subprocess.run(
                self._as_user(str(RABBITMQ_BIN / tool), "-n", self.name, *args),
                capture_output=True,
                text=True,
                timeout=timeout_s,
                env=env,
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise BrokerError(
                f"{tool} {args[0]} on {self.name}: no answer in {timeout_s:.0f}s"
            ) from None
        if done.returncode != 0:
            said = (done.stderr.strip() or done.stdout.strip())[-2000:]
            raise BrokerError(f"{tool} {args[0]} on {self.name} failed: {said}")
        return done.stdout

    def trace_on(self, vhost: str = "/") -> None:
        """Turn the firehose on: a copy of every message published in ``vhost`` goes to
        ``amq.rabbitmq.trace`` (off again after a restart: call it after each start)."""
        self._ctl("trace_on", "-p", vhost)

    def processes(self) -> list[int]:
        """The pids of every live OS process of this node (not the shared epmd)."""
        entry = f"RABBITMQ_NODENAME={self.name}".encode()
        pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
        return [pid for pid in pids if pid != os.getpid() and _environ_has(pid, entry)]

    def running(self) -> bool:
        """Whether any process of the node is alive (booting, serving or stopping)."""
        return bool(self.processes())

    def tail(self, lines: int = 30) -> str:
        """The end of the start script's output, then of the node's log."""
        parts = []
        for path in (self.output, self.log_dir / f"{self.name}.log"):
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(parts)

    def start(self, timeout_s: float = 60) -> None:
        """Start the node; return once it accepts AMQP and says it has booted.

        After a crash that includes recovering its queues. Raises
        :class:`BrokerError` if it is already running, cannot get its ports
        or does not boot in ``timeout_s`` (then no process of it is left).
        """
        if self.running():
            raise BrokerError(f"{self.name} is already running")
        self._prepare()
        for port in (self.port, self.dist_port):
            if not port_free(port):
                raise BrokerError(f"{self.name}: port {port} is taken on 127.0.0.1")
        deadline = time.monotonic() + timeout_s
        with self.output.open("ab") as out:
            self._proc = subprocess.Popen(
                self._as_user(str(SERVER)),
                env=self._server_environment(),
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._await_booted(deadline)
        except BaseException:
            self._kill_all()
            raise

    def _await_booted(self, deadline: float) -> None:
        assert self._proc is not None
        # The AMQP listener opens at the end of the boot; polling it is cheap,
        # where every rabbitmqctl call starts an Erlang VM.
        while not _accepts(self.port):
            if self._proc.poll() is not None:
                raise BrokerError(
                    f"{self.name} exited at start (code {self._proc.returncode}):\n{self.tail()}"
                )
            if time.monotonic() >= deadline:
                raise BrokerError(f"{self.name} not listening on {self.port}:\n{self.tail()}")
            time.sleep(0.1)
        remaining = max(1, int(deadline - time.monotonic()))
        self._ctl("await_startup", "--timeout", str(remaining), timeout_s=remaining + 15)

    def stop(self, timeout_s: float = 60) -> None:
        """Stop the node cleanly (``rabbitmqctl stop``) and wait until its processes are gone.

        The node is down when this returns or raises: one that does not stop
        within ``timeout_s`` is killed, then :class:`BrokerError` says so.
        """
        if not self.running():
            raise BrokerError(f"{self.name} is not running")
        deadline = time.monotonic() + timeout_s
        try:
            self._ctl("stop", timeout_s=timeout_s)
            while self.running():
                if time.monotonic() >= deadline:
                    raise BrokerError(f"{self.name} still running {timeout_s:.0f}s after stop")
                time.sleep(0.1)
        except BrokerError:
            self._kill_all()
            raise
        self._reap()

    def crash(self) -> float:
        """SIGKILL every process of the node; returns ``time.monotonic()`` when killed.

        Nothing of the broker's shutdown runs: what was only in memory is
        lost, what it had confirmed to publishers is on disk.
        """
        if not self.running():
            raise BrokerError(f"{self.name} is not running")
        return self._kill_all()

    def _kill_all(self) -> float:
        """SIGKILL the node's processes until none is left; when the first pass was sent."""
        killed_at: float | None = None
        deadline = time.monotonic() + 10
        # Again and again: a process may have been spawned between listing and killing.
        while pids := self.processes():
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if killed_at is None:
                killed_at = time.monotonic()
            if time.monotonic() >= deadline:
                raise BrokerError(f"{self.name}: processes {pids} survive SIGKILL")
            time.sleep(0.02)
        self._reap()
        return killed_at if killed_at is not None else time.monotonic()

    def _reap(self) -> None:
        """Collect the start script's exit status (it has ended, or ends on its own now)."""
        if self._proc is not None:
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
            self._proc = None

    async def crash_for(self, down_s: float) -> tuple[float, float]:
        """Crash, stay down ``down_s`` seconds, start again; returns (down at, up at)."""
        down, up = await down_for(self.crash, self.start, down_s)
        self.crashes.append((down, up))
        return down, up

    def destroy(self) -> None:
        """Stop the node if it runs (killing it if need be) and delete its folder."""
        if self.running():
            with contextlib.suppress(BrokerError):
                self.stop(timeout_s=30)
        self._kill_all()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def private_node(
    root: Path | None = None, timeout_s: float = 60, config: Mapping[str, str] | None = None
) -> Iterator[RabbitNode]:
    """A started :class:`RabbitNode` in ``root`` (None: a new temporary one); destroyed on exit.

    ``config``: more ``rabbitmq.conf`` settings, as :class:`RabbitNode` takes them.
    """
    node = RabbitNode(
        root if root is not None else Path(tempfile.mkdtemp(prefix="saga-rabbit-")),
        config=config,
    )
    try:
        node.start(timeout_s)
        yield node
    finally:
        node.destroy()
