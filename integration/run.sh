#!/usr/bin/env bash
# integration/run.sh CMD...: start a throw-away Prosody (integration/prosody.sh),
# run CMD with its connection settings exported (MPENC_XMPP_*, see
# docs/XMPP.md), and always stop the server afterwards, whatever CMD did.
# Exits with CMD's status.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ $# -gt 0 ] || { echo "usage: integration/run.sh CMD..." >&2; exit 2; }

dir=$("$here/prosody.sh" start)
cleanup() { "$here/prosody.sh" stop "$dir" || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM
# shellcheck disable=SC1091
source "$dir/env"
echo "integration: Prosody on $MPENC_XMPP_ADDR (StartTLS/plain) and $MPENC_XMPP_TLS_ADDR (direct TLS), folder $dir" >&2
set +e
"$@"
status=$?
set -e
if [ $status -ne 0 ] && [ -f "$dir/prosody.log" ]; then
  echo "integration: last lines of the server log:" >&2
  tail -n 30 "$dir/prosody.log" >&2 || true
fi
exit $status
