# Sourced by scripts/test and scripts/runbooks: set up this machine for opskit, and undo only what was started.
#
#   opskit_packages           Debian packages the engine, the registry, test images and the browser tests need
#   opskit_venv [EXTRAS]      .venv in the checkout (created when missing) with opskit installed, editable
#   opskit_engine             DOCKER_HOST: the one that answers, or a private engine started here (stopped on exit)
#
# Nothing here is installed into the system Python: the virtual environment is the checkout's own, so older
# packages the system holds never decide what opskit runs with.

OPSKIT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OPSKIT_VENV="${OPSKIT_VENV:-$OPSKIT_ROOT/.venv}"
_opskit_started_pid=""
_opskit_workdirs=()

_opskit_cleanup() {
  if [ -n "$_opskit_started_pid" ]; then
    kill "$_opskit_started_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$_opskit_started_pid" 2>/dev/null || break; sleep 0.1; done
  fi
  for dir in "${_opskit_workdirs[@]}"; do
    # dockerd leaves its default network namespace mounted under its exec root: unmount what is left, then remove.
    if [ -r /proc/mounts ]; then
      awk -v d="$dir/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r | while read -r point; do
        umount -l "$point" 2>/dev/null || true
      done
    fi
    rm -rf "$dir" 2>/dev/null || true
  done
}
trap _opskit_cleanup EXIT

opskit_tempdir() {  # opskit_tempdir VAR NAME: VAR names a new folder, removed on exit
  local dir
  dir=$(mktemp -d "/tmp/opskit-$2.XXXXXX")
  _opskit_workdirs+=("$dir")
  printf -v "$1" '%s' "$dir"
}

# opskit_packages [browser]: docker.io for the engine, docker-registry for ECR's data plane, busybox-static to build
# images FROM scratch (no base image can be pulled); with "browser", Debian's chromium for the runbooks' browser
# tests. Without root, say what is missing and go on: what needs it says so in its own words.
opskit_packages() {
  local packages=()
  command -v dockerd >/dev/null || packages+=(docker.io)
  command -v docker-registry >/dev/null || packages+=(docker-registry)
  if command -v dpkg >/dev/null; then dpkg -s busybox-static >/dev/null 2>&1 || packages+=(busybox-static); fi
  if [ "${1:-}" = browser ]; then command -v chromium >/dev/null || packages+=(chromium fonts-liberation); fi
  [ ${#packages[@]} -gt 0 ] || return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "opskit: missing ${packages[*]}: install them (as root: apt-get install ${packages[*]})" >&2
    return 1
  fi
  echo "opskit: installing ${packages[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
}

# opskit_venv [EXTRAS] [PIP ARGS...]: the checkout's virtual environment with opskit installed (editable), first on PATH.
opskit_venv() {
  local extras="${1:-}"
  shift || true
  if [ ! -x "$OPSKIT_VENV/bin/python" ]; then
    echo "opskit: creating $OPSKIT_VENV" >&2
    python3 -m venv "$OPSKIT_VENV"
  fi
  "$OPSKIT_VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade "pip>=23.1"
  local target="$OPSKIT_ROOT"
  [ -n "$extras" ] && target="$OPSKIT_ROOT[$extras]"
  "$OPSKIT_VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$target" "$@"
  export PATH="$OPSKIT_VENV/bin:$PATH" VIRTUAL_ENV="$OPSKIT_VENV"
}

_opskit_engine_answers() {
  DOCKER_HOST="$1" timeout 5 python -c 'import docker; docker.from_env().ping()' 2>/dev/null
}

# opskit_engine: export DOCKER_HOST of an engine that answers; start a private one (its own data, exec root and
# socket; no bridge or iptables, so containers run with network none) when none does and dockerd can run here.
opskit_engine() {
  if [ -n "${DOCKER_HOST:-}" ] && _opskit_engine_answers "$DOCKER_HOST"; then return 0; fi
  if [ -z "${DOCKER_HOST:-}" ] && [ -S /var/run/docker.sock ] && _opskit_engine_answers unix:///var/run/docker.sock; then
    export DOCKER_HOST=unix:///var/run/docker.sock
    return 0
  fi
  if [ "$(id -u)" != 0 ] || ! command -v dockerd >/dev/null; then
    echo "opskit: no Docker engine answers and none can be started here (needs root and dockerd)" >&2
    return 1
  fi
  local workdir
  opskit_tempdir workdir docker
  # In a session of its own: a Ctrl-C meant for the tests or the runbooks must not stop the engine under them
  # (they remove their containers as they stop); it is stopped last, by its pid, on exit.
  setsid dockerd --iptables=false --ip-masq=false --bridge=none \
    --data-root "$workdir/root" --exec-root "$workdir/exec" \
    -H "unix://$workdir/docker.sock" --pidfile "$workdir/docker.pid" >"$workdir/dockerd.log" 2>&1 &
  _opskit_started_pid=$!
  export DOCKER_HOST="unix://$workdir/docker.sock"
  for _ in $(seq 1 100); do _opskit_engine_answers "$DOCKER_HOST" && return 0; sleep 0.3; done
  echo "opskit: the Docker engine did not start:" >&2
  tail -20 "$workdir/dockerd.log" >&2
  return 1
}
