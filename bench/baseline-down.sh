#!/usr/bin/env bash
# The floor for `vpnns down`: remove what bench/baseline-up.sh made, with the same tools and
# nothing else, and return once its wireguard-go daemon has exited. bench/run.ts times it.
#
#   bench/baseline-down.sh [--trace] NAMESPACE INTERFACE
#
# --trace prints each step on stderr as "[#] command" before it runs. Parts that are already gone
# are skipped, so it also cleans up after a failed baseline-up.sh. It needs root, so run it only
# inside test/sandbox.sh.
set -euo pipefail

usage="usage: bench/baseline-down.sh [--trace] NAMESPACE INTERFACE"
trace=0
if [[ ${1-} == --trace ]]; then
  trace=1
  shift
fi
if [[ $# -ne 2 ]]; then
  echo "$usage" >&2
  exit 2
fi
namespace=$1
interface=$2

EXIT_TIMEOUT_US=5000000

step() {
  if ((trace)); then printf '[#] %s\n' "$*" >&2; fi
  "$@"
}

# Runs a command like step, with its stderr dropped, for commands that fail when their object is
# already gone.
try_step() {
  if ((trace)); then printf '[#] %s\n' "$*" >&2; fi
  "$@" 2>/dev/null
}

# Deleting the interface makes its wireguard-go daemon exit. Deleting the namespace ends it too, but
# later, because the kernel removes a namespace's devices asynchronously. A failed baseline-up.sh
# may have left the interface in the namespace that this script runs in.
deleted=0
if [[ -e /run/netns/$namespace ]]; then
  if try_step ip -n "$namespace" link delete dev "$interface"; then deleted=1; fi
  step ip netns delete "$namespace"
fi
if ((!deleted)); then
  try_step ip link delete dev "$interface" || true
fi
if [[ -e /etc/netns/$namespace ]]; then
  step rm -rf "/etc/netns/$namespace"
fi
if [[ -e /run/baseline-$interface.conf ]]; then
  rm -f "/run/baseline-$interface.conf"
fi

# wireguard-go removes its control socket as it exits.
socket="/var/run/wireguard/$interface.sock"
if [[ -e $socket ]]; then
  if ((trace)); then printf '[#] wait for %s to go\n' "$socket" >&2; fi
  deadline=$((${EPOCHREALTIME/./} + EXIT_TIMEOUT_US))
  while [[ -e $socket ]]; do
    if ((${EPOCHREALTIME/./} > deadline)); then
      echo "baseline-down.sh: the wireguard-go daemon of $interface is still running after $((EXIT_TIMEOUT_US / 1000000)) s" >&2
      exit 1
    fi
    sleep 0.01
  done
fi
