#!/usr/bin/env bash
# integration/run.sh CMD...: start a throw-away XMPP server
# (integration/prosody.sh, or integration/ejabberd.sh with
# MPENC_XMPP_SERVER=ejabberd), run CMD with its connection settings exported
# (MPENC_XMPP_*, see docs/XMPP.md), and always stop the server afterwards,
# whatever CMD did. Exits with CMD's status.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ $# -gt 0 ] || { echo "usage: [MPENC_XMPP_SERVER=prosody|ejabberd] integration/run.sh CMD..." >&2; exit 2; }

server=${MPENC_XMPP_SERVER:-prosody}
case "$server" in
  prosody|ejabberd) ;;
  *) echo "integration/run.sh: MPENC_XMPP_SERVER: prosody or ejabberd, not '$server'" >&2; exit 2 ;;
esac
script="$here/$server.sh"

# Global, so that the trap still has it whenever it runs.
dir=""
cleanup() { [ -z "$dir" ] || "$script" stop "$dir" || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM
dir=$("$script" start)
# shellcheck disable=SC1091
source "$dir/env"
export MPENC_XMPP_SERVER=$server
echo "integration: $server on $MPENC_XMPP_ADDR (StartTLS/plain) and $MPENC_XMPP_TLS_ADDR (direct TLS), folder $dir" >&2
set +e
"$@"
status=$?
set -e
if [ $status -ne 0 ]; then
  for log in "$dir/prosody.log" "$dir/log/ejabberd.log"; do
    if [ -f "$log" ]; then
      echo "integration: last lines of the server log:" >&2
      tail -n 30 "$log" >&2 || true
    fi
  done
fi
exit $status
