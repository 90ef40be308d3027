"""The namespace harness itself: reachability, multicast, and each fault it can inject."""

from __future__ import annotations

import ipaddress
import json
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgeswarm.dev.localfleet import wait_until
from edgeswarm.dev.netns.cgroups import cgroups_of, cpu_cgroups, read_pids
from edgeswarm.dev.netns.kernel import FleetError
from edgeswarm.dev.netns.namespaces import NET_ID, RUN_DIR, link_exists, namespaces_of, run, sweep
from edgeswarm.dev.netns.network import Host, Network
from tests.helpers import require_netns, skip_or_fail

pytestmark = pytest.mark.fleet

PORT = 7007

ECHO_SERVER = """
import socket, sys, threading

def serve(conn):
    with conn:
        while data := conn.recv(65536):
            conn.sendall(data)

server = socket.create_server(("0.0.0.0", int(sys.argv[1])))
while True:
    conn, _ = server.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""

ECHO_CLIENT = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5) as sock:
    sock.sendall(b"from-host")
    print(sock.recv(100).decode(), flush=True)
"""

BLOB_SERVER = """
import contextlib, socket, sys
server = socket.create_server(("0.0.0.0", int(sys.argv[1])))
blob = b"x" * int(sys.argv[2])
while True:
    conn, _ = server.accept()
    with conn, contextlib.suppress(OSError):
        conn.sendall(blob)
"""

MULTICAST_RECEIVER = """
import socket, struct, sys
group, port = sys.argv[1], int(sys.argv[2])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("", port))
membership = struct.pack("4s4s", socket.inet_aton(group), socket.inet_aton("0.0.0.0"))
sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
print("ready", flush=True)
data, (source, _) = sock.recvfrom(100)
print("got", data.decode(), source, flush=True)
"""

MULTICAST_SENDER = """
import socket, sys, time
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
while True:
    sock.sendto(sys.argv[3].encode(), (sys.argv[1], int(sys.argv[2])))
    time.sleep(0.1)
"""

BUSY_LOOP = """
import sys, time
end = time.monotonic() + float(sys.argv[1])
count = 0
while time.monotonic() < end:
    count += 1
print(count, flush=True)
"""


def python(*args: str) -> list[str]:
    return [sys.executable, "-c", *args]


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size and (chunk := sock.recv(size - len(data))):
        data += chunk
    return data


def echo(ip: str, payload: bytes = b"ping", timeout: float = 1.0) -> bytes:
    with socket.create_connection((ip, PORT), timeout=timeout) as sock:
        sock.sendall(payload)
        return recv_exactly(sock, len(payload))


def answers(ip: str) -> bool:
    try:
        return echo(ip, timeout=0.5) == b"ping"
    except OSError:
        return False


def listening(ip: str) -> bool:
    try:
        socket.create_connection((ip, PORT), timeout=0.5).close()
    except OSError:
        return False
    return True


def start_echo(host: Host, logs: Path) -> subprocess.Popen[bytes]:
    proc = host.popen(python(ECHO_SERVER, str(PORT)), logs / f"{host.name}-echo.log")
    wait_until(lambda: answers(host.ip), 5, f"the echo server on {host.name}")
    return proc


def fetch(ip: str, size: int) -> float:
    """Seconds to receive `size` bytes from the blob server at `ip`."""
    start = time.monotonic()
    received = 0
    with socket.create_connection((ip, PORT), timeout=10) as sock:
        while chunk := sock.recv(65536):
            received += len(chunk)
    assert received == size
    return time.monotonic() - start


def busy_iterations(host: Host, log: Path) -> int:
    """Loop iterations a process in `host` manages in one second of wall time."""
    proc = host.popen(python(BUSY_LOOP, "1.0"), log)
    assert proc.wait(timeout=10) == 0, log.read_text()
    return int(log.read_text().split()[-1])


def root_routes_via(link: str) -> list[str]:
    return [r["dst"] for r in json.loads(run("ip", "-4", "-j", "route", "show", "table", "all", "dev", link))]


def test_hosts_reach_each_other_over_tcp(network: Network, tmp_path: Path) -> None:
    a, b = network.add_host("a"), network.add_host("b")
    start_echo(a, tmp_path)

    assert echo(a.ip) == b"ping"
    client = b.popen(python(ECHO_CLIENT, a.ip, str(PORT)), tmp_path / "client.log")
    assert client.wait(timeout=10) == 0, (tmp_path / "client.log").read_text()
    assert "from-host" in (tmp_path / "client.log").read_text()


def test_multicast_reaches_every_other_host(network: Network, tmp_path: Path) -> None:
    sender, *receivers = (network.add_host(name) for name in ("a", "b", "c"))
    port, token = random.randrange(20_000, 60_000), f"hello-{random.randrange(10**6)}"
    receive = python(MULTICAST_RECEIVER, "224.0.0.251", str(port))
    listeners = {host.name: host.popen(receive, tmp_path / host.name) for host in receivers}
    logs = [tmp_path / host.name for host in receivers]
    wait_until(lambda: all("ready" in log.read_text() for log in logs), 5, "the receivers to join")

    sender.popen(python(MULTICAST_SENDER, "224.0.0.251", str(port), token), tmp_path / "sender.log")
    for host in receivers:
        assert listeners[host.name].wait(timeout=5) == 0
        assert f"got {token} {sender.ip}" in (tmp_path / host.name).read_text()


def test_link_down_cuts_the_host_off_and_link_up_restores_it(network: Network, tmp_path: Path) -> None:
    a = network.add_host("a")
    start_echo(a, tmp_path)

    a.link_down()
    with pytest.raises(TimeoutError):
        echo(a.ip, timeout=1.0)
    a.link_up()
    wait_until(lambda: answers(a.ip), 5, "the echo server after link_up")


@pytest.mark.measures
def test_slow_limits_throughput_until_unslow(network: Network, tmp_path: Path) -> None:
    a = network.add_host("a")
    size = 400_000
    a.popen(python(BLOB_SERVER, str(PORT), str(size)), tmp_path / "blob.log")
    wait_until(lambda: listening(a.ip), 5, "the blob server")

    fast = fetch(a.ip, size)
    a.slow(rate_kbit=800)
    slow = fetch(a.ip, size)
    a.unslow()
    again = fetch(a.ip, size)

    assert slow >= 2 * fast, (fast, slow)
    assert slow >= 2 * again, (again, slow)


def test_frozen_host_answers_only_after_thaw(network: Network, tmp_path: Path) -> None:
    a = network.add_host("a")
    start_echo(a, tmp_path)

    a.freeze()
    with socket.create_connection((a.ip, PORT), timeout=1) as sock:
        sock.sendall(b"ping")
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recv(4)
        a.thaw()
        sock.settimeout(5)
        assert recv_exactly(sock, 4) == b"ping"


@pytest.mark.measures
def test_throttle_cpu_slows_present_and_later_processes(network: Network, tmp_path: Path) -> None:
    try:
        cpu_cgroups()
    except FleetError as e:
        skip_or_fail(str(e))
    a = network.add_host("a")
    sleeper = a.popen(python("import time; time.sleep(60)"), tmp_path / "sleeper.log")
    free = busy_iterations(a, tmp_path / "free.log")

    a.throttle_cpu(0.1)
    assert a.cgroup is not None
    assert sleeper.pid in read_pids(a.cgroup / "cgroup.procs")
    throttled = busy_iterations(a, tmp_path / "throttled.log")
    a.unthrottle()
    again = busy_iterations(a, tmp_path / "again.log")

    assert throttled <= 0.5 * free, (free, throttled)
    assert throttled <= 0.5 * again, (again, throttled)


def test_teardown_leaves_nothing_behind(tmp_path: Path) -> None:
    require_netns()
    default_route = run("ip", "-4", "route", "show", "default")
    with Network() as net:
        a, b = net.add_host("a"), net.add_host("b")
        procs = [host.popen(python("import time; time.sleep(60)"), tmp_path / host.name) for host in (a, b)]
        b.freeze()
        with_cgroup = True
        try:
            a.throttle_cpu(0.5)
        except FleetError:
            with_cgroup = False
        assert str(net.subnet) in root_routes_via(net.root_link)
        assert all(ipaddress.IPv4Network(r).subnet_of(net.subnet) for r in root_routes_via(net.root_link))
        assert run("ip", "-4", "route", "show", "default") == default_route
        assert namespaces_of(net.id) and link_exists(net.root_link)
        assert bool(cgroups_of(net.id)) == with_cgroup

    assert not namespaces_of(net.id)
    assert not link_exists(net.root_link)
    assert not cgroups_of(net.id)
    assert not (RUN_DIR / net.id).exists()
    assert all(proc.returncode is not None for proc in procs)
    net.close()


def test_failed_body_still_tears_down(tmp_path: Path) -> None:
    require_netns()
    with pytest.raises(RuntimeError, match="boom"), Network() as net:
        net.add_host("a").popen(python("import time; time.sleep(60)"), tmp_path / "a.log")
        raise RuntimeError("boom")
    assert not namespaces_of(net.id)
    assert not link_exists(net.root_link)


def test_sweep_removes_what_a_killed_run_left(tmp_path: Path) -> None:
    require_netns()
    script = """
import contextlib, sys, time
from pathlib import Path
from edgeswarm.dev.netns.kernel import FleetError
from edgeswarm.dev.netns.network import Network
net = Network().__enter__()
host = net.add_host("a")
host.popen([sys.executable, "-c", "import time; time.sleep(60)"], Path(sys.argv[1]))
with contextlib.suppress(FleetError):
    host.throttle_cpu(0.5)
print(net.id, flush=True)
time.sleep(60)
"""
    repo = Path(__file__).parents[2]
    argv = python(script, str(tmp_path / "orphan.log"))
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=repo) as orphan:
        try:
            assert orphan.stdout is not None
            net_id = orphan.stdout.readline().strip()
        finally:
            orphan.kill()
    assert NET_ID.fullmatch(net_id), net_id
    assert namespaces_of(net_id)

    sweep()
    assert not namespaces_of(net_id)
    assert not cgroups_of(net_id)
    assert not (RUN_DIR / net_id).exists()
