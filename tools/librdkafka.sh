#!/bin/sh
# Build the pinned librdkafka (README "librdkafka, built from source") as a
# static library into PREFIX (default build/rdkafka): PREFIX/include/librdkafka/
# rdkafka.h, rdkafka_mock.h and PREFIX/lib/librdkafka.a.  Idempotent: once
# PREFIX/.stamp names this version and these options it does nothing.
#
# Why: Debian 12's librdkafka 2.0.2 cannot log in with SCRAM to Kafka 4
# brokers (librdkafka#4895, fixed in 2.6.1).  The source is the copy of
# librdkafka bundled in the Rust crate rdkafka-sys (crates.io), pinned by
# version and sha256; a download that does not match is refused.
#
# Only what creditd uses is built: SSL (OpenSSL) and the SASL PLAIN/SCRAM
# mechanisms, zlib; no GSSAPI, zstd, curl/OIDC, external lz4; only src/ (no
# C++ wrapper, examples or tests).  Link with: -lssl -lcrypto -lz -lpthread
# -lm -ldl -lrt (the Makefile's RDKAFKA_LIBS).
#
# Environment: LIBRDKAFKA_PREFIX (install prefix), LIBRDKAFKA_DL (directory
# the crate is downloaded to and kept in; default build/dl).
set -eu
VERSION=2.12.1
CRATE=rdkafka-sys-4.10.0+$VERSION
SHA256=e234cf318915c1059d4921ef7f75616b5219b10b46e9f3a511a15eb4b56a3f77
URL="https://static.crates.io/crates/rdkafka-sys/$CRATE.crate"
OPTS="--disable-gssapi --disable-curl --disable-zstd --disable-lz4-ext --enable-ssl --enable-zlib"

PREFIX=${LIBRDKAFKA_PREFIX:-build/rdkafka}
DL=${LIBRDKAFKA_DL:-build/dl}
STAMP="$VERSION $SHA256 $OPTS"
if [ -f "$PREFIX/.stamp" ] && [ "$(cat "$PREFIX/.stamp")" = "$STAMP" ] &&
   [ -f "$PREFIX/lib/librdkafka.a" ]; then
    exit 0
fi

die() { echo "librdkafka.sh: $*" >&2; exit 1; }
sha_ok() { [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$SHA256" ]; }

mkdir -p "$DL"
crate="$DL/$CRATE.crate"
if ! { [ -f "$crate" ] && sha_ok "$crate"; }; then
    echo "librdkafka.sh: downloading $URL" >&2
    rm -f "$crate.part"
    curl -fsSL --retry 3 -o "$crate.part" "$URL" || die "download of $URL failed"
    if ! sha_ok "$crate.part"; then
        got=$(sha256sum "$crate.part" | cut -d' ' -f1)
        rm -f "$crate.part"
        die "$URL: sha256 $got, expected $SHA256: refused"
    fi
    mv -f "$crate.part" "$crate"
fi

start=$(date +%s)
src=$(mktemp -d "${TMPDIR:-/tmp}/librdkafka.XXXXXX")
trap 'rm -rf "$src"' EXIT
tar xzf "$crate" -C "$src"
cd "$src/$CRATE/librdkafka"
[ -x configure ] || die "$crate has no librdkafka/configure"
# mklove's configure: --no-download (its modules are in the tarball).
./configure --no-download --prefix=/nonexistent $OPTS >"$src/configure.log" 2>&1 ||
    { tail -30 "$src/configure.log" >&2; die "configure failed"; }
grep -q '^#define WITH_SASL_SCRAM 1' config.h || die "configure: no SASL SCRAM (libssl-dev missing?)"
grep -q '^#define WITH_SSL 1' config.h || die "configure: no SSL (libssl-dev missing?)"
make -C src -j"$(nproc)" librdkafka.a >"$src/make.log" 2>&1 || { tail -30 "$src/make.log" >&2; die "make failed"; }
cd - >/dev/null

rm -rf "$PREFIX"
mkdir -p "$PREFIX/include/librdkafka" "$PREFIX/lib"
cp "$src/$CRATE/librdkafka/src/rdkafka.h" "$src/$CRATE/librdkafka/src/rdkafka_mock.h" "$PREFIX/include/librdkafka/"
cp "$src/$CRATE/librdkafka/src/librdkafka.a" "$PREFIX/lib/"
echo "$STAMP" >"$PREFIX/.stamp"
echo "librdkafka.sh: librdkafka $VERSION built into $PREFIX in $(( $(date +%s) - start )) s" >&2
