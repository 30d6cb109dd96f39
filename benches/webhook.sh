#!/usr/bin/env bash
# Webhook acknowledgement benchmark: signed ~30 KB pull_request deliveries at
# concurrency 50 on loopback, with wrk (Debian package `wrk`), against a
# release build of `pullstack serve` wired to moto and the GitHub stand-in.
# Each delivery has its own X-GitHub-Delivery id, so every one is verified,
# parsed and queued (none is dropped as a redelivery).
#
#   benches/webhook.sh [DURATION]      (default 20s)
#
# BENCH_TARGET=other sends the same deliveries for a repository pullstack is
# not configured for: each is still verified and fully parsed, then answered
# "ignored", so no reconcile work (and no local moto or fake CPU) competes
# with the acknowledgement path on this 2-core machine.
#
# Prints idle RSS, wrk's throughput and latency distribution, and RSS after.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${repo_root}"
duration="${1:-20s}"
work="target/bench-webhook"
mkdir -p "${work}"
moto_port=5088 github_port=9088 serve_port=8088

command -v wrk >/dev/null || { echo "needs wrk: apt-get install -y wrk" >&2; exit 1; }
scripts/setup-tools.sh
cargo build --quiet --release --bin pullstack --example github_fake

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "${pid}" 2>/dev/null || true; done
  scripts/moto.sh stop "${moto_port}" >/dev/null 2>&1 || true
}
trap cleanup EXIT
scripts/moto.sh start "${moto_port}"
export AWS_ENDPOINT_URL="http://127.0.0.1:${moto_port}" AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1

target/release/examples/github_fake --listen "127.0.0.1:${github_port}" --repo octo/bench >"${work}/github.log" 2>&1 &
pids+=($!)
sleep 0.5
# PR #1 exists and is closed: each reconcile reads it and finds nothing to do.
curl -fs -X POST "http://127.0.0.1:${github_port}/_fake/prs" -H 'content-type: application/json' \
  -d '{"repo":"octo/bench","number":1,"state":"closed"}' >/dev/null

printf 'app: bench\nrepository: octo/bench\nresync:\n  interval: 1h\n' >"${work}/pullstack.yaml"
export PULLSTACK_WEBHOOK_SECRET=bench-secret
PULLSTACK_GITHUB_TOKEN=bench PULLSTACK_GITHUB_API_URL="http://127.0.0.1:${github_port}" RUST_LOG=warn \
  target/release/pullstack serve --config "${work}/pullstack.yaml" --listen "127.0.0.1:${serve_port}" \
  >"${work}/serve.log" 2>&1 &
serve_pid=$!
pids+=("${serve_pid}")
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:${serve_port}/healthz" >/dev/null && break; sleep 0.1; done
sleep 2
echo "idle RSS: $(awk '/VmRSS/ {print $2, $3}' "/proc/${serve_pid}/status")"

# A real recorded delivery, retargeted at octo/bench PR #1 and padded to ~30 KB.
target_repo="octo/bench"
[[ "${BENCH_TARGET:-}" == "other" ]] && target_repo="octo/not-configured"
python3 - "${work}" "${target_repo}" <<'PY'
import hashlib, hmac, json, sys
work, repo = sys.argv[1], sys.argv[2]
with open("tests/fixtures/rust-lang-bors/pull-request-opened.json") as f:
    p = json.load(f)
p["number"] = p["pull_request"]["number"] = 1
p["repository"]["full_name"] = repo
p["pull_request"]["head"]["repo"]["full_name"] = repo
p["pull_request"]["body"] = "x" * (30_000 - len(json.dumps(p)))
body = json.dumps(p)
sig = "sha256=" + hmac.new(b"bench-secret", body.encode(), hashlib.sha256).hexdigest()
lua = f"""
local counter = 0
local prefix = ""
function init(args)
  -- One prefix per wrk thread, so delivery ids never repeat across threads.
  prefix = tostring({{}}):match("0x(%x+)") or tostring(math.random(1, 1e9))
end
local body = {json.dumps(body)}
function request()
  counter = counter + 1
  local headers = {{}}
  headers["content-type"] = "application/json"
  headers["x-github-event"] = "pull_request"
  headers["x-hub-signature-256"] = "{sig}"
  headers["x-github-delivery"] = string.format("bench-%s-%d", prefix, counter)
  return wrk.format("POST", "/webhook", headers, body)
end
function done(summary, latency, requests)
  io.write(string.format("deliveries: %d, errors (non-2xx/socket): %d/%d\\n", summary.requests,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
  io.write(string.format("throughput: %.0f deliveries/s\\n", summary.requests / (summary.duration / 1e6)))
  for _, p in ipairs({{50, 90, 99, 99.9}}) do
    io.write(string.format("p%s latency: %.2f ms\\n", p, latency:percentile(p) / 1000))
  end
end
"""
open(f"{work}/bench.lua", "w").write(lua)
print(f"delivery body: {len(body)} bytes")
PY

(sleep 8; echo "CPU% during load (pullstack, moto, GitHub fake):"; ps -o pcpu=,comm= -p "${serve_pid}","$(cat target/moto-${moto_port}.pid)","${pids[0]}") &
wrk -t2 -c50 -d"${duration}" -s "${work}/bench.lua" "http://127.0.0.1:${serve_port}/webhook"
echo "RSS after load: $(awk '/VmRSS/ {print $2, $3}' "/proc/${serve_pid}/status")"
curl -fs "http://127.0.0.1:${serve_port}/metrics" | grep -E '^pullstack_webhooks_total' || true
