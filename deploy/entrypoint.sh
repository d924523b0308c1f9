#!/bin/sh
# Make sure the sidecar's CA exists, publish its *public* certificate for the agent, then run the command.
# The certs folder holds private keys and is never shared; ENACT_CA_DIR is what the agent mounts read-only.
set -eu
certs="${ENACT_CERTS_DIR:-/var/lib/enact/certs}"
ca_dir="${ENACT_CA_DIR:-/var/lib/enact/ca}"
mkdir -p "$certs" "$ca_dir"
if [ ! -s "$certs/mitmproxy-ca-cert.pem" ]; then
  # The same CA `enact-proxy run` would make on first start (mitmproxy's certificate store).
  python -c 'import sys; from mitmproxy.certs import CertStore; CertStore.from_store(sys.argv[1], "mitmproxy", 2048)' "$certs"
fi
cp "$certs/mitmproxy-ca-cert.pem" "$ca_dir/ca.pem.tmp"
chmod 0644 "$ca_dir/ca.pem.tmp"
mv "$ca_dir/ca.pem.tmp" "$ca_dir/ca.pem"
exec "$@"
