#!/usr/bin/env bash
# The whole test suite: unit tests, and end-to-end tests that drive
# `pullstack serve` over HTTP against moto (a local AWS emulator) and a
# stateful GitHub fake.
#
#   scripts/test.sh [cargo test arguments...]
#
# Installs the Python tools into .venv (once), starts moto on MOTO_PORT
# (default 5055) for the run and stops it afterwards.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${repo_root}"

port="${MOTO_PORT:-5055}"
scripts/setup-tools.sh
scripts/moto.sh start "${port}"
trap 'scripts/moto.sh stop "${port}"' EXIT

export PULLSTACK_TEST_MOTO="http://127.0.0.1:${port}"
cargo test --locked "$@"
