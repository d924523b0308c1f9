#!/bin/sh
# Force every outbound TCP connection of this network namespace through Enact's transparent listener,
# except the sidecar's own (matched by its UID). Run once, as root with NET_ADMIN, in the namespace the
# agent and the sidecar share (a pod's init container; compose's `redirect` service).
#
#   ENACT_UID               the sidecar's UID (default 10001, the image's `enact` user)
#   ENACT_TRANSPARENT_PORT  listen.transparent's port (default 15001; listen on 127.0.0.1: REDIRECT
#                           from OUTPUT delivers to loopback, so the listener need not face the network)
#   ENACT_DNS_SERVERS       the resolvers UDP port 53 may reach, space-separated (default: any; a
#                           Kubernetes NetworkPolicy then limits it to kube-dns)
#
# TCP from any other UID is REDIRECTed (the sidecar routes it by TLS server name, never by its original
# destination); loopback stays reachable (the agent may also use HTTPS_PROXY=127.0.0.1:8080 and the
# Postgres listener); everything else but DNS is rejected (QUIC, ICMP, ...); IPv6 is rejected outright.
# Rules go in chains of their own, appended after any the container runtime installed (Docker's
# embedded DNS at 127.0.0.11 keeps working).
set -eu
uid="${ENACT_UID:-10001}"
port="${ENACT_TRANSPARENT_PORT:-15001}"

iptables -t nat -N ENACT_OUTPUT
iptables -t nat -A ENACT_OUTPUT -m owner --uid-owner "$uid" -j RETURN
iptables -t nat -A ENACT_OUTPUT -d 127.0.0.0/8 -j RETURN
iptables -t nat -A ENACT_OUTPUT -p tcp -j REDIRECT --to-ports "$port"
iptables -t nat -A OUTPUT -p tcp -j ENACT_OUTPUT

iptables -N ENACT_FILTER
iptables -A ENACT_FILTER -o lo -j ACCEPT
iptables -A ENACT_FILTER -d 127.0.0.0/8 -j ACCEPT   # what was just REDIRECTed still shows its first route here
iptables -A ENACT_FILTER -m owner --uid-owner "$uid" -j ACCEPT
if [ -n "${ENACT_DNS_SERVERS:-}" ]; then
  for server in $ENACT_DNS_SERVERS; do
    iptables -A ENACT_FILTER -p udp -d "$server" --dport 53 -j ACCEPT
  done
else
  iptables -A ENACT_FILTER -p udp --dport 53 -j ACCEPT
fi
iptables -A ENACT_FILTER -j REJECT   # anything else: other UDP (QUIC), ICMP, TCP that escaped the redirect
iptables -A OUTPUT -j ENACT_FILTER

if command -v ip6tables >/dev/null 2>&1 && ip6tables -L OUTPUT >/dev/null 2>&1; then
  ip6tables -A OUTPUT -o lo -j ACCEPT
  ip6tables -A OUTPUT -m owner --uid-owner "$uid" -j ACCEPT
  ip6tables -A OUTPUT -j REJECT
fi
echo "enact-redirect: TCP of every UID but $uid goes to 127.0.0.1:$port; UDP but DNS, and IPv6, refused"
