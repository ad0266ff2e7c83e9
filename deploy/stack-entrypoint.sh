#!/bin/sh
# compose.yaml's entry point in the hsmgate image (docs/deploy.md#container-image-and-compose-stack):
#
#   stack-entrypoint.sh init-token     initialise the SoftHSM2 token "hsmgate" with HSMGATE_PKCS11_PIN and
#                                      SOFTHSM_SO_PIN, unless the token volume holds it already
#   stack-entrypoint.sh serve [ARG…]   wait (at most 120 s) until PostgreSQL accepts connections on
#                                      postgres:5432 and the token exists, then exec `hsmgate serve ARG…`
#
# The waits stand in for compose's depends_on conditions, which podman before 4.6 cannot honour
# (service_healthy is ignored, and podman-compose's --requires restarts a completed init container).
# The PostgreSQL image listens on the network only once its initdb and role are done.
set -eu
TOKEN_LABEL="${HSMGATE_PKCS11_TOKEN_LABEL:-hsmgate}"

token_exists() {
  softhsm2-util --show-slots 2>/dev/null | grep -Eq "^ +Label: +${TOKEN_LABEL} *\$"
}

case "${1:-}" in
  init-token)
    if token_exists; then
      echo "SoftHSM2 token ${TOKEN_LABEL} exists"
    else
      softhsm2-util --init-token --free --label "$TOKEN_LABEL" --pin "$HSMGATE_PKCS11_PIN" --so-pin "$SOFTHSM_SO_PIN"
    fi
    ;;
  serve)
    shift
    python3 - <<'PY'
import socket
import sys
import time

deadline = time.monotonic() + 120
while True:
    try:
        socket.create_connection(("postgres", 5432), timeout=2).close()
        break
    except OSError as exc:
        if time.monotonic() > deadline:
            sys.exit(f"PostgreSQL at postgres:5432 did not accept a connection within 120 s: {exc}")
        time.sleep(0.5)
PY
    waited=0
    until token_exists; do
      if [ "$waited" -ge 240 ]; then
        echo "SoftHSM2 token ${TOKEN_LABEL} did not appear within 120 s: is the init service done?" >&2
        exit 2
      fi
      sleep 0.5
      waited=$((waited + 1))
    done
    exec hsmgate serve "$@"
    ;;
  *)
    echo "usage: stack-entrypoint.sh init-token | serve [ARG…]" >&2
    exit 2
    ;;
esac
