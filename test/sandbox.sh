#!/usr/bin/env bash
# Runs a command in a private network and mount namespace (see src/lab/sandbox.ts), and checks
# afterwards that the machine's network state is as before.
#
#   test/sandbox.sh COMMAND [ARGS...]      for example: test/sandbox.sh npx vitest run
#
# Exits with the command's exit code when it fails, with 1 when the machine state changed, and
# with 0 otherwise. Needs root and a build (npm run build).
#
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runner="$root/dist/lab/sandbox-run.js"

if [[ $# -eq 0 ]]; then
  echo "usage: test/sandbox.sh COMMAND [ARGS...]" >&2
  exit 2
fi
if [[ $EUID -ne 0 ]]; then
  echo "sandbox.sh: must run as root, to create network namespaces and mounts" >&2
  exit 1
fi
if [[ ! -f $runner ]]; then
  echo "sandbox.sh: $runner not found; run npm run build first" >&2
  exit 1
fi

# Prints the machine's network state in a stable form: counters, lifetimes and timestamps removed.
capture_state() {
  echo "## links"
  ip -o link show | awk -F': ' '{ print $2 }' | sort
  echo "## addresses"
  ip -o addr show | sed -E 's/ (valid_lft|preferred_lft) [^ ]+//g; s/ +$//'
  echo "## IPv4 routes"
  ip route show table all
  echo "## IPv6 routes"
  ip -6 route show table all | sed -E 's/ expires [^ ]+//'

  echo "## network namespaces"
  ip netns list

  echo "## nftables"
  if command -v nft >/dev/null; then nft -s list ruleset || echo "nft failed"; else echo "nft not installed"; fi
  local save
  for save in iptables-save ip6tables-save; do
    echo "## $save"
    if command -v "$save" >/dev/null; then
      { "$save" || echo "$save failed"; } | sed -E '/^#/d; s/\[[0-9]+:[0-9]+\]//'
    else
      echo "$save not installed"
    fi
  done

  local directory
  for directory in /etc/netns /run/netns; do
    echo "## $directory"
    if [[ -e $directory ]]; then ls -A "$directory"; else echo "absent"; fi
  done

  echo "## wireguard-go processes"
  local pid stat
  for pid in $(pgrep -x wireguard-go || true); do
    # Skip zombies: they keep no namespace or socket, and their parent, often PID 1, reaps them
    # when it gets to it. A process may also exit between pgrep and these reads.
    stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || continue
    stat="${stat##*) }"
    [[ ${stat%% *} == Z ]] && continue
    # Count the daemons in the machine's own namespace and those this run started, which inherit
    # its VPNNS_SANDBOX_ID; another sandbox running at the same time is not this run's concern.
    if [[ $(readlink "/proc/$pid/ns/net" 2>/dev/null) != "$host_netns" ]] &&
      ! tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "VPNNS_SANDBOX_ID=$sandbox_id"; then
      continue
    fi
    echo "$pid $(readlink "/proc/$pid/ns/net" 2>/dev/null) $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)"
  done
}

host_netns="$(readlink /proc/self/ns/net)"
sandbox_id="$$-$RANDOM$RANDOM"
export VPNNS_SANDBOX_ID="$sandbox_id"

before="$(mktemp)"
after="$(mktemp)"
trap 'rm -f "$before" "$after"' EXIT

capture_state >"$before"
status=0
unshare --mount --net --propagation private --fork --kill-child -- node "$runner" "$@" || status=$?
capture_state >"$after"

if ! diff -u --label "before the run" --label "after the run" "$before" "$after" >&2; then
  echo "sandbox.sh: machine state changed by the test run (diff above)" >&2
  if [[ $status -ne 0 ]]; then exit "$status"; fi
  exit 1
fi
echo "machine state unchanged: links, addresses, routes, namespaces, nftables, iptables, /etc/netns, /run/netns, wireguard-go"
exit "$status"
