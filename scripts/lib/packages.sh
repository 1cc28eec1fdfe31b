# shellcheck shell=bash
# ensure_packages NAME...: installs the Debian packages among NAME that are
# missing, when this runs as root or sudo is there; otherwise it says which
# ones to install and returns 1. Sourced by scripts/test and scripts/example.
ensure_packages() {
  local missing=() p sudo=""
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if ! command -v apt-get >/dev/null || { [ -n "$sudo" ] && ! command -v sudo >/dev/null; }; then
    echo "missing Debian packages; install them with: apt-get install ${missing[*]}" >&2
    return 1
  fi
  echo "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq || { sleep 5; $sudo apt-get update -qq; }
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
