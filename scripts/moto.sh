#!/usr/bin/env bash
# Start or stop a local moto server (AWS emulator) on 127.0.0.1:PORT.
#
#   scripts/moto.sh start PORT   start in the background (no-op if already up),
#                                wait until http://127.0.0.1:PORT/moto-api/ answers
#   scripts/moto.sh stop PORT    stop it (no-op if not running)
#
# pid file: target/moto-PORT.pid, log: target/moto-PORT.log (under the repo root).
# The venv comes from scripts/setup-tools.sh (PULLSTACK_VENV, default .venv).
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "${script_dir}/.." && pwd)"

usage() {
  echo "usage: $0 start|stop PORT" >&2
  exit 2
}

[[ $# -eq 2 ]] || usage
action="$1"
port="$2"
[[ "${port}" =~ ^[0-9]+$ ]] || usage

venv="${PULLSTACK_VENV:-.venv}"
case "${venv}" in
  /*) ;;
  *) venv="${repo_root}/${venv}" ;;
esac

state_dir="${repo_root}/target"
pid_file="${state_dir}/moto-${port}.pid"
log_file="${state_dir}/moto-${port}.log"
url="http://127.0.0.1:${port}/moto-api/"

# Prints the pid recorded in the pid file if that process is still alive.
running_pid() {
  local pid
  [[ -f "${pid_file}" ]] || return 1
  pid="$(cat "${pid_file}")"
  [[ "${pid}" =~ ^[0-9]+$ ]] || return 1
  kill -0 "${pid}" 2>/dev/null || return 1
  # Guard against a recycled pid: it must still be our moto_server.
  if [[ -r "/proc/${pid}/cmdline" ]] && ! tr '\0' ' ' <"/proc/${pid}/cmdline" | grep -q "moto_server.* -p ${port}"; then
    return 1
  fi
  printf '%s\n' "${pid}"
}

answers() {
  python3 - "${url}" <<'PY' >/dev/null 2>&1
import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=2).read()
PY
}

start() {
  local pid
  if pid="$(running_pid)"; then
    if answers; then
      return 0
    fi
  else
    if answers; then
      echo "moto.sh: port ${port} already answers but is not ours (no live pid in ${pid_file})" >&2
      exit 1
    fi
    if [[ ! -x "${venv}/bin/moto_server" ]]; then
      echo "moto.sh: ${venv}/bin/moto_server not found; run scripts/setup-tools.sh first" >&2
      exit 1
    fi
    mkdir -p "${state_dir}"
    # setsid: own session, so the server survives the caller's shell and job control.
    setsid "${venv}/bin/moto_server" -H 127.0.0.1 -p "${port}" \
      >"${log_file}" 2>&1 </dev/null &
    pid=$!
    printf '%s\n' "${pid}" >"${pid_file}"
  fi

  local deadline=$((SECONDS + 30))
  until answers; do
    if ! kill -0 "${pid}" 2>/dev/null; then
      echo "moto.sh: moto_server exited; last log lines:" >&2
      tail -n 20 "${log_file}" >&2 || true
      rm -f "${pid_file}"
      exit 1
    fi
    if ((SECONDS >= deadline)); then
      echo "moto.sh: moto_server on port ${port} did not answer within 30 s; see ${log_file}" >&2
      exit 1
    fi
    sleep 0.2
  done
}

stop() {
  local pid
  if pid="$(running_pid)"; then
    kill "${pid}" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "${pid}" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "${pid}" 2>/dev/null; then
      kill -9 "${pid}" 2>/dev/null || true
    fi
  fi
  rm -f "${pid_file}"
}

case "${action}" in
  start) start ;;
  stop) stop ;;
  *) usage ;;
esac
