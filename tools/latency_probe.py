#!/usr/bin/python3
"""latency_probe.py -- helpers of tools/bench-kafka.sh (`make bench-kafka`).

  latency_probe.py offsets BOOTSTRAP TOPIC...
      Print "TOPIC MESSAGES" per topic: the sum over its partitions of
      high watermark - low watermark (every message still on the topic).

  latency_probe.py latency BOOTSTRAP [--input T] [--overage T] [--rate N]
                   [--seconds S] [--orgs K] [--wait S] [--time ISO]
      End-to-end latency of the running creditd, from the produce of a usage
      event to the receipt of its credit.overage:
      1. assign a consumer to every partition of the overage topic at its
         current end (explicit offsets, so nothing produced later is missed);
      2. produce, for K fresh organisations, an org_credit.set of value 1 and
         a usage of amount 1 that uses it up (no overage: covered in full);
      3. produce usage events of amount 1 for those organisations (round
         robin) at a fixed RATE for SECONDS: each one is overage
         org_credit_exhausted.  The produce time of each event id is taken
         just before producer.produce();
      4. a consumer thread records the receive time of each credit.overage by
         data.usage_id; wait (bounded by --wait) until every one arrived.
      Prints one line:
        latency: sent=N received=M rate=.. seconds=.. orgs=K p50_ms=.. p90_ms=..
                 p99_ms=.. max_ms=.. min_ms=.. mean_ms=.. reasons=REASON:COUNT,..
      Times are time.monotonic() in this one process (the produce and the
      receive clocks are the same clock).  Percentiles are nearest-rank.
      Exit 0 when every overage arrived, 3 when some did not, 2 on errors.

The producer is configured like build/credit-produce (idempotent, acks=all,
murmur2_random partitioner on key data.org, no compression) with
librdkafka's default linger.ms (5 ms), so the key lands on the partition the
Java client would choose.  Needs confluent_kafka (Debian python3-confluent-kafka).
"""
import argparse
import json
import logging
import os
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition


def quiet_logger():
    log = logging.getLogger("latency_probe.quiet")
    log.addHandler(logging.NullHandler())
    log.propagate = False
    return log


def consumer_for(bootstrap):
    return Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "bench-kafka-probe-%d" % os.getpid(),  # never joined: assign() only
        "enable.auto.commit": False,
        "enable.partition.eof": False,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": 100,
        "logger": quiet_logger(),
    })


def partitions_of(c, topic, timeout=30.0):
    md = c.list_topics(topic=topic, timeout=timeout)
    t = md.topics.get(topic)
    if t is None or t.error is not None or not t.partitions:
        raise RuntimeError("topic %s: %s" % (topic, t.error if t is not None else "missing"))
    return sorted(t.partitions)


def cmd_offsets(a):
    c = consumer_for(a.bootstrap)
    try:
        for topic in a.topics:
            n = 0
            for p in partitions_of(c, topic):
                lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=30.0)
                n += hi - lo
            print(topic, n)
    finally:
        c.close()
    return 0


def rfc3339(base, seconds):
    return (base + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def cmd_latency(a):
    run = "%d-%d" % (int(time.time()), os.getpid())
    orgs = ["bench-lat-%s-%d" % (run, k) for k in range(a.orgs)]
    base = datetime.strptime(a.time, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)

    # 1. consumer at the end of every overage partition
    c = consumer_for(a.bootstrap)
    tps = []
    for p in partitions_of(c, a.overage):
        _, hi = c.get_watermark_offsets(TopicPartition(a.overage, p), timeout=30.0)
        tps.append(TopicPartition(a.overage, p, hi))
    c.assign(tps)

    sent = {}        # usage id -> monotonic produce time
    received = {}    # usage id -> monotonic receive time
    reasons = {}     # overage reason -> count (ours only)
    lock = threading.Lock()
    stop = threading.Event()
    errors = []

    def consume():
        while not stop.is_set():
            m = c.poll(0.05)
            if m is None:
                continue
            t = time.monotonic()
            if m.error():
                if m.error().code() != KafkaError._PARTITION_EOF:
                    errors.append(str(m.error()))
                continue
            try:
                data = json.loads(m.value())["data"]
                uid, reason = data["usage_id"], data.get("reason")
            except (ValueError, KeyError, TypeError):
                continue
            with lock:
                if uid in sent and uid not in received:
                    received[uid] = t
                    reasons[reason] = reasons.get(reason, 0) + 1

    th = threading.Thread(target=consume, daemon=True)
    th.start()

    delivery_errors = []

    def on_delivery(err, _msg):
        if err is not None:
            delivery_errors.append(str(err))

    prod = Producer({
        "bootstrap.servers": a.bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": "none",
        "partitioner": "murmur2_random",
        "logger": quiet_logger(),
    })

    def send(org, ev):
        prod.produce(a.input, key=org, value=json.dumps(ev, separators=(",", ":")),
                     on_delivery=on_delivery)

    # 2. setup: credit 1, used up by a usage of 1 (covered in full, no overage)
    for k, org in enumerate(orgs):
        send(org, {"specversion": "1.0", "id": "lat-set-%s-%d" % (run, k),
                   "source": "bench/latency", "type": "org_credit.set",
                   "time": rfc3339(base, 0),
                   "data": {"org": org, "value": "1", "consumption_logic": "fixed"}})
        send(org, {"specversion": "1.0", "id": "lat-use-%s-%d" % (run, k),
                   "source": "bench/latency", "type": "usage", "time": rfc3339(base, 1),
                   "data": {"org": org, "project": "p1", "resource": "r1", "offering": "cloud",
                            "component": "cpu", "plan": "plan-small", "amount": "1"}})
    if prod.flush(30.0) or delivery_errors:
        print("latency_probe: setup not delivered: %s" % (delivery_errors or "timeout"),
              file=sys.stderr)
        return 2
    time.sleep(a.settle)  # let creditd apply the setup before the timed stream

    # 3. the timed stream at a fixed rate
    n = int(a.rate * a.seconds)
    t0 = time.monotonic()
    for i in range(n):
        due = t0 + i / a.rate
        while True:
            d = due - time.monotonic()
            if d <= 0:
                break
            prod.poll(min(d, 0.01))
        org = orgs[i % len(orgs)]
        uid = "lat-%s-%d" % (run, i)
        ev = {"specversion": "1.0", "id": uid, "source": "bench/latency", "type": "usage",
              "time": rfc3339(base, 2 + i),
              "data": {"org": org, "project": "p1", "resource": "r1", "offering": "cloud",
                       "component": "cpu", "plan": "plan-small", "amount": "1"}}
        t = time.monotonic()
        with lock:
            sent[uid] = t
        send(org, ev)
        prod.poll(0)
    elapsed = time.monotonic() - t0
    if prod.flush(30.0) or delivery_errors:
        print("latency_probe: usage not delivered: %s" % (delivery_errors or "timeout"),
              file=sys.stderr)
        stop.set()
        return 2

    # 4. wait (bounded) for every overage
    deadline = time.monotonic() + a.wait
    while time.monotonic() < deadline:
        with lock:
            if all(u in received for u in sent):
                break
        time.sleep(0.1)
    stop.set()
    th.join(5.0)
    c.close()

    with lock:
        lat = sorted((received[u] - t) * 1000.0 for u, t in sent.items() if u in received)
    if errors:
        print("latency_probe: consumer errors: %s" % "; ".join(errors[:5]), file=sys.stderr)

    def pct(q):
        if not lat:
            return float("nan")
        k = max(1, -(-len(lat) * q // 100))  # nearest rank: ceil(q/100 * n)
        return lat[int(k) - 1]

    mean = sum(lat) / len(lat) if lat else float("nan")
    print("latency: sent=%d received=%d rate=%.1f seconds=%.1f orgs=%d "
          "p50_ms=%.1f p90_ms=%.1f p99_ms=%.1f max_ms=%.1f min_ms=%.1f mean_ms=%.1f reasons=%s"
          % (n, len(lat), n / elapsed if elapsed > 0 else 0, elapsed, len(orgs),
             pct(50), pct(90), pct(99), lat[-1] if lat else float("nan"),
             lat[0] if lat else float("nan"), mean,
             ",".join("%s:%d" % kv for kv in sorted(reasons.items(), key=str)) or "-"))
    return 0 if len(lat) == n else 3


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    o = sub.add_parser("offsets")
    o.add_argument("bootstrap")
    o.add_argument("topics", nargs="+")
    o.set_defaults(fn=cmd_offsets)
    la = sub.add_parser("latency")
    la.add_argument("bootstrap")
    la.add_argument("--input", default="credit.events")
    la.add_argument("--overage", default="credit.overage")
    la.add_argument("--rate", type=float, default=200.0)
    la.add_argument("--seconds", type=float, default=30.0)
    la.add_argument("--orgs", type=int, default=8)
    la.add_argument("--wait", type=float, default=60.0)
    la.add_argument("--settle", type=float, default=2.0)
    la.add_argument("--time", default="2026-04-15T00:00:00Z",
                    help="event time of the setup; usage i is at TIME + 2 + i seconds")
    la.set_defaults(fn=cmd_latency)
    a = ap.parse_args()
    if getattr(a, "rate", 1) <= 0 or getattr(a, "seconds", 1) <= 0 or getattr(a, "orgs", 1) <= 0:
        ap.error("--rate, --seconds and --orgs must be positive")
    try:
        return a.fn(a)
    except Exception as e:  # noqa: BLE001 -- report any Kafka/client error as exit 2
        print("latency_probe: %s" % e, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
