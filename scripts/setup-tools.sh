#!/usr/bin/env bash
# Create (or reuse) the project virtualenv and install the pinned tool set from
# scripts/requirements-tools.txt: moto's server (local AWS emulator), cfn-lint,
# hadolint, awscli, actionlint and shellcheck (which actionlint runs on `run:`
# scripts), zizmor (GitHub Actions security lint) and parliament (IAM policy
# lint).
#
# Idempotent: a stamp file inside the venv records the hash of the requirement
# list (and the Python version); when it matches, nothing is reinstalled.
#
#   PULLSTACK_VENV   venv location, relative to the repo root unless absolute
#                    (default: .venv)
#   PYTHON           interpreter used to create the venv (default: python3)
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "${script_dir}/.." && pwd)"
requirements="${script_dir}/requirements-tools.txt"

venv="${PULLSTACK_VENV:-.venv}"
case "${venv}" in
  /*) ;;
  *) venv="${repo_root}/${venv}" ;;
esac
python="${PYTHON:-python3}"
stamp="${venv}/.pullstack-tools.stamp"

want="$(
  {
    sha256sum "${requirements}" | cut -d' ' -f1
    "${python}" -c 'import sys; print(sys.version)'
  } | sha256sum | cut -d' ' -f1
)"

if [[ -x "${venv}/bin/python" && -f "${stamp}" && "$(cat "${stamp}")" == "${want}" ]]; then
  exit 0
fi

if [[ ! -x "${venv}/bin/python" ]]; then
  "${python}" -m venv "${venv}"
fi

export PIP_DISABLE_PIP_VERSION_CHECK=1
"${venv}/bin/python" -m pip install -q -r "${requirements}"

# Fail now, not later, if a tool did not install an executable.
for tool in moto_server cfn-lint hadolint aws actionlint shellcheck zizmor parliament; do
  if [[ ! -x "${venv}/bin/${tool}" ]]; then
    echo "setup-tools: ${tool} missing from ${venv}/bin after install" >&2
    exit 1
  fi
done

printf '%s\n' "${want}" >"${stamp}"
