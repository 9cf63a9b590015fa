# shellcheck shell=bash
# Tests of scripts/install_kubernetes_env.sh with stand-ins: it must never reinstall, must say
# what it will do before doing it, and must verify what it downloads.

# Adds recording stand-ins for sudo, apt-get, apt-cache, usermod and curl to the sandbox. curl
# "serves" a fake binary, its SHA-256 (or a wrong one with STANDIN_CURL_BAD_SUM=1) and
# stable.txt. apt-cache has a candidate for the packages named in STANDIN_APT_PACKAGES; apt-get
# installing a buildx package makes the stand-in docker's buildx appear.
add_installer_standins() {
  cat >"$SANDBOX/bin/sudo" <<'STANDIN'
#!/usr/bin/env bash
printf 'sudo %s\n' "$*" >>"$STANDIN_LOG"
exec "$@"
STANDIN
  cat >"$SANDBOX/bin/apt-get" <<'STANDIN'
#!/usr/bin/env bash
printf 'apt-get %s\n' "$*" >>"$STANDIN_LOG"
if [[ " $* " == *" install "* && " $* " == *" docker-buildx"* ]]; then
  mkdir -p "$STANDIN_STATE" && touch "$STANDIN_STATE/docker.buildx"
fi
STANDIN
  cat >"$SANDBOX/bin/apt-cache" <<'STANDIN'
#!/usr/bin/env bash
printf 'apt-cache %s\n' "$*" >>"$STANDIN_LOG"
[[ "$1" == policy ]] || exit 0
candidate="(none)"
[[ " ${STANDIN_APT_PACKAGES:-} " == *" $2 "* ]] && candidate="1.0-stand-in"
printf '%s:\n  Installed: (none)\n  Candidate: %s\n' "$2" "$candidate"
STANDIN
  cat >"$SANDBOX/bin/usermod" <<'STANDIN'
#!/usr/bin/env bash
printf 'usermod %s\n' "$*" >>"$STANDIN_LOG"
STANDIN
  cat >"$SANDBOX/bin/curl" <<'STANDIN'
#!/usr/bin/env bash
printf 'curl %s\n' "$*" >>"$STANDIN_LOG"
out="" url=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    -o) out="$2"; shift 2 ;;
    --retry) shift 2 ;;
    -*) shift ;;
    *) url="$1"; shift ;;
  esac
done
body="fake binary from $url"
case "$url" in
  */stable.txt) body="v1.33.4" ;;
  *.sha256)
    sum="$(printf '%s' "fake binary from ${url%.sha256}" | sha256sum | cut -d' ' -f1)"
    [[ "${STANDIN_CURL_BAD_SUM:-0}" == 1 ]] && sum="$(printf 'other' | sha256sum | cut -d' ' -f1)"
    body="$sum"
    ;;
esac
if [[ -n "$out" ]]; then printf '%s' "$body" >"$out"; else printf '%s\n' "$body"; fi
STANDIN
  chmod +x "$SANDBOX/bin/sudo" "$SANDBOX/bin/apt-get" "$SANDBOX/bin/apt-cache" "$SANDBOX/bin/usermod" "$SANDBOX/bin/curl"
}

# Runs the sandbox's installer; output in $OUT, exit code in RC.
# shellcheck disable=SC2034 # OUT and RC are read by the tests
install_env() {
  OUT="$SANDBOX/install.out"
  RC=0
  INSTALL_PREFIX="$SANDBOX/prefix" ETC_APT="$SANDBOX/etc/apt" OS_RELEASE="$SANDBOX/os-release" \
    "$REPO/scripts/install_kubernetes_env.sh" "$@" >"$OUT" 2>&1 </dev/null || RC=$?
}

# Everything present: nothing installed, nothing downloaded, no sudo; versions printed.
test_installer_with_every_tool_present_installs_nothing_and_prints_versions() {
  new_sandbox
  add_installer_standins
  install_env
  assert_eq "$RC" 0 "exit code"
  assert_file_contains "$OUT" "docker present, not reinstalled: Docker version 28.2.2"
  assert_file_contains "$OUT" "kubectl present, not reinstalled: Client Version: v1.33.4"
  assert_file_contains "$OUT" "minikube present, not reinstalled: minikube version: v1.37.0"
  assert_file_contains "$OUT" "nothing to install"
  assert_file_lacks "$LOG" "sudo "
  assert_file_lacks "$LOG" "apt-get "
  assert_file_lacks "$LOG" "curl "
}

# Missing kubectl and minikube: the plan comes first, then verified downloads into the prefix;
# docker, present, is not touched.
test_installer_installs_only_the_missing_tools_after_stating_the_plan() {
  new_sandbox
  add_installer_standins
  rm "$SANDBOX/bin/kubectl" "$SANDBOX/bin/minikube"
  mkdir -p "$SANDBOX/prefix/bin"
  install_env
  assert_eq "$RC" 0 "exit code"
  assert_file_contains "$OUT" "plan: install kubectl minikube"
  assert_file_contains "$OUT" "docker present, not reinstalled"
  assert_before "$OUT" 'plan: install' '^==> kubectl: v1.33.4'
  assert_file_contains "$LOG" "curl -fsSL --retry 3 -o"
  assert_file_contains "$LOG" "https://dl.k8s.io/release/v1.33.4/bin/linux/"
  assert_file_contains "$LOG" "https://storage.googleapis.com/minikube/releases/latest/minikube-linux-"
  assert_file_lacks "$LOG" "apt-get "
  assert_file_lacks "$LOG" "download.docker.com"
  [[ -x "$SANDBOX/prefix/bin/kubectl" && -x "$SANDBOX/prefix/bin/minikube" ]] ||
    fail "kubectl and minikube were not installed into the prefix"
  if [[ $EUID -eq 0 ]]; then
    assert_file_contains "$OUT" "running as root: sudo is not used"
    assert_file_lacks "$LOG" "sudo "
  else
    assert_before "$OUT" 'sudo will ask for your password' '^==> kubectl'
  fi
}

# A checksum mismatch stops the installer before anything is installed.
test_installer_refuses_a_download_whose_checksum_does_not_match() {
  new_sandbox
  add_installer_standins
  rm "$SANDBOX/bin/minikube"
  mkdir -p "$SANDBOX/prefix/bin"
  STANDIN_CURL_BAD_SUM=1 install_env
  assert_ne "$RC" 0 "exit code"
  assert_file_contains "$OUT" "checksum mismatch"
  [[ ! -e "$SANDBOX/prefix/bin/minikube" ]] || fail "a file with a wrong checksum was installed"
}

# --dry-run states the plan and changes nothing.
test_installer_dry_run_only_prints_the_plan() {
  new_sandbox
  add_installer_standins
  rm "$SANDBOX/bin/docker"
  install_env --dry-run
  assert_eq "$RC" 0 "exit code"
  assert_file_contains "$OUT" "plan: install docker"
  assert_file_contains "$OUT" "dry run: nothing installed"
  assert_file_lacks "$LOG" "curl "
  assert_file_lacks "$LOG" "apt-get "
}

# docker without buildx, Docker's repository configured (docker-ce-cli comes from it): the plan
# names buildx and Docker's docker-buildx-plugin, which is then installed; no repository added.
test_installer_adds_docker_buildx_plugin_to_a_docker_without_buildx() {
  new_sandbox
  add_installer_standins
  export STANDIN_DOCKER_NO_BUILDX=1 STANDIN_APT_PACKAGES="docker-buildx-plugin docker-buildx"
  install_env --yes
  assert_eq "$RC" 0 "exit code"
  assert_file_contains "$OUT" "docker is present without buildx"
  assert_file_contains "$OUT" "plan: install buildx"
  assert_file_contains "$OUT" "buildx:   the docker-buildx-plugin package (Docker's apt repository, already configured)"
  assert_file_lacks "$OUT" "nothing to install"
  assert_before "$OUT" 'plan: install buildx' 'buildx: the docker-buildx-plugin package'
  assert_file_contains "$LOG" "apt-get install -y -qq docker-buildx-plugin"
  assert_file_lacks "$LOG" "download.docker.com"
  assert_file_lacks "$LOG" "apt-get install -y -qq docker-ce"
  assert_file_contains "$OUT" "buildx installed: github.com/docker/buildx"
}

# docker from the distribution (docker.io), whose repositories have docker-buildx: that package.
test_installer_uses_the_distributions_docker_buildx_when_dockers_repository_is_absent() {
  new_sandbox
  add_installer_standins
  export STANDIN_DOCKER_NO_BUILDX=1 STANDIN_APT_PACKAGES="docker-buildx"
  install_env --yes
  assert_eq "$RC" 0 "exit code"
  assert_file_contains "$OUT" "buildx:   the docker-buildx package (your distribution's)"
  assert_file_contains "$LOG" "apt-get install -y -qq docker-buildx"
  assert_file_lacks "$LOG" "install -y -qq docker-buildx-plugin"
  assert_file_lacks "$LOG" "download.docker.com"
}

# No repository has buildx (Debian 12's docker.io): Docker's repository is added, then its plugin.
test_installer_adds_dockers_repository_when_no_buildx_package_is_available() {
  new_sandbox
  add_installer_standins
  printf 'ID=ubuntu\nVERSION_CODENAME=noble\nUBUNTU_CODENAME=noble\n' >"$SANDBOX/os-release"
  export STANDIN_DOCKER_NO_BUILDX=1 STANDIN_APT_PACKAGES=""
  install_env --yes
  assert_eq "$RC" 0 "exit code"
  assert_file_contains "$OUT" "buildx:   Docker's apt repository (download.docker.com), then its docker-buildx-plugin package"
  assert_file_contains "$LOG" "https://download.docker.com/linux/ubuntu/gpg"
  assert_file_contains "$SANDBOX/etc/apt/sources.list.d/docker.list" "https://download.docker.com/linux/ubuntu noble stable"
  assert_before "$LOG" 'download.docker.com' 'apt-get install -y -qq docker-buildx-plugin'
  assert_file_lacks "$LOG" "apt-get install -y -qq docker-ce"
}

# The dead end of issue 12: the deploy script's remedy for a missing buildx is the installer,
# and after it the deploy gets past its preflight.
test_deploy_remedy_for_missing_buildx_is_the_installer_and_it_works() {
  new_sandbox
  add_installer_standins
  export STANDIN_DOCKER_NO_BUILDX=1 STANDIN_APT_PACKAGES="docker-buildx-plugin"
  deploy --dev
  assert_eq "$RC" 1 "exit code of the deploy without buildx"
  assert_file_contains "$OUT" "docker buildx is missing"
  assert_file_contains "$OUT" "run make install-k8s_env, which installs the buildx plugin"
  install_env --yes
  assert_eq "$RC" 0 "installer exit code"
  assert_file_contains "$LOG" "apt-get install -y -qq docker-buildx-plugin"
  deploy --dev
  assert_eq "$RC" 0 "exit code of the deploy after make install-k8s_env"
  assert_file_contains "$OUT" "minikube, kubectl, docker and buildx found"
}
