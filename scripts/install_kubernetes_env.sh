#!/usr/bin/env bash
# Installs what the minikube deploy needs and is missing: docker (with buildx), kubectl, minikube.
#
#   scripts/install_kubernetes_env.sh [--dry-run] [--yes]     (make install-k8s_env)
#
# Never reinstalls: a tool already on PATH is left alone and its version printed; a docker without
# the buildx plugin (which the Dockerfile's BuildKit cache mounts need) gets the plugin. minikube
# uses the docker driver (no VirtualBox needed). The plan is printed before anything runs and
# before sudo is asked for; as root, sudo is not used. Linux (Debian/Ubuntu for docker) only.
set -euo pipefail

INSTALL_PREFIX="${INSTALL_PREFIX:-/usr/local}"
# Empty: the current stable release (https://dl.k8s.io/release/stable.txt).
KUBECTL_VERSION="${KUBECTL_VERSION:-}"
MINIKUBE_VERSION="${MINIKUBE_VERSION:-latest}"
# Where apt's configuration and the distribution's identity are read and written (tests point
# them into a sandbox).
ETC_APT="${ETC_APT:-/etc/apt}"
OS_RELEASE="${OS_RELEASE:-/etc/os-release}"
DRY_RUN=0
ASSUME_YES=0
SUDO=()

# shellcheck source=scripts/log.sh
source "$(dirname "${BASH_SOURCE[0]}")/log.sh"

# Prints the usage text.
usage() {
  cat <<EOF
usage: scripts/install_kubernetes_env.sh [--dry-run] [--yes]

Installs docker, kubectl and minikube when they are missing; never reinstalls one that is
present (its version is printed instead). A docker without buildx gets the buildx plugin:
docker-buildx-plugin from Docker's apt repository, or the distribution's docker-buildx.

  --dry-run   print what would be installed and exit
  --yes       do not ask for confirmation on a terminal

Environment: KUBECTL_VERSION (default: current stable), MINIKUBE_VERSION (latest),
INSTALL_PREFIX (/usr/local: kubectl and minikube go to \$INSTALL_PREFIX/bin).
EOF
}

# The version line of an installed tool.
version_of() {
  case "$1" in
    docker) docker --version 2>/dev/null || echo "docker (version unknown)" ;;
    buildx) docker buildx version 2>/dev/null | sed -n 1p || echo "buildx (version unknown)" ;;
    kubectl) kubectl version --client 2>/dev/null | sed -n 1p || echo "kubectl (version unknown)" ;;
    minikube) minikube version --short 2>/dev/null || minikube version 2>/dev/null | sed -n 1p || echo "minikube (version unknown)" ;;
  esac
}

# Go-style architecture name of this machine (amd64, arm64).
arch() {
  case "$(uname -m)" in
    x86_64 | amd64) echo amd64 ;;
    aarch64 | arm64) echo arm64 ;;
    *) die "unsupported architecture $(uname -m) (amd64 and arm64 are supported)" ;;
  esac
}

# Runs a command as root: directly when already root, else through sudo.
as_root() {
  "${SUDO[@]}" "$@"
}

# Downloads a URL to a file, failing on HTTP errors.
download() {
  curl -fsSL --retry 3 -o "$2" "$1"
}

# Checks a downloaded file against the published SHA-256 next to it.
verify_sha256() {
  local file="$1" sum_url="$2" expected
  expected="$(curl -fsSL --retry 3 "$sum_url" | awk '{print $1}')"
  [[ "$expected" =~ ^[0-9a-f]{64}$ ]] || die "could not read the checksum at $sum_url"
  echo "$expected  $file" | sha256sum --check --status || die "checksum mismatch for $file (from $sum_url)"
}

# Adds Docker's apt repository (Debian, Ubuntu and derivatives), signed by Docker's key.
add_docker_repo() {
  local distro codename
  # Docker publishes one repository for Ubuntu (and derivatives) and one for Debian.
  read -r distro codename < <(
    ID="" ID_LIKE="" VERSION_CODENAME="" UBUNTU_CODENAME=""
    # shellcheck source=/dev/null
    . "$OS_RELEASE"
    if [[ "$ID" == ubuntu || " $ID_LIKE " == *" ubuntu "* ]]; then
      echo "ubuntu ${UBUNTU_CODENAME:-$VERSION_CODENAME}"
    elif [[ "$ID" == debian || " $ID_LIKE " == *" debian "* ]]; then
      echo "debian $VERSION_CODENAME"
    else
      echo "$ID -"
    fi
  )
  [[ "$distro" == ubuntu || "$distro" == debian ]] ||
    die "unsupported distribution '$distro' for Docker's apt repository; see https://docs.docker.com/engine/install/"
  [[ -n "$codename" && "$codename" != - ]] || die "cannot tell the release codename from $OS_RELEASE"
  say "Docker's apt repository for $distro $codename"
  as_root apt-get update -qq
  as_root apt-get install -y -qq ca-certificates curl
  as_root install -m 0755 -d "$ETC_APT/keyrings"
  download "https://download.docker.com/linux/$distro/gpg" "$WORK/docker.asc"
  as_root install -m 0644 "$WORK/docker.asc" "$ETC_APT/keyrings/docker.asc"
  echo "deb [arch=$(dpkg --print-architecture) signed-by=$ETC_APT/keyrings/docker.asc] https://download.docker.com/linux/$distro $codename stable" >"$WORK/docker.list"
  as_root install -m 0755 -d "$ETC_APT/sources.list.d"
  as_root install -m 0644 "$WORK/docker.list" "$ETC_APT/sources.list.d/docker.list"
  as_root apt-get update -qq
}

# Installs Docker Engine from Docker's apt repository (Debian, Ubuntu and derivatives).
install_docker() {
  command -v apt-get >/dev/null 2>&1 ||
    die "docker: only apt-based systems are automated here; see https://docs.docker.com/engine/install/"
  add_docker_repo
  # buildx: `docker build` uses BuildKit, which the Dockerfile's cache mounts need.
  as_root apt-get install -y -qq docker-ce docker-ce-cli containerd.io docker-buildx-plugin
  if [[ $EUID -ne 0 ]]; then
    as_root usermod -aG docker "$USER"
    echo "  added $USER to the docker group: log out and in again (or run 'newgrp docker')" >&2
  fi
  ok "docker installed: $(version_of docker)"
}

# The version apt would install of a package ("" when no configured repository has it).
apt_candidate() {
  apt-cache policy "$1" 2>/dev/null | awk '$1 == "Candidate:" && $2 != "(none)" { print $2 }'
}

# The buildx package for this machine's docker: Docker's docker-buildx-plugin when Docker's
# repository is configured (docker-ce-cli comes from there), else the distribution's
# docker-buildx (Ubuntu 22.04+, Debian 13+); "" when neither is available (Debian 12's docker.io).
buildx_package() {
  if [[ -n "$(apt_candidate docker-buildx-plugin)" ]]; then
    echo docker-buildx-plugin
  elif [[ -n "$(apt_candidate docker-buildx)" ]]; then
    echo docker-buildx
  fi
}

# What install_buildx will do, for the plan.
buildx_plan() {
  command -v apt-get >/dev/null 2>&1 || {
    echo "not automated without apt (see below)"
    return
  }
  case "$(buildx_package)" in
    docker-buildx-plugin) echo "the docker-buildx-plugin package (Docker's apt repository, already configured)" ;;
    docker-buildx) echo "the docker-buildx package (your distribution's)" ;;
    *) echo "Docker's apt repository (download.docker.com), then its docker-buildx-plugin package" ;;
  esac
}

# Installs the buildx plugin for a docker that lacks it (docker build needs it for BuildKit).
install_buildx() {
  command -v apt-get >/dev/null 2>&1 ||
    die "buildx: only apt-based systems are automated here; install your distribution's docker-buildx package, or put the docker-buildx binary of https://github.com/docker/buildx/releases into ~/.docker/cli-plugins/ (https://docs.docker.com/go/buildx/)"
  as_root apt-get update -qq
  local pkg
  pkg="$(buildx_package)"
  if [[ -z "$pkg" ]]; then
    say "buildx: no configured repository has it"
    add_docker_repo
    pkg=docker-buildx-plugin
  fi
  say "buildx: the $pkg package"
  as_root apt-get install -y -qq "$pkg"
  docker buildx version >/dev/null 2>&1 ||
    die "buildx: $pkg is installed but 'docker buildx version' still fails; see https://docs.docker.com/go/buildx/"
  ok "buildx installed: $(version_of buildx)"
}

# Installs kubectl from dl.k8s.io after checking its published SHA-256.
install_kubectl() {
  local version="$KUBECTL_VERSION" url
  [[ -n "$version" ]] || version="$(curl -fsSL --retry 3 https://dl.k8s.io/release/stable.txt)"
  url="https://dl.k8s.io/release/$version/bin/linux/$(arch)/kubectl"
  say "kubectl: $version from dl.k8s.io"
  download "$url" "$WORK/kubectl"
  verify_sha256 "$WORK/kubectl" "$url.sha256"
  as_root install -m 0755 "$WORK/kubectl" "$INSTALL_PREFIX/bin/kubectl"
  ok "kubectl installed in $INSTALL_PREFIX/bin"
}

# Installs minikube from its release bucket after checking its published SHA-256.
install_minikube() {
  local url
  url="https://storage.googleapis.com/minikube/releases/$MINIKUBE_VERSION/minikube-linux-$(arch)"
  say "minikube: $MINIKUBE_VERSION from storage.googleapis.com"
  download "$url" "$WORK/minikube"
  verify_sha256 "$WORK/minikube" "$url.sha256"
  as_root install -m 0755 "$WORK/minikube" "$INSTALL_PREFIX/bin/minikube"
  ok "minikube installed in $INSTALL_PREFIX/bin (it will use the docker driver; no VirtualBox needed)"
}

# Parses the options into DRY_RUN and ASSUME_YES.
parse_args() {
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --dry-run) DRY_RUN=1 ;;
      -y | --yes) ASSUME_YES=1 ;;
      -h | --help)
        usage
        exit 0
        ;;
      *)
        printf 'error: unknown argument %s\n\n' "$1" >&2
        usage >&2
        exit 2
        ;;
    esac
    shift
  done
}

main() {
  parse_args "$@"
  [[ "$(uname -s)" == Linux ]] ||
    die "this installer supports Linux; on macOS: brew install --cask docker && brew install kubectl minikube"

  local tool missing=()
  say "checking docker (with buildx), kubectl, minikube"
  for tool in docker kubectl minikube; do
    if command -v "$tool" >/dev/null 2>&1; then
      ok "$tool present, not reinstalled: $(version_of "$tool")"
    else
      missing+=("$tool")
    fi
  done
  # A docker installed here comes with buildx; one already present may lack it.
  if command -v docker >/dev/null 2>&1; then
    if docker buildx version >/dev/null 2>&1; then
      ok "buildx present, not reinstalled: $(version_of buildx)"
    else
      warn "docker is present without buildx, which docker build needs for the Dockerfile's BuildKit cache mounts"
      missing+=(buildx)
    fi
  fi
  if [[ ${#missing[@]} -eq 0 ]]; then
    ok "nothing to install"
    return 0
  fi

  say "plan: install ${missing[*]}"
  for tool in "${missing[@]}"; do
    case "$tool" in
      docker) echo "  docker:   Docker Engine + buildx from Docker's apt repository (download.docker.com)" >&2 ;;
      buildx) echo "  buildx:   $(buildx_plan)" >&2 ;;
      kubectl) echo "  kubectl:  ${KUBECTL_VERSION:-the stable release} from dl.k8s.io into $INSTALL_PREFIX/bin, checksum verified" >&2 ;;
      minikube) echo "  minikube: $MINIKUBE_VERSION from storage.googleapis.com into $INSTALL_PREFIX/bin, checksum verified" >&2 ;;
    esac
  done
  if [[ $EUID -eq 0 ]]; then
    echo "  running as root: sudo is not used" >&2
  else
    command -v sudo >/dev/null 2>&1 || die "root rights are needed and sudo is not installed"
    echo "  these steps need root rights: sudo will ask for your password" >&2
    SUDO=(sudo)
  fi
  if [[ $DRY_RUN -eq 1 ]]; then
    ok "dry run: nothing installed"
    return 0
  fi
  if [[ $ASSUME_YES -eq 0 && -t 0 ]]; then
    local answer
    read -r -p "Proceed? [y/N] " answer
    [[ "$answer" == [yY]* ]] || die "cancelled, nothing installed"
  fi
  command -v curl >/dev/null 2>&1 || die "curl is needed to download the tools (apt-get install curl)"

  WORK="$(mktemp -d)"
  trap 'rm -rf "$WORK"' EXIT
  for tool in "${missing[@]}"; do
    "install_$tool"
  done
  say "done; next: make auto-deploy-dev"
}

main "$@"
