#!/usr/bin/env bash
# Runs pullstack's main job locally, end to end, with nothing but this
# machine: moto stands in for AWS and a stateful fake for GitHub.
#
#   1. installs moto into .venv and starts it;
#   2. bootstraps the shared stack (`pullstack bootstrap`);
#   3. runs `pullstack serve`;
#   4. drives a PR through open -> push -> close with signed webhooks;
#   5. shows the PR comment and the stacks as they change.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${repo_root}"

moto_port="${DEMO_MOTO_PORT:-5077}"
github_port="${DEMO_GITHUB_PORT:-9077}"
serve_port="${DEMO_SERVE_PORT:-8077}"
work="target/demo"
mkdir -p "${work}"

echo "==> installing tools (moto, awscli) into .venv"
scripts/setup-tools.sh
echo "==> building pullstack and the GitHub stand-in"
cargo build --quiet --bin pullstack --example github_fake

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "${pid}" 2>/dev/null || true; done
  scripts/moto.sh stop "${moto_port}" >/dev/null 2>&1 || true
}
trap cleanup EXIT

echo "==> starting moto on 127.0.0.1:${moto_port}"
scripts/moto.sh stop "${moto_port}" >/dev/null 2>&1 || true
scripts/moto.sh start "${moto_port}"
export AWS_ENDPOINT_URL="http://127.0.0.1:${moto_port}"
export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1

echo "==> starting the GitHub stand-in on 127.0.0.1:${github_port}"
target/debug/examples/github_fake --listen "127.0.0.1:${github_port}" --repo octo/demo --writer alice \
  >"${work}/github.log" 2>&1 &
pids+=($!)

cat >"${work}/pullstack.yaml" <<YAML
app: demo
repository: octo/demo
preview:
  # moto's load balancers have no real address to probe.
  ready_check: false
queue:
  poll_initial: 200ms
  poll_max: 2s
YAML

echo "==> pullstack bootstrap"
target/debug/pullstack bootstrap --config "${work}/pullstack.yaml"

echo "==> pullstack serve on 127.0.0.1:${serve_port} (log: ${work}/serve.log)"
export PULLSTACK_WEBHOOK_SECRET="demo-secret"
PULLSTACK_GITHUB_TOKEN="demo-token" \
PULLSTACK_GITHUB_API_URL="http://127.0.0.1:${github_port}" \
  target/debug/pullstack serve --config "${work}/pullstack.yaml" --listen "127.0.0.1:${serve_port}" \
  >"${work}/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:${serve_port}/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done

DEMO_SERVE_URL="http://127.0.0.1:${serve_port}" \
DEMO_GITHUB_URL="http://127.0.0.1:${github_port}" \
DEMO_REPO=octo/demo DEMO_APP=demo \
  .venv/bin/python scripts/demo_driver.py
