# Shared by the bench scripts (sourced from the repository's root).

# require COMMAND[=PACKAGE] ...: installs from Debian's packages whatever command is missing.
require() {
  local missing=()
  for wanted in "$@"; do
    command -v "${wanted%%=*}" >/dev/null 2>&1 || missing+=("${wanted#*=}")
  done
  [ ${#missing[@]} -eq 0 ] && return
  echo "installing ${missing[*]} from Debian's packages" >&2
  local sudo=""
  [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1 && sudo=sudo
  $sudo apt-get update -qq && $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

# A TCP port on 127.0.0.1 that nothing listens on right now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
