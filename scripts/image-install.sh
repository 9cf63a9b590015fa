#!/usr/bin/env bash
# Installs what `make image-test` needs and is missing, from the distribution (Debian/Ubuntu):
# podman (with the buildah it builds with), runc, slirp4netns (the container's own network
# namespace with a port on 127.0.0.1, no host bridge or firewall rule), netavark and iptables
# (podman's bridge network, used where /dev/net/tun is missing) and ca-certificates (the
# stand-in base copies the CA bundle).
#
#   scripts/image-install.sh [--dry-run]       (make image-install; make image-test runs it)
#
# The image test brings its own configuration (containers/containers.conf). The rules of the
# install (never reinstall, root or sudo, skip or fail under CI=true) are scripts/apt-install.sh's.
set -euo pipefail
exec "$(dirname "${BASH_SOURCE[0]}")/apt-install.sh" --usage-of "${BASH_SOURCE[0]}" --for "the image test" \
  podman=podman runc=runc slirp4netns=slirp4netns \
  netavark="${NETAVARK:-/usr/lib/podman/netavark}" iptables=iptables \
  ca-certificates="${IMAGE_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}" \
  -- "$@"
