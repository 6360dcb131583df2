#!/usr/bin/env bash
# The floor for `vpnns up`: the steps that give a namespace a wireguard-go uplink, an nftables
# kill-switch and DNS files, run with the same tools and nothing else (no lock, state record,
# health check or backend probe). bench/run.ts times it against `vpnns up`.
#
#   bench/baseline-up.sh [--trace] [--no-kill-switch] NAMESPACE INTERFACE PROFILE
#
# PROFILE is a wg-quick file with one [Peer] that has an Endpoint. --trace prints each step on
# stderr as "[#] command" before it runs, the form of `vpnns -v`. --no-kill-switch skips the
# nftables table, which gives the bare tunnel that the throughput measurement compares against.
# The script exits once the first handshake has completed (at most 10 s). It needs root and
# changes the machine's network, so run it only inside test/sandbox.sh.
set -euo pipefail
# No step needs file name expansion, and the list splitting below relies on it being off.
set -f

usage="usage: bench/baseline-up.sh [--trace] [--no-kill-switch] NAMESPACE INTERFACE PROFILE"
trace=0
kill_switch=1
while [[ $# -gt 0 && $1 == --* ]]; do
  case $1 in
    --trace) trace=1 ;;
    --no-kill-switch) kill_switch=0 ;;
    *) echo "baseline-up.sh: unknown option $1; $usage" >&2; exit 2 ;;
  esac
  shift
done
if [[ $# -ne 3 ]]; then
  echo "$usage" >&2
  exit 2
fi
namespace=$1
interface=$2
profile=$3

HANDSHAKE_TIMEOUT_US=10000000
export WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1

# Prints the command when tracing, then runs it with the caller's stdin.
step() {
  if ((trace)); then printf '[#] %s\n' "$*" >&2; fi
  "$@"
}

# Split the wg-quick file with shell builtins only: Address, DNS and MTU are wg-quick keys that
# `wg setconf` rejects, and every other line is passed on as it is.
addresses=()
dns_servers=()
networks=()
wg_lines=()
mtu=1420
peer_key=""
section=""
while IFS= read -r line || [[ -n $line ]]; do
  line=${line%$'\r'}
  if [[ $line =~ ^[[:space:]]*\[([A-Za-z]+)\] ]]; then
    section=${BASH_REMATCH[1],,}
    wg_lines+=("$line")
    continue
  fi
  if [[ ! $line =~ ^[[:space:]]*([A-Za-z]+)[[:space:]]*=[[:space:]]*([^#]*[^#[:space:]]) ]]; then
    wg_lines+=("$line")
    continue
  fi
  key=${BASH_REMATCH[1],,}
  value=${BASH_REMATCH[2]}
  list=(${value//,/ })
  case $section/$key in
    interface/address) addresses+=("${list[@]}") ;;
    interface/dns) dns_servers+=("${list[@]}") ;;
    interface/mtu) mtu=$value ;;
    peer/allowedips) networks+=("${list[@]}"); wg_lines+=("$line") ;;
    peer/publickey) [[ -n $peer_key ]] || peer_key=$value; wg_lines+=("$line") ;;
    *) wg_lines+=("$line") ;;
  esac
done <"$profile"
if [[ -z $peer_key || ${#addresses[@]} -eq 0 ]]; then
  echo "baseline-up.sh: $profile has no [Peer] PublicKey or no Address" >&2
  exit 2
fi

step ip netns add "$namespace"
step ip -n "$namespace" link set dev lo up

if ((kill_switch)); then
  step ip netns exec "$namespace" nft -f - <<EOF
table inet vpnns {
  chain input {
    type filter hook input priority filter; policy drop;
    iif "lo" accept
    iifname "$interface" ct state established,related accept
  }
  chain forward {
    type filter hook forward priority filter; policy drop;
  }
  chain output {
    type filter hook output priority filter; policy drop;
    oif "lo" accept
    oifname "$interface" accept
  }
}
EOF
fi

step wireguard-go "$interface"

# The keys go through a 0600 file, as in vpnns. noclobber makes the redirection fail on an existing
# file instead of writing into it.
config_file="/run/baseline-$interface.conf"
umask 077
set -C
printf '%s\n' "${wg_lines[@]}" >"$config_file"
set +C
step wg setconf "$interface" "$config_file"
rm -f "$config_file"
umask 022

step ip link set dev "$interface" netns "$namespace"

batch=""
for address in "${addresses[@]}"; do batch+="address add $address dev $interface"$'\n'; done
batch+="link set dev $interface mtu $mtu up"$'\n'
for network in "${networks[@]}"; do batch+="route replace $network dev $interface"$'\n'; done
step ip -n "$namespace" -batch - <<<"${batch%$'\n'}"

folder="/etc/netns/$namespace"
step mkdir -p "$folder"
resolv=""
for server in "${dns_servers[@]}"; do resolv+="nameserver $server"$'\n'; done
printf '%s' "$resolv" >"$folder/resolv.conf"
nsswitch=""
if [[ -r /etc/nsswitch.conf ]]; then
  while IFS= read -r line || [[ -n $line ]]; do
    [[ $line =~ ^[[:space:]]*hosts[[:space:]]*: ]] || nsswitch+="$line"$'\n'
  done </etc/nsswitch.conf
fi
printf '%shosts: files dns\n' "$nsswitch" >"$folder/nsswitch.conf"

# Setting a keepalive makes WireGuard send a packet at once, which starts the handshake. Once the
# handshake is done, the profile's own setting (none) is restored, as vpnns does.
step wg set "$interface" peer "$peer_key" persistent-keepalive 25
deadline=$((${EPOCHREALTIME/./} + HANDSHAKE_TIMEOUT_US))
for (( ; ; )); do
  handshakes=$(wg show "$interface" latest-handshakes)
  [[ ${handshakes##*[[:space:]]} == 0 ]] || break
  if ((${EPOCHREALTIME/./} > deadline)); then
    echo "baseline-up.sh: no handshake on $interface within $((HANDSHAKE_TIMEOUT_US / 1000000)) s" >&2
    exit 1
  fi
  sleep 0.01
done
step wg set "$interface" peer "$peer_key" persistent-keepalive off
