#!/usr/bin/env bash
# A real single-node Apache Kafka broker (KRaft, broker+controller in one JVM)
# for creditd's integration tests. No Docker: the jars come from Maven through
# tests/kafka/pom.xml and are cached in tests/kafka/.cache (or $KAFKA_CACHE).
#
# Usage:
#   broker.sh start DIR [key=value ...]
#       Start a broker whose config, data and logs live in DIR (created if
#       missing). Waits until it answers a metadata request, then prints
#       HOST:PORT (also written to DIR/bootstrap). If DIR already holds a broker
#       (server.properties + formatted data), it is started again on the same
#       ports and data. Extra key=value pairs are appended to server.properties
#       (only when DIR is new). Files in DIR: server.properties,
#       log4j2.properties, data/, broker.log, broker.pid, bootstrap.
#   broker.sh stop DIR
#       SIGTERM the broker, wait (bounded) for it to exit, SIGKILL if needed.
#       Succeeds if it was not running.
#   broker.sh restart DIR
#       stop, then start again on the same ports and data; prints HOST:PORT.
#   broker.sh kill DIR
#       SIGKILL the broker (a crash; `start DIR` brings it back on the same
#       ports and data).
#   broker.sh create-topic DIR NAME PARTITIONS [key=value ...]
#       Create a topic (replication factor 1) with optional topic configs, and
#       wait until every partition has a leader.
#   broker.sh bootstrap DIR
#       Print HOST:PORT of the broker in DIR.
#   broker.sh status DIR
#       Exit 0 (and print "running PID") if the broker process is alive.
#   broker.sh start-secure DIR [--user NAME:PASSWORD]... [key=value ...]
#       Like start, but the client listener is SASL_SSL (SCRAM-SHA-512 over
#       TLS) and the KRaft StandardAuthorizer denies what no ACL allows
#       (allow.everyone.if.no.acl.found=false).  When DIR is new: a test CA
#       and a broker certificate for the loopback names (localhost,
#       127.0.0.1) are made with openssl (PEM, in DIR/tls), and the SCRAM
#       users `admin` (random password; a super user, also the broker's own
#       inter-broker identity) and each --user are created when the storage is
#       formatted.  The listener also offers PLAIN (over TLS) for the same
#       users: librdkafka before 2.6.1 cannot do SCRAM with Kafka 4 (see
#       rdkafka_mechanism).  The controller listener (loopback) is TLS with
#       client certificates: only the broker's own certificate gets in.
#       Prints HOST:PORT.  Also in DIR: tls/ca.pem (the CA clients trust),
#       mechanism (what the system's librdkafka -- kcat's and
#       python3-confluent-kafka's, Debian's 2.0.2 -- can use: PLAIN or
#       SCRAM-SHA-512; creditd and the tools, built with librdkafka 2.12.1 by
#       tools/librdkafka.sh, use SCRAM-SHA-512: it_secure.sh), admin.librdkafka (librdkafka properties of admin:
#       kcat -F, -X),
#       admin.properties (Java client properties of admin: Kafka's tools'
#       --command-config), users ("NAME PASSWORD" lines).  `start DIR`
#       restarts it; create-topic and the ready check connect as admin.
#   broker.sh kafka-acls ARGS...
#   broker.sh kafka-configs ARGS...
#   broker.sh kafka-consumer-groups ARGS...
#   broker.sh kafka-console-consumer ARGS...
#       Kafka's own kafka-acls.sh, kafka-configs.sh, kafka-consumer-groups.sh,
#       kafka-console-consumer.sh (classes of the kafka-tools jar, fetched
#       once through tests/kafka/pom-admin.xml) with exactly ARGS: pass
#       --bootstrap-server and --command-config (--consumer.config) yourself,
#       e.g. DIR/admin.properties.
#   broker.sh fetch
#       Only make sure Java/Maven and the cached jars are there.
#
# Environment:
#   KAFKA_CACHE          jar cache (default tests/kafka/.cache)
#   KAFKA_HEAP_OPTS      default "-Xms256m -Xmx512m"
#   KAFKA_JVM_OPTS       extra JVM options
#   KAFKA_START_TIMEOUT  seconds to wait for the broker to answer (default 120)
#   KAFKA_STOP_TIMEOUT   seconds to wait after SIGTERM before SIGKILL (default 30)
#   KAFKA_LOG_LEVEL      log4j level of broker.log (default INFO)
#   KAFKA_CDS            1 (default): use/make a class-data-sharing archive in
#                        the cache for a faster JVM start (see cds_opts); 0: don't
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
POM="$HERE/pom.xml"
KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM" | head -n1)"
CACHE="${KAFKA_CACHE:-$HERE/.cache}"
LIBS="$CACHE/kafka-$KAFKA_VERSION/libs"
PY=/usr/bin/python3
START_TIMEOUT="${KAFKA_START_TIMEOUT:-120}"
STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"

die() { echo "broker.sh: $*" >&2; exit 1; }
log() { echo "broker.sh: $*" >&2; }

usage() {
    sed -n '/^# Usage:/,/^# Environment:/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}

java_bin() {
    if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
        echo "$JAVA_HOME/bin/java"
    else
        command -v java
    fi
}

# ---- prerequisites -------------------------------------------------------
ensure_tools() {
    local pkgs=()
    command -v java >/dev/null 2>&1 || [[ -x "${JAVA_HOME:-/nonexistent}/bin/java" ]] \
        || pkgs+=(default-jdk-headless)
    command -v mvn >/dev/null 2>&1 || pkgs+=(maven)
    [[ -x "$PY" ]] && "$PY" -c 'import confluent_kafka' >/dev/null 2>&1 \
        || pkgs+=(python3 python3-confluent-kafka)
    command -v kcat >/dev/null 2>&1 || pkgs+=(kcat)
    ((${#pkgs[@]} == 0)) && return 0
    log "installing ${pkgs[*]} with apt-get"
    local sudo=()
    [[ "$(id -u)" == 0 ]] || sudo=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    if ! "${sudo[@]}" apt-get install -y -q "${pkgs[@]}" >&2; then
        "${sudo[@]}" apt-get update -q >&2
        "${sudo[@]}" apt-get install -y -q "${pkgs[@]}" >&2
    fi
}

# Download the broker jars once. A marker file says the copy is complete, so a
# second run (even offline) does not start Maven at all.
ensure_jars() {
    local marker="$CACHE/kafka-$KAFKA_VERSION/.complete"
    [[ -f "$marker" ]] && return 0
    ensure_tools
    mkdir -p "$CACHE"
    (
        flock -w 900 9 || die "timed out waiting for the lock on $CACHE"
        [[ -f "$marker" ]] && exit 0
        local tmp="$CACHE/kafka-$KAFKA_VERSION.tmp.$$"
        rm -rf "$tmp"
        log "downloading Apache Kafka $KAFKA_VERSION jars into $LIBS (once)"
        if ! mvn -B -q -f "$POM" -Dkafka.libdir="$tmp/libs" package >"$CACHE/mvn.log" 2>&1; then
            cat "$CACHE/mvn.log" >&2
            rm -rf "$tmp"
            die "mvn failed to resolve Kafka $KAFKA_VERSION"
        fi
        ls "$tmp/libs"/kafka_2.13-*.jar >/dev/null 2>&1 || die "no kafka_2.13 jar after mvn"
        rm -rf "$CACHE/kafka-$KAFKA_VERSION"
        mv "$tmp" "$CACHE/kafka-$KAFKA_VERSION"
        date -u +%FT%TZ > "$marker"
    ) 9>"$CACHE/.lock"
}

# Kafka's admin tools (kafka-tools jar, tests/kafka/pom-admin.xml) next to
# the broker's jars, once; the broker's own copy is left as it is.
ADMIN="$CACHE/kafka-$KAFKA_VERSION/admin"
ensure_admin_jars() {
    ensure_jars
    [[ -f "$ADMIN/.complete" ]] && return 0
    (
        flock -w 900 9 || die "timed out waiting for the lock on $CACHE"
        [[ -f "$ADMIN/.complete" ]] && exit 0
        local tmp="$ADMIN.tmp.$$"
        rm -rf "$tmp"
        log "downloading Apache Kafka $KAFKA_VERSION admin tools into $ADMIN (once)"
        if ! mvn -B -q -f "$HERE/pom-admin.xml" -Dkafka.version="$KAFKA_VERSION" \
                -Dkafka.admindir="$tmp" package >"$CACHE/mvn-admin.log" 2>&1; then
            cat "$CACHE/mvn-admin.log" >&2
            rm -rf "$tmp"
            die "mvn failed to resolve kafka-tools $KAFKA_VERSION"
        fi
        ls "$tmp"/kafka-tools-*.jar >/dev/null 2>&1 || die "no kafka-tools jar after mvn"
        rm -rf "$ADMIN"
        mv "$tmp" "$ADMIN"
        date -u +%FT%TZ > "$ADMIN/.complete"
    ) 9>"$CACHE/.lock"
}

# Run one of Kafka's command-line tools (a class of the kafka-tools jar).
admin_tool() { # CLASS ARGS...
    local class="$1"; shift
    ensure_admin_jars
    "$(java_bin)" -Xmx256m -XX:TieredStopAtLevel=1 -Xshare:auto \
        -Dlog4j2.configurationFile="$HERE/log4j2-tools.properties" \
        -cp "$LIBS/*:$ADMIN/*" "$class" "$@"
}

# A freshly formatted KRaft data directory, made once per cache: formatting
# starts a JVM (~2 s), copying this takes milliseconds. Each broker's copy gets
# its own cluster.id and directory.id (the metadata checkpoint holds neither).
ensure_template() {
    local tdir="$CACHE/kafka-$KAFKA_VERSION/format-template"
    [[ -f "$tdir/.complete" ]] && return 0
    (
        flock -w 300 9 || die "timed out waiting for the lock on $CACHE"
        [[ -f "$tdir/.complete" ]] && exit 0
        rm -rf "$tdir"; mkdir -p "$tdir"
        cat > "$tdir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:9093
listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=$tdir/data
EOF
        "$(java_bin)" -Xmx256m -cp "$LIBS/*" kafka.tools.StorageTool format \
            -t "$(cluster_id)" -c "$tdir/server.properties" >"$tdir/format.log" 2>&1 \
            || { cat "$tdir/format.log" >&2; die "formatting a KRaft data directory failed"; }
        [[ -f "$tdir/data/meta.properties" ]] || die "format wrote no meta.properties"
        touch "$tdir/.complete"
    ) 9>"$CACHE/.lock"
}

format_data() { # format_data DIR: DIR/data becomes a new formatted KRaft log dir
    local dir="$1" tdir="$CACHE/kafka-$KAFKA_VERSION/format-template"
    ensure_template
    rm -rf "$dir/data"
    cp -r "$tdir/data" "$dir/data"
    sed -i -e "s/^cluster\.id=.*/cluster.id=$(cluster_id)/" \
        -e "s/^directory\.id=.*/directory.id=$(cluster_id)/" "$dir/data/meta.properties"
}

# Class-data sharing (CDS) for a faster JVM start (~6.5 s -> ~3.5 s on 2 cores):
# the first broker started with a new cache records the classes it loads
# (-XX:DumpLoadedClassList, cheap); when it stops cleanly the list is kept, and
# a niced background JVM turns it into a static archive (~13 s of CPU, once per
# cache and JVM build). Brokers started after that map the archive. An archive
# that does not match (other JVM, re-downloaded jars) is ignored by the JVM.
cds_key() {
    { readlink -f "$(java_bin)"; "$(java_bin)" -version 2>&1; } | cksum | cut -d' ' -f1
}

# Build the archive from the class list in the background, unless it exists or
# another build holds the lock. All fds are redirected: `$(broker.sh start)`
# must not wait for it.
cds_build_bg() {
    local key="$1" k="$CACHE/kafka-$KAFKA_VERSION"
    local list="$k/classes-$key.lst" jsa="$k/broker-$key.jsa"
    [[ -s "$list" && ! -s "$jsa" ]] || return 0
    local idle=(nice -n 19)
    chrt -i 0 true 2>/dev/null && idle=(chrt -i 0 nice -n 19) # SCHED_IDLE if allowed
    # shellcheck disable=SC2016 # expanded by the inner bash
    nohup "${idle[@]}" flock -n "$k/.cds.lock" bash -c '
        java="$1" list="$2" jsa="$3" libs="$4" log="$5"
        [[ -s "$jsa" ]] && exit 0
        tmp="$jsa.tmp.$$"
        if "$java" -Xshare:dump -XX:SharedClassListFile="$list" \
               -XX:SharedArchiveFile="$tmp" -cp "$libs/*" >"$log" 2>&1 && [[ -s "$tmp" ]]; then
            mv -f "$tmp" "$jsa"
        else
            rm -f "$tmp"
        fi' cds-build "$(java_bin)" "$list" "$jsa" "$LIBS" "$k/cds-dump.log" \
        </dev/null >/dev/null 2>&1 &
}

# JVM options for CDS at start; records what to keep at stop in DIR/cds-pending.
cds_opts() {
    local dir="$1" key k="$CACHE/kafka-$KAFKA_VERSION"
    rm -f "$dir/cds-pending"
    [[ "${KAFKA_CDS:-1}" == 1 ]] || return 0
    key="$(cds_key)"
    if [[ -s "$k/broker-$key.jsa" ]]; then
        echo "-XX:SharedArchiveFile=$k/broker-$key.jsa"
        echo "-Xlog:cds=off,cds+dynamic=off"
    elif [[ ! -s "$k/classes-$key.lst" ]]; then
        echo "-XX:DumpLoadedClassList=$k/classes-$key.lst.tmp.$$"
        echo "$key $k/classes-$key.lst.tmp.$$ $k/classes-$key.lst" > "$dir/cds-pending"
    else
        cds_build_bg "$key" # a previous build was interrupted
    fi
}

# After the broker of DIR exited: keep its class list if it stopped cleanly.
cds_after_stop() {
    local dir="$1" clean="$2" key tmp final
    [[ -f "$dir/cds-pending" ]] || return 0
    read -r key tmp final < "$dir/cds-pending"
    rm -f "$dir/cds-pending"
    if [[ "$clean" == 1 && -s "$tmp" ]] && grep -q '^kafka/Kafka$' "$tmp"; then
        mv -f "$tmp" "$final"
        cds_build_bg "$key"
    else
        rm -f "$tmp"
    fi
}

# ---- helpers --------------------------------------------------------------
abs_dir() { mkdir -p "$1" && (cd "$1" && pwd); }

# Is PID a live (not zombie) process?
alive() {
    local pid="$1" state
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
    state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)"
    [[ -n "$state" && "$state" != Z && "$state" != X ]]
}

# PID of the broker of DIR if it is running (and really is that broker).
running_pid() {
    local dir="$1" pid
    [[ -f "$dir/broker.pid" ]] || return 1
    pid="$(cat "$dir/broker.pid")"
    alive "$pid" || return 1
    tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF "$dir/server.properties" || return 1
    echo "$pid"
}

# Two distinct free loopback ports. They are taken below the kernel's
# ephemeral range when possible, so that no client socket is handed the port
# while the broker is down during a restart; the OS says whether each is free.
free_ports() {
    "$PY" - <<'EOF'
import random, socket
try:
    low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
except (OSError, ValueError, IndexError):
    low = 32768
socks = []
def grab(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        s.close()
        return False
    socks.append(s)
    return True
if low > 11000:
    for _ in range(200):
        if len(socks) == 2:
            break
        grab(random.randrange(10000, low))
while len(socks) < 2:
    grab(0)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
EOF
}

cluster_id() { # Kafka's Uuid string form: 16 random bytes, url-safe base64, no padding
    "$PY" -c '
import base64, uuid
while True:
    s = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not s.startswith("-"):
        print(s); break'
}

# server.properties of DIR: MODE plain (a PLAINTEXT listener) or secure
# (SASL_SSL, see start-secure; needs DIR/tls and the admin password).
write_config() {
    local dir="$1" mode="$2"; shift 2
    local ports port cport kv
    for kv in "$@"; do
        [[ "$kv" == *=* ]] || die "not key=value: $kv"
    done
    ports="$(free_ports)"
    port="${ports% *}"; cport="${ports#* }"
    {
        echo "# Written by tests/kafka/broker.sh: single-node KRaft test broker ($mode)."
        echo "process.roles=broker,controller"
        echo "node.id=1"
        echo "controller.quorum.voters=1@127.0.0.1:$cport"
        if [[ "$mode" == secure ]]; then
            secure_listener_config "$dir" "$port" "$cport"
        else
            echo "listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport"
            echo "advertised.listeners=PLAINTEXT://127.0.0.1:$port"
            echo "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
            echo "inter.broker.listener.name=PLAINTEXT"
        fi
    } > "$dir/server.properties"
    cat >> "$dir/server.properties" <<EOF
controller.listener.names=CONTROLLER
log.dirs=$dir/data
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=5
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=5
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# After a crash (kill, then start) the controller refuses the broker's new
# registration until the old session expires: 4 s instead of the default 9 s.
broker.session.timeout.ms=4000
broker.heartbeat.interval.ms=500
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=2
log.retention.check.interval.ms=300000
EOF
    for kv in "$@"; do
        echo "$kv" >> "$dir/server.properties"
    done
}

# ---- the secured broker (start-secure) --------------------------------------
# A test CA and the broker's certificate (EC P-256, PEM), valid for the
# loopback names; the broker's PEM keystore is its key and chain in one file.
make_tls() { # DIR
    local t="$1/tls"
    mkdir -p "$t"
    (
        umask 077
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
            -keyout "$t/ca.key" -out "$t/ca.pem" -subj "/CN=creditd test CA" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -keyout "$t/broker.key" -out "$t/broker.csr" -subj "/CN=localhost" 2>/dev/null
        printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "basicConstraints=CA:FALSE" \
            "keyUsage=critical,digitalSignature,keyEncipherment" \
            "extendedKeyUsage=serverAuth,clientAuth" > "$t/broker.ext"
        openssl x509 -req -in "$t/broker.csr" -CA "$t/ca.pem" -CAkey "$t/ca.key" -CAcreateserial \
            -days 30 -extfile "$t/broker.ext" -out "$t/broker.crt" 2>/dev/null
        cat "$t/broker.key" "$t/broker.crt" "$t/ca.pem" > "$t/broker.pem"
    ) || die "openssl could not make the test certificates"
    openssl verify -CAfile "$t/ca.pem" "$t/broker.crt" >/dev/null || die "the broker certificate does not verify"
    chmod 644 "$t/ca.pem"
}

random_password() { "$PY" -c 'import secrets; print(secrets.token_urlsafe(18))'; }

# librdkafka before 2.6.1 (Debian 12 has 2.0.2) cannot authenticate with
# SCRAM against a Kafka 4 broker: it repeats the client nonce in its final
# message, which Kafka 4 checks strictly (confluentinc/librdkafka#4895).  So
# the listener also offers PLAIN (over the same TLS), and librdkafka clients
# older than that use it (the system's kcat and python3-confluent-kafka);
# Kafka's Java tools, the broker itself, and creditd and the tools (built with
# librdkafka 2.12.1, tools/librdkafka.sh) use SCRAM.
rdkafka_mechanism() {
    "$PY" -c 'import confluent_kafka as c; v = c.libversion()[1]
print("SCRAM-SHA-512" if v >= 0x020601ff else "PLAIN")' 2>/dev/null || echo PLAIN
}

# The listener part of a secured broker's server.properties.  Clients (and
# the broker itself, as admin) use SASL_SSL: SCRAM-SHA-512 with the users
# created at format time or later with kafka-configs, or PLAIN with the
# users of DIR/users (the same names, so the same principals and ACLs).
# The controller listener is TLS with client certificates, whose only
# holder is the broker (User:CN=localhost).
secure_listener_config() { # DIR PORT CPORT
    local dir="$1" port="$2" cport="$3" pw name upw plain=""
    pw="$(awk '$1 == "admin" {print $2}' "$dir/users")"
    while read -r name upw; do
        plain+=" user_$name=\"$upw\""
    done < "$dir/users"
    cat <<EOF
listeners=SASL_SSL://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=SASL_SSL://127.0.0.1:$port
listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:SSL
inter.broker.listener.name=SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$pw";
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required$plain;
ssl.keystore.type=PEM
ssl.keystore.location=$dir/tls/broker.pem
ssl.truststore.type=PEM
ssl.truststore.location=$dir/tls/ca.pem
ssl.endpoint.identification.algorithm=https
listener.name.controller.ssl.client.auth=required
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin;User:CN=localhost
EOF
}

# The admin's client settings: librdkafka's (ready check, create-topic,
# kcat -F) and Java's (Kafka's tools, --command-config).
write_admin_conf() { # DIR PASSWORD
    local dir="$1" pw="$2"
    (
        umask 077
        cat > "$dir/admin.librdkafka" <<EOF
security.protocol=SASL_SSL
sasl.mechanisms=$(rdkafka_mechanism)
sasl.username=admin
sasl.password=$pw
ssl.ca.location=$dir/tls/ca.pem
EOF
        cat > "$dir/admin.properties" <<EOF
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$pw";
ssl.truststore.type=PEM
ssl.truststore.location=$dir/tls/ca.pem
EOF
    )
}

# Format DIR/data for a secured broker, with its SCRAM users (DIR/users).
# Not from the template: the credentials are records of the metadata log.
format_secure() { # DIR
    local dir="$1" name pw
    local -a scram=()
    while read -r name pw; do
        scram+=(--add-scram "SCRAM-SHA-512=[name=$name,password=$pw]")
    done < "$dir/users"
    rm -rf "$dir/data"
    "$(java_bin)" -Xmx256m -cp "$LIBS/*" kafka.tools.StorageTool format -t "$(cluster_id)" \
        -c "$dir/server.properties" "${scram[@]}" >"$dir/format.log" 2>&1 \
        || { cat "$dir/format.log" >&2; die "formatting the secured broker's storage failed"; }
    [[ -f "$dir/data/meta.properties" ]] || die "format wrote no meta.properties"
}

# A new secured broker in DIR: certificates, users, config, storage.
init_secure() { # DIR [--user NAME:PASSWORD]... [key=value ...]
    local dir="$1" u pw; shift
    local -a kvs=()
    (
        umask 077
        echo "admin $(random_password)" > "$dir/users"
    )
    while (($#)); do
        case "$1" in
            --user)
                (($# >= 2)) || usage
                u="${2%%:*}"; pw="${2#*:}"
                [[ "$2" == *:* && "$u" =~ ^[A-Za-z0-9._-]+$ && "$pw" =~ ^[A-Za-z0-9._~+/-]+$ && "$u" != admin ]] \
                    || die "--user NAME:PASSWORD: letters, digits and ._- in NAME (not admin), no ,]= or spaces in PASSWORD: $2"
                echo "$u $pw" >> "$dir/users"
                shift 2 ;;
            *) kvs+=("$1"); shift ;;
        esac
    done
    make_tls "$dir"
    rdkafka_mechanism > "$dir/mechanism"
    write_admin_conf "$dir" "$(awk '$1 == "admin" {print $2}' "$dir/users")"
    write_config "$dir" secure "${kvs[@]}"
    format_secure "$dir"
}

write_log4j() {
    cat > "$1/log4j2.properties" <<EOF
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = ${KAFKA_LOG_LEVEL:-INFO}
rootLogger.appenderRef.out.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = ${KAFKA_LOG_LEVEL:-INFO}
logger.okafka.name = org.apache.kafka
logger.okafka.level = ${KAFKA_LOG_LEVEL:-INFO}
EOF
}

jvm_opts() {
    # shellcheck disable=SC2206
    local heap=(${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}) extra=(${KAFKA_JVM_OPTS:-})
    printf '%s\n' "${heap[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$1/log4j2.properties" "${extra[@]}"
}

# The admin's librdkafka properties file of a secured broker, "" for a plain one.
admin_conf() { # DIR
    [[ -f "$1/admin.librdkafka" ]] && echo "$1/admin.librdkafka" || true
}

# Wait (bounded, polling) until the broker answers a metadata request.
wait_ready() {
    local dir="$1" pid="$2" bs
    bs="$(cat "$dir/bootstrap")"
    if "$PY" -c 'import confluent_kafka' >/dev/null 2>&1; then
        "$PY" - "$bs" "$pid" "$START_TIMEOUT" "$(admin_conf "$dir")" <<'EOF' && return 0
import sys, time
from confluent_kafka.admin import AdminClient
bs, pid, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
conf = dict(l.split("=", 1) for l in open(sys.argv[4]).read().splitlines() if "=" in l) \
    if sys.argv[4] else {}
deadline = time.monotonic() + timeout
def alive():
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False
import logging
quiet = logging.getLogger("broker.sh.quiet")
quiet.addHandler(logging.NullHandler())
quiet.propagate = False
admin = AdminClient(dict(conf, **{"bootstrap.servers": bs, "logger": quiet,
                     "reconnect.backoff.ms": 50, "reconnect.backoff.max.ms": 200}))
while time.monotonic() < deadline:
    if not alive():
        print("broker.sh: broker process exited during startup", file=sys.stderr)
        sys.exit(3)
    try:
        md = admin.list_topics(timeout=min(2.0, max(0.1, deadline - time.monotonic())))
        if md.brokers:
            sys.exit(0)
    except Exception:
        pass
    time.sleep(0.1)
print(f"broker.sh: broker did not answer within {timeout:.0f}s", file=sys.stderr)
sys.exit(4)
EOF
        return 1
    fi
    # Fallback: kcat
    local deadline=$((SECONDS + START_TIMEOUT)) conf
    conf="$(admin_conf "$dir")"
    while ((SECONDS < deadline)); do
        alive "$pid" || { log "broker process exited during startup"; return 1; }
        kcat -b "$bs" ${conf:+-F "$conf"} -L -m 2 >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    log "broker did not answer within ${START_TIMEOUT}s"
    return 1
}

# ---- subcommands -----------------------------------------------------------
cmd_start() { # DIR [key=value ...]; SECURE=1: start-secure's arguments
    (($# >= 1)) || usage
    local dir
    dir="$(abs_dir "$1")"; shift
    ensure_tools
    ensure_jars
    [[ "${SECURE:-0}" == 0 ]] || command -v openssl >/dev/null || die "start-secure needs openssl"
    local java pid
    java="$(java_bin)" || die "no java"
    if pid="$(running_pid "$dir")"; then
        wait_ready "$dir" "$pid" || { tail -n 50 "$dir/broker.log" >&2; exit 1; }
        cat "$dir/bootstrap"
        return 0
    fi
    if [[ ! -f "$dir/server.properties" ]]; then
        if [[ "${SECURE:-0}" == 1 ]]; then init_secure "$dir" "$@"; else write_config "$dir" plain "$@"; fi
    elif (($# > 0)); then
        log "$dir/server.properties exists; ignoring extra settings: $*"
    fi
    local port
    port="$(sed -n 's#^listeners=[A-Z_]*://127.0.0.1:\([0-9]*\),.*#\1#p' "$dir/server.properties")"
    [[ -n "$port" ]] || die "no client listener in $dir/server.properties"
    echo "127.0.0.1:$port" > "$dir/bootstrap"

    write_log4j "$dir"
    [[ -f "$dir/data/meta.properties" ]] || format_data "$dir"

    local -a opts
    mapfile -t opts < <(jvm_opts "$dir")
    local cds
    cds="$(cds_opts "$dir")"
    [[ -z "$cds" ]] || mapfile -t -O "${#opts[@]}" opts <<<"$cds"

    : >> "$dir/broker.log"
    echo "==== start $(date -u +%FT%TZ)" >> "$dir/broker.log"
    nohup "$java" "${opts[@]}" -cp "$LIBS/*" kafka.Kafka "$dir/server.properties" \
        </dev/null >>"$dir/broker.log" 2>&1 &
    pid=$!
    echo "$pid" > "$dir/broker.pid"
    if ! wait_ready "$dir" "$pid"; then
        echo "---- last lines of $dir/broker.log:" >&2
        tail -n 60 "$dir/broker.log" >&2
        cmd_stop "$dir" >/dev/null 2>&1 || true
        exit 1
    fi
    cat "$dir/bootstrap"
}

cmd_stop() {
    (($# == 1)) || usage
    local dir pid
    [[ -d "$1" ]] || return 0
    dir="$(cd "$1" && pwd)"
    if ! pid="$(running_pid "$dir")"; then
        rm -f "$dir/broker.pid"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + STOP_TIMEOUT))
    while alive "$pid" && ((SECONDS < deadline)); do
        sleep 0.1
    done
    local killed=0
    if alive "$pid"; then
        killed=1
        log "broker $pid did not stop within ${STOP_TIMEOUT}s; SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        deadline=$((SECONDS + 10))
        while alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
    fi
    alive "$pid" && die "broker $pid is still alive"
    rm -f "$dir/broker.pid"
    cds_after_stop "$dir" $((1 - killed))
}

cmd_kill() { # a crash: SIGKILL, no clean shutdown
    (($# == 1)) || usage
    local dir pid
    [[ -d "$1" ]] || return 0
    dir="$(cd "$1" && pwd)"
    if pid="$(running_pid "$dir")"; then
        kill -KILL "$pid" 2>/dev/null || true
        local deadline=$((SECONDS + 10))
        while alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
        alive "$pid" && die "broker $pid is still alive"
    fi
    rm -f "$dir/broker.pid"
    cds_after_stop "$dir" 0
}

cmd_restart() {
    (($# == 1)) || usage
    [[ -f "$1/server.properties" ]] || die "no broker in $1"
    cmd_stop "$1"
    cmd_start "$1"
}

cmd_create_topic() {
    (($# >= 3)) || usage
    local dir="$1" name="$2" parts="$3"; shift 3
    [[ -f "$dir/bootstrap" ]] || die "no broker in $dir"
    [[ "$parts" =~ ^[0-9]+$ ]] || die "PARTITIONS must be a number: $parts"
    "$PY" - "$(cat "$dir/bootstrap")" "$(admin_conf "$dir")" "$name" "$parts" "$@" <<'EOF'
import sys, time
from confluent_kafka.admin import AdminClient, NewTopic
bs, name, parts, kvs = sys.argv[1], sys.argv[3], int(sys.argv[4]), sys.argv[5:]
conf = dict(l.split("=", 1) for l in open(sys.argv[2]).read().splitlines() if "=" in l) \
    if sys.argv[2] else {}
config = {}
for kv in kvs:
    k, sep, v = kv.partition("=")
    if not sep:
        sys.exit(f"broker.sh: not key=value: {kv}")
    config[k] = v
admin = AdminClient(dict(conf, **{"bootstrap.servers": bs}))
fut = admin.create_topics([NewTopic(name, parts, 1, config=config)],
                          operation_timeout=30, request_timeout=60)[name]
try:
    fut.result(timeout=60)
except Exception as e:
    sys.exit(f"broker.sh: creating topic {name}: {e}")
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    t = admin.list_topics(topic=name, timeout=5).topics.get(name)
    if t is not None and t.error is None and len(t.partitions) == parts \
            and all(p.leader >= 0 for p in t.partitions.values()):
        sys.exit(0)
    time.sleep(0.05)
sys.exit(f"broker.sh: topic {name} has no leaders after 60s")
EOF
}

cmd_bootstrap() {
    (($# == 1)) || usage
    [[ -f "$1/bootstrap" ]] || die "no broker in $1"
    cat "$1/bootstrap"
}

cmd_status() {
    (($# == 1)) || usage
    local pid
    [[ -d "$1" ]] || { echo stopped; return 1; }
    if pid="$(running_pid "$(cd "$1" && pwd)")"; then echo "running $pid"; else echo stopped; return 1; fi
}

(($# >= 1)) || usage
cmd="$1"; shift
case "$cmd" in
    start) cmd_start "$@" ;;
    start-secure) SECURE=1 cmd_start "$@" ;;
    kafka-acls) admin_tool org.apache.kafka.tools.AclCommand "$@" ;;
    kafka-configs) admin_tool org.apache.kafka.tools.ConfigCommand "$@" ;;
    kafka-consumer-groups) admin_tool org.apache.kafka.tools.consumer.group.ConsumerGroupCommand "$@" ;;
    kafka-console-consumer) admin_tool org.apache.kafka.tools.consumer.ConsoleConsumer "$@" ;;
    stop) cmd_stop "$@" ;;
    restart) cmd_restart "$@" ;;
    kill) cmd_kill "$@" ;;
    create-topic) cmd_create_topic "$@" ;;
    bootstrap) cmd_bootstrap "$@" ;;
    status) cmd_status "$@" ;;
    fetch) ensure_tools; ensure_jars; ensure_admin_jars ;;
    -h|--help|help) usage ;;
    *) usage ;;
esac
