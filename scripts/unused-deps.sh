#!/usr/bin/env bash
# Lists dependencies in Cargo.toml that no code uses, with cargo-machete.
#
#   scripts/unused-deps.sh
#
# Not part of .ci/run: installing machete on a fresh machine means building
# it (`cargo install cargo-machete --locked`, about 3 minutes on 2 cores).
# When it is not installed this says how and exits 0, so it never blocks.
# Machete reads `use` paths, so a crate named only in a string (serde's
# `with = "…"`) looks unused: such crates are listed under
# [package.metadata.cargo-machete] in Cargo.toml.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! cargo machete --version >/dev/null 2>&1; then
  echo "unused-deps: cargo-machete is not installed; skipped." >&2
  echo "unused-deps: install it with: cargo install cargo-machete --locked" >&2
  exit 0
fi

cargo machete
