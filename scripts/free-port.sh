#!/usr/bin/env bash
# Prints a TCP port free on 127.0.0.1, from below the kernel's ephemeral range
# (ip_local_port_range), for a server that is told its port: a port bind(0) gave and released is
# ephemeral, so a client socket of anything running beside can be handed it before the server
# binds (the service's integration tests met that race; docs/testing.md). The walk starts at an
# offset drawn from this script's PID, so successive calls try different ports first.
set -euo pipefail
exec python3 - "$$" <<'PY'
import socket, sys
low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
span = low - 10000
if span <= 1000:
    sys.exit("the ephemeral port range starts at %d: expected above 11000" % low)
start = int(sys.argv[1]) * 7919 % span
for i in range(span):
    port = 10000 + (start + i) % span
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    break
else:
    sys.exit("no free loopback port from 10000 to %d" % low)
PY
