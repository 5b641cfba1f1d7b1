#!/bin/sh
# Install the Debian packages creditd needs to build and test, if missing.
# Called by every make target; a no-op when everything is present.
# curl, ca-certificates, libssl-dev, zlib1g-dev: tools/librdkafka.sh (librdkafka built from
# source with SSL and SASL SCRAM; kcat and python3-confluent-kafka bring Debian's librdkafka1).
# clang + libclang-rt-14-dev (libFuzzer for clang 14): make fuzz, make fuzz-short;
# llvm-14 (llvm-cov, llvm-profdata): make fuzz-cov.
# libmicrohttpd-dev: creditd's HTTP endpoint; python3-prometheus-client: its
# text parser checks GET /metrics in the tests.
set -eu
PKGS="gcc make pkg-config curl ca-certificates libssl-dev zlib1g-dev libjansson-dev liblmdb-dev libcmocka-dev kcat jq python3-confluent-kafka clang libclang-rt-14-dev llvm-14 libmicrohttpd-dev python3-prometheus-client"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing" >&2
if [ "$(id -u)" != 0 ]; then
    echo "deps: missing packages:$missing -- run as root or install them" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends $missing >&2
