# shellcheck shell=bash
# Shared by the stand-in tools: log the call, keep state between calls.
# STANDIN_LOG: file every call is appended to, one line: "<tool> <args...>".
# STANDIN_STATE: directory for state that must survive between calls (images, cluster).

# Appends this call to the log.
standin_log() {
  local tool="$1"
  shift
  printf '%s %s\n' "$tool" "$*" >>"${STANDIN_LOG:?STANDIN_LOG must be set}"
}

# Prints the path of a state file.
standin_state() {
  mkdir -p "${STANDIN_STATE:?STANDIN_STATE must be set}"
  printf '%s/%s\n' "$STANDIN_STATE" "$1"
}
