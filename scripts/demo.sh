#!/usr/bin/env bash
# Runs pullstack's main jobs locally, end to end, with nothing but this
# machine: moto stands in for AWS and a stateful fake for GitHub.
#
#   1. installs moto and awscli into the venv and starts moto;
#   2. makes what an operator brings: a Route53 zone and an ACM certificate
#      for the production name;
#   3. bootstraps the shared stack and the production load balancer
#      (`pullstack bootstrap`, `production.strategy: alb`);
#   4. runs `pullstack serve`;
#   5. drives a PR through open -> push -> merge with signed webhooks, then
#      a second merge released as a canary, rolled back with
#      `pullstack prod rollback --yes`, and `pullstack prod history`.
#
#   DEMO_MOTO_PORT, DEMO_GITHUB_PORT, DEMO_SERVE_PORT   ports (5077, 9077, 8077)
#   PULLSTACK_VENV    the tools' venv (default .venv)
#   CARGO_TARGET_DIR  where cargo builds (default target)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${repo_root}"

moto_port="${DEMO_MOTO_PORT:-5077}"
github_port="${DEMO_GITHUB_PORT:-9077}"
serve_port="${DEMO_SERVE_PORT:-8077}"
venv="${PULLSTACK_VENV:-.venv}"
case "${venv}" in
  /*) ;;
  *) venv="${repo_root}/${venv}" ;;
esac
build="${CARGO_TARGET_DIR:-target}"
work="target/demo"
mkdir -p "${work}"
logs="${work}/serve.log ${work}/github.log target/moto-${moto_port}.log"

echo "==> installing tools (moto, awscli) into ${venv}"
scripts/setup-tools.sh
echo "==> building pullstack and the GitHub stand-in"
cargo build --quiet --bin pullstack --example github_fake

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "${pid}" 2>/dev/null || true; done
  scripts/moto.sh stop "${moto_port}" >/dev/null 2>&1 || true
}
trap cleanup EXIT
failed() {
  echo "DEMO FAILED: $*" >&2
  echo "Logs: ${logs}" >&2
  exit 1
}

echo "==> starting moto on 127.0.0.1:${moto_port}"
scripts/moto.sh stop "${moto_port}" >/dev/null 2>&1 || true
scripts/moto.sh start "${moto_port}"
export AWS_ENDPOINT_URL="http://127.0.0.1:${moto_port}"
export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
aws() { "${venv}/bin/aws" --output text "$@"; }

echo "==> starting the GitHub stand-in on 127.0.0.1:${github_port}"
"${build}/debug/examples/github_fake" --listen "127.0.0.1:${github_port}" --repo octo/demo \
  --writer alice --maintainer rita >"${work}/github.log" 2>&1 &
pids+=($!)

echo "==> the production name's zone and certificate (the operator's part)"
zone_id="$(aws route53 create-hosted-zone --name demo.example.com --caller-reference "demo-$$" \
  --query HostedZone.Id)" || failed "creating the hosted zone"
zone_id="${zone_id#/hostedzone/}"
# Requested through ACM: moto answers 500 on a listener whose certificate
# CloudFormation made.
certificate="$(aws acm request-certificate --domain-name www.demo.example.com \
  --validation-method DNS --query CertificateArn)" || failed "requesting the certificate"
echo "  zone ${zone_id}, certificate ${certificate}"

cat >"${work}/pullstack.yaml" <<YAML
app: demo
repository: octo/demo
preview:
  # moto's load balancers have no real address to probe.
  ready_check: false
queue:
  poll_initial: 200ms
  poll_max: 1s
production:
  enabled: true
  domain: www.demo.example.com
  hosted_zone_id: ${zone_id}
  certificate_arn: ${certificate}
  strategy: alb
  # moto runs no containers: a complete stack is the health gate.
  gate: stack
  steps: [10, 50, 100]
  # Seconds, not minutes, so the canary fits in the demo.
  bake: 3s
  env: {}
YAML

echo "==> pullstack bootstrap"
"${build}/debug/pullstack" bootstrap --config "${work}/pullstack.yaml" || failed "pullstack bootstrap"

echo "==> pullstack serve on 127.0.0.1:${serve_port} (log: ${work}/serve.log)"
export PULLSTACK_WEBHOOK_SECRET="demo-secret"
# `pullstack prod` records rollbacks on GitHub with these, as serve does.
export PULLSTACK_GITHUB_TOKEN="demo-token"
export PULLSTACK_GITHUB_API_URL="http://127.0.0.1:${github_port}"
"${build}/debug/pullstack" serve --config "${work}/pullstack.yaml" --listen "127.0.0.1:${serve_port}" \
  >"${work}/serve.log" 2>&1 &
pids+=($!)
up=0
for _ in $(seq 1 100); do
  if curl -fs "http://127.0.0.1:${serve_port}/healthz" >/dev/null 2>&1; then up=1; break; fi
  sleep 0.1
done
((up)) || failed "pullstack serve did not answer /healthz within 10 s"

DEMO_SERVE_URL="http://127.0.0.1:${serve_port}" \
DEMO_GITHUB_URL="http://127.0.0.1:${github_port}" \
DEMO_REPO=octo/demo DEMO_APP=demo \
DEMO_AWS="${venv}/bin/aws" \
DEMO_PULLSTACK="${build}/debug/pullstack" \
DEMO_CONFIG="${work}/pullstack.yaml" \
DEMO_LOGS="${logs}" \
  "${venv}/bin/python" scripts/demo_driver.py
