#!/usr/bin/env bash
# Lints the GitHub Action (action.yml) beyond what `actionlint examples/*.yml`
# sees on its own:
# - the example workflows against the action's own inputs and outputs:
#   actionlint resolves `uses: ./` only inside a repository with
#   .github/workflows, so one is laid out in a temporary directory;
# - every `run:` script of the action: bash, nothing pasted in with `${{ }}`
#   (event values are attacker-controlled and must come through `env:`), and
#   clean under shellcheck.
#
# Needs the tools from scripts/setup-tools.sh (PULLSTACK_VENV, default .venv);
# PyYAML comes with them (awscli, cfn-lint).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${PULLSTACK_VENV:-.venv}"
case "${venv}" in
  /*) ;;
  *) venv="${repo_root}/${venv}" ;;
esac

work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT

project="${work}/project"
mkdir -p "${project}/.github/workflows"
cp "${repo_root}/action.yml" "${project}/"
cp "${repo_root}"/examples/*.yml "${project}/.github/workflows/"
git init -q "${project}"
(cd "${project}" && "${venv}/bin/actionlint" -shellcheck "${venv}/bin/shellcheck")

mkdir "${work}/scripts"
"${venv}/bin/python" - "${repo_root}/action.yml" "${work}/scripts" <<'PY'
import pathlib
import sys

import yaml

action = yaml.safe_load(pathlib.Path(sys.argv[1]).read_text())
out = pathlib.Path(sys.argv[2])
bad = []
for index, step in enumerate(action["runs"]["steps"]):
    if "run" not in step:
        continue
    name = step.get("name", f"step {index + 1}")
    if step.get("shell") != "bash":
        bad.append(f"{name}: shell must be bash")
    if "${{" in step["run"]:
        bad.append(f"{name}: pass values through env:, not ${{{{ }}}} in run:")
    script = out / f"{index:02d}.sh"
    script.write_text(f"#!/usr/bin/env bash\n# action.yml: {name}\n{step['run']}")
for line in bad:
    print(f"action.yml: {line}", file=sys.stderr)
sys.exit(1 if bad else 0)
PY
"${venv}/bin/shellcheck" "${work}"/scripts/*.sh
