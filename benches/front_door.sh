#!/usr/bin/env bash
# Front-door benchmark: what hostile clients on loopback cost a running
# `pullstack serve`, and whether a normal signed delivery still gets its 202
# while they are at it. Python 3 attackers (standard library only):
#
#   1. idle: nothing but the server;
#   2. 40 concurrent 24 MB uploads with a well-formed but wrong signature
#      (memory spent before authentication);
#   3. 500 slowloris connections: each opens, sends half a header, then a
#      header line a second for 20 s (connections held without a request);
#   4. 1,100 idle connections against a 1,024 file-descriptor limit
#      (accept starved), then the attackers leave;
#   5. SIGTERM with 50 clients stuck in the middle of a body (how long the
#      drain takes).
#
# For each it prints the server's VmRSS (sampled every 50 ms, peak) and VmHWM
# from /proc/<pid>/status, what the attackers were answered, and the status
# of a normal signed delivery sent during the attack.
#
#   benches/front_door.sh [extra `pullstack serve` flags...]
#
# BENCH_PROFILE=dev measures a debug build (default: release, as the other
# benches). The server talks to no GitHub or AWS here: its start-up resync
# fails and is retried in the background, and the normal delivery names a
# repository it is not configured for, so it is verified, fully parsed and
# answered 202 "ignored" without queueing work.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${repo_root}"
target_dir="${CARGO_TARGET_DIR:-target}"
profile="${BENCH_PROFILE:-release}"
profile_dir="${profile}"
[[ "${profile}" == "dev" ]] && profile_dir=debug
work="${target_dir}/bench-front-door"
mkdir -p "${work}"
serve_port="${BENCH_PORT:-8089}"

cargo build --quiet --profile "${profile}" --bin pullstack

printf 'app: bench\nrepository: octo/bench\nresync:\n  interval: 1h\n' >"${work}/pullstack.yaml"
secret=bench-secret
# A 1,024 descriptor limit, as on many hosts, so that attack 4 means something.
(
  ulimit -n 1024
  export PULLSTACK_WEBHOOK_SECRET="${secret}" PULLSTACK_GITHUB_TOKEN=bench \
    PULLSTACK_GITHUB_API_URL=http://127.0.0.1:9 AWS_ENDPOINT_URL=http://127.0.0.1:9 \
    AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench RUST_LOG=warn
  exec "${target_dir}/${profile_dir}/pullstack" serve --config "${work}/pullstack.yaml" \
    --listen "127.0.0.1:${serve_port}" "$@"
) >"${work}/serve.log" 2>&1 &
serve_pid=$!
trap 'kill -KILL "${serve_pid}" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:${serve_port}/healthz" >/dev/null && break; sleep 0.1; done
sleep 1

python3 - "${serve_pid}" "${serve_port}" "${secret}" <<'PY'
import hashlib, hmac, json, os, resource, select, socket, sys, threading, time

pid, port, secret = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3].encode()
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))

def status_kb(field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except FileNotFoundError:
        return 0
    return 0

def mb(kb):
    return f"{kb / 1024:.0f} MB"

class Sampler:
    """Peak VmRSS while an attack runs."""
    def __enter__(self):
        self.peak, self.running = 0, True
        def run():
            while self.running:
                self.peak = max(self.peak, status_kb("VmRSS"))
                time.sleep(0.05)
        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        return self
    def __exit__(self, *exc):
        self.running = False
        self.thread.join()
    def report(self):
        return f"peak VmRSS {mb(self.peak)}, VmHWM {mb(status_kb('VmHWM'))}"

def head(path, headers, length=None):
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()

def read_status(sock, timeout):
    """The status code the server answered, or what happened instead."""
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                return "closed" if not data else data[:20].decode(errors="replace")
            data += chunk
    except socket.timeout:
        return "no answer"
    except OSError as err:
        return type(err).__name__
    return data.split(b" ")[1].decode()

# A real recorded delivery for a repository the server is not configured for.
with open("tests/fixtures/rust-lang-bors/pull-request-opened.json") as f:
    payload = json.load(f)
payload["repository"]["full_name"] = "octo/not-configured"
normal_body = json.dumps(payload).encode()
counter = [0]

def delivery(timeout=10.0):
    """A normal signed delivery: its status (and latency)."""
    counter[0] += 1
    sig = "sha256=" + hmac.new(secret, normal_body, hashlib.sha256).hexdigest()
    start = time.monotonic()
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except OSError as err:
        return f"{type(err).__name__} on connect"
    try:
        sock.settimeout(timeout)
        sock.sendall(head("/webhook", {
            "Content-Type": "application/json", "X-GitHub-Event": "pull_request",
            "X-GitHub-Delivery": f"bench-{os.getpid()}-{counter[0]}",
            "X-Hub-Signature-256": sig, "Connection": "close"}, len(normal_body)) + normal_body)
        status = read_status(sock, timeout)
    except OSError as err:
        status = type(err).__name__
    finally:
        sock.close()
    return f"{status} in {time.monotonic() - start:.2f} s"

def readable(socks):
    """The sockets with something to read: an answer, an end, or a reset."""
    poll = select.poll()
    by_fd = {sock.fileno(): sock for sock in socks}
    for fd in by_fd:
        poll.register(fd, select.POLLIN)
    return [by_fd[fd] for fd, _ in poll.poll(0)]

def tally(results):
    counts = {}
    for r in results:
        counts[r] = counts.get(r, 0) + 1
    return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))

print(f"normal delivery: {len(normal_body)} bytes; before any attack: {delivery()}")
print(f"1. idle: VmRSS {mb(status_kb('VmRSS'))}, VmHWM {mb(status_kb('VmHWM'))}")

# 2. 40 concurrent 24 MB uploads, well-formed signature that does not match.
SIZE, UPLOADS = 24 * 1024 * 1024, 40
chunk = b"x" * (1024 * 1024)
results, started = [], threading.Barrier(UPLOADS + 1)
def upload():
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(head("/webhook", {"X-GitHub-Event": "pull_request",
                                   "X-Hub-Signature-256": "sha256=" + "0" * 64}, SIZE))
    started.wait()
    try:
        for _ in range(SIZE // len(chunk)):
            sock.sendall(chunk)
    except OSError:
        pass  # answered (and closed) before the whole body was sent
    results.append(read_status(sock, 60))
    sock.close()
with Sampler() as s:
    threads = [threading.Thread(target=upload) for _ in range(UPLOADS)]
    for t in threads:
        t.start()
    started.wait()
    time.sleep(0.2)
    during = delivery()
    for t in threads:
        t.join()
print(f"2. {UPLOADS} x 24 MB unsigned uploads: {s.report()}; attackers got [{tally(results)}];"
      f" normal delivery during: {during}")
time.sleep(1)

# 3. 500 slowloris connections for 20 s.
SLOW, SECONDS = 500, 20
socks = []
with Sampler() as s:
    for _ in range(SLOW):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"POST /webhook HTTP/1.1\r\nHost: bench\r\n")
        socks.append(sock)
    open_at = {}
    during = None
    for second in range(1, SECONDS + 1):
        time.sleep(1)
        if second == 2:
            during = delivery()
        # Readable means the server answered or closed: it is done with it.
        for sock in readable(socks):
            socks.remove(sock)
            sock.close()
        for sock in list(socks):
            try:
                sock.send(f"X-Slow-{second}: 1\r\n".encode())
            except OSError:
                socks.remove(sock)
                sock.close()
        if second in (5, 9, 12, 20):
            open_at[second] = len(socks)
    for sock in socks:
        sock.close()
print(f"3. {SLOW} slowloris connections: {s.report()}; still open after "
      + ", ".join(f"{k} s: {v}" for k, v in open_at.items())
      + f"; normal delivery during: {during}")
time.sleep(1)

# 4. 1,100 idle connections against the server's 1,024 descriptor limit.
IDLE = 1100
socks, refused = [], 0
with Sampler() as s:
    for _ in range(IDLE):
        try:
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=2))
        except OSError:
            refused += 1
    time.sleep(1)
    during = delivery(timeout=5)
    closed = len(readable(socks))
    for sock in socks:
        sock.close()
time.sleep(2)
after = delivery()
print(f"4. {IDLE} idle connections: {s.report()}; {refused} connects failed, {closed} closed"
      f" at once by the server; normal delivery during: {during}; 2 s after they left: {after}")

# 5. SIGTERM with 50 clients stuck in the middle of a body.
STUCK = 50
socks = []
for _ in range(STUCK):
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(head("/webhook", {"X-GitHub-Event": "pull_request",
                                   "X-Hub-Signature-256": "sha256=" + "0" * 64}, 100_000) + b"{")
    socks.append(sock)
time.sleep(1)
def alive():
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
os.kill(pid, 15)
start = time.monotonic()
while alive() and time.monotonic() - start < 30:
    time.sleep(0.05)
took = time.monotonic() - start
print(f"5. SIGTERM with {STUCK} stuck clients: "
      + (f"exited after {took:.1f} s" if not alive() else f"still running after {took:.0f} s (killed)"))
for sock in socks:
    sock.close()
PY
