#!/usr/bin/env bash
# scripts/demo.sh (make demo): an encrypted conversation with a bot, on this
# machine, in one command.
#
# It builds mpenc-client and mpenc-bot, installs Prosody when missing
# (Debian package; needs root) and starts a throw-away server on loopback
# (integration/prosody.sh), starts a bot in the room demo@conference.localhost,
# and opens the client in that room as a second account. Type a message, or
# !help for the bot's commands; /quit (or Ctrl-C) leaves the room properly,
# and the script then stops the bot and the server and deletes everything
# it made.
#
# With standard input not a terminal, the client runs in line mode and
# reads its input from it:   printf '!ping\n' | scripts/demo.sh
#
# Environment: GO (default go), MPENC_DEMO_ROOM (default demo).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
go=${GO:-go}
room="${MPENC_DEMO_ROOM:-demo}@conference.localhost"

say() { echo "demo: $*" >&2; }
die() { say "error: $*"; exit 1; }

command -v "$go" >/dev/null || die "Go is missing: install Go 1.26 (https://go.dev/dl) and run make demo again"

work=$(mktemp -d /tmp/mpenc-demo.XXXXXX)
server=""
bot_pid=""
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [ -n "$bot_pid" ] && kill -0 "$bot_pid" 2>/dev/null; then
    say "stopping the bot"
    kill -TERM "$bot_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$bot_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$bot_pid" 2>/dev/null || true
    wait "$bot_pid" 2>/dev/null || true
  fi
  if [ -n "$server" ]; then
    say "stopping the server"
    "$root/integration/prosody.sh" stop "$server" || true
  fi
  if [ $status -ne 0 ] && [ -f "$work/bot.log" ]; then
    say "the bot's last log lines:"
    tail -n 5 "$work/bot.log" >&2 || true
  fi
  rm -rf "$work"
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "building mpenc-client and mpenc-bot (the first build takes a minute or two)"
(cd "$root" && "$go" build -o "$work/" ./cmd/mpenc-client ./cmd/mpenc-bot)

say "starting a local XMPP server (Prosody, loopback only)"
"$root/integration/prosody.sh" install
server=$(MPENC_PROSODY_ACCOUNTS=2 "$root/integration/prosody.sh" start)
say "server folder $server, demo folder $work (both deleted at the end)"
# shellcheck disable=SC1091
source "$server/env"
password() { tr ' ' '\n' <<<"$MPENC_XMPP_ACCOUNTS" | grep "^$1@" | cut -d: -f2; }
secret() { head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

cat >"$work/bot.toml" <<EOF
account  = "user1@localhost"
nick     = "bot"
store    = "$work/bot.db"
server   = "$MPENC_XMPP_ADDR"
ca_file  = "$MPENC_XMPP_CA"
timing   = "loopback"
log_file = "$work/bot.log"

[[rooms]]
jid     = "$room"
include = "everyone"
EOF
cat >"$work/client.toml" <<EOF
account  = "user2@localhost"
nick     = "you"
store    = "$work/you.db"
server   = "$MPENC_XMPP_ADDR"
ca_file  = "$MPENC_XMPP_CA"
timing   = "loopback"
rooms    = ["$room"]
EOF

say "starting the bot in $room"
MPENC_PASSWORD=$(password user1) MPENC_PASSPHRASE=$(secret) \
  "$work/mpenc-bot" -config "$work/bot.toml" </dev/null 2>>"$work/bot.log" &
bot_pid=$!
for _ in $(seq 1 300); do
  grep -qs '"message":"joined"' "$work/bot.log" && break
  kill -0 "$bot_pid" 2>/dev/null || die "the bot stopped"
  sleep 0.1
done
grep -qs '"message":"joined"' "$work/bot.log" || die "the bot did not join $room within 30 s"

plain=()
if [ ! -t 0 ] || [ ! -t 1 ]; then
  plain=(-plain)
else
  say "opening the client: type a message, or !help; /quit leaves"
  sleep 1
fi
status=0
MPENC_PASSWORD=$(password user2) MPENC_PASSPHRASE=$(secret) \
  "$work/mpenc-client" -config "$work/client.toml" "${plain[@]}" || status=$?
exit $status
