#!/usr/bin/python3
"""group_probe.py -- Kafka-side helpers of tests/kafka/it_group.sh and
tools/bench-scale.sh (creditd in group mode).  Only python3-confluent-kafka
(Debian's; never joins a group: assign/committed only).

  group_probe.py watch BOOTSTRAP TOPIC GROUP OUT [--interval S] [--history FILE]
      Until killed (or its parent exits): every S seconds (default 0.25)
      the group's committed offset and the high watermark of every
      partition of TOPIC, written atomically (rename) to OUT as one line
        "UNIX_TIME COMMITTED_SUM END_SUM c0:e0 c1:e1 ..."
      (a partition without a committed offset counts 0: the input topic
      starts at offset 0 and is never truncated in these tests).  With
      --history, each line whose committed offsets changed is also appended
      to FILE (the fail-over bench reads when a partition moved again).
  group_probe.py at-end BOOTSTRAP TOPIC GROUP
      Exit 0 when the group's committed offset is the high watermark on
      every partition of TOPIC; else print the partitions behind, exit 1.
  group_probe.py config BOOTSTRAP TOPIC KEY
      Print the topic's value of config KEY (e.g. cleanup.policy).
  group_probe.py partitions BOOTSTRAP TOPIC
      Print the topic's partition count.
  group_probe.py key-partitions BOOTSTRAP TOPIC
      Every distinct "KEY PARTITION" of the messages of TOPIC (read up to
      the ends seen at the start; messages without a key are skipped): the
      partition each organisation's events went to.  Exit 1 when a key
      appears on two partitions.
  group_probe.py rate BOOTSTRAP TOPIC FILE RATE
      Produce the lines of FILE at RATE lines/s (keyed by data.org,
      murmur2_random like credit-produce, idempotent, acks=all), in order;
      print "produced N" at the end.  Exit 2 on a delivery error.

Every wait is bounded (librdkafka timeouts of at most 30 s per call).
"""
import json
import logging
import os
import sys
import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource

TIMEOUT = 30.0


def quiet():
    log = logging.getLogger("group_probe.quiet")
    log.addHandler(logging.NullHandler())
    log.propagate = False
    return log


def consumer(bs, group):
    return Consumer({"bootstrap.servers": bs, "group.id": group, "enable.auto.commit": False,
                     "enable.partition.eof": True, "auto.offset.reset": "earliest",
                     "isolation.level": "read_committed", "logger": quiet()})


def npartitions(c, topic):
    t = c.list_topics(topic=topic, timeout=TIMEOUT).topics.get(topic)
    if t is None or t.error is not None or not t.partitions:
        raise RuntimeError("topic %s: %s" % (topic, t.error if t is not None else "missing"))
    return len(t.partitions)


def offsets(c, topic, n):
    """[(committed, end)] per partition."""
    tps = [TopicPartition(topic, p) for p in range(n)]
    com = c.committed(tps, timeout=TIMEOUT)
    out = []
    for p in range(n):
        _, hi = c.get_watermark_offsets(tps[p], timeout=TIMEOUT)
        off = com[p].offset
        out.append((off if off >= 0 else 0, hi))
    return out


def cmd_watch(args):
    bs, topic, group, out = args[:4]
    interval, history = 0.25, None
    rest = args[4:]
    while rest:
        if rest[0] == "--interval":
            interval = float(rest[1])
        elif rest[0] == "--history":
            history = rest[1]
        else:
            sys.exit("group_probe.py watch: unknown option %s" % rest[0])
        rest = rest[2:]
    parent = os.getppid()
    c = consumer(bs, group)
    n = npartitions(c, topic)
    last = None
    while os.getppid() == parent:
        try:
            offs = offsets(c, topic, n)
        except Exception as e:  # a transient broker error: try again next round
            print("group_probe.py watch: %s" % e, file=sys.stderr)
            time.sleep(interval)
            continue
        now = time.time()
        line = "%.3f %d %d %s\n" % (now, sum(o[0] for o in offs), sum(o[1] for o in offs),
                                    " ".join("%d:%d" % o for o in offs))
        with open(out + ".tmp", "w") as f:
            f.write(line)
        os.replace(out + ".tmp", out)
        com = [o[0] for o in offs]
        if history and com != last:
            with open(history, "a") as f:
                f.write(line)
        last = com
        time.sleep(interval)
    c.close()
    return 0


def cmd_at_end(args):
    bs, topic, group = args
    c = consumer(bs, group)
    rc = 0
    for p, (com, hi) in enumerate(offsets(c, topic, npartitions(c, topic))):
        if com != hi:
            print("%s[%d]: committed %d, end %d" % (topic, p, com, hi))
            rc = 1
    c.close()
    return rc


def cmd_config(args):
    bs, topic, key = args
    a = AdminClient({"bootstrap.servers": bs})
    res = ConfigResource("topic", topic)
    cfg = a.describe_configs([res], request_timeout=TIMEOUT)[res].result(timeout=TIMEOUT)
    if key not in cfg:
        print("group_probe.py: topic %s has no config %s" % (topic, key), file=sys.stderr)
        return 1
    print(cfg[key].value)
    return 0


def cmd_partitions(args):
    bs, topic = args
    c = consumer(bs, "group-probe-%d" % os.getpid())
    print(npartitions(c, topic))
    c.close()
    return 0


def cmd_key_partitions(args):
    bs, topic = args
    c = consumer(bs, "group-probe-%d" % os.getpid())
    n = npartitions(c, topic)
    ends = {}
    for p in range(n):
        lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=TIMEOUT)
        if hi > lo:
            ends[p] = hi
    c.assign([TopicPartition(topic, p, 0) for p in ends])
    seen, rc = {}, 0
    deadline = time.monotonic() + 300
    while ends and time.monotonic() < deadline:
        msgs = c.consume(10000, 1.0)
        for m in msgs:
            if m.error():
                if m.error().code() != KafkaError._PARTITION_EOF:
                    print("group_probe.py: %s" % m.error(), file=sys.stderr)
                    return 2
                continue
            p, k = m.partition(), m.key()
            if k is not None:
                k = k.decode("utf-8", "replace")
                if seen.setdefault(k, p) != p:
                    print("group_probe.py: key %s on partitions %d and %d" % (k, seen[k], p),
                          file=sys.stderr)
                    rc = 1
            if p in ends and m.offset() >= ends[p] - 1:
                del ends[p]
    c.close()
    if ends:
        print("group_probe.py: %s: partitions %s not read to the end within 300 s" %
              (topic, sorted(ends)), file=sys.stderr)
        return 2
    for k in sorted(seen):
        print(k, seen[k])
    return rc


def cmd_rate(args):
    bs, topic, path, rate = args[0], args[1], args[2], float(args[3])
    errors = []

    def on_delivery(err, _msg):
        if err is not None:
            errors.append(str(err))

    p = Producer({"bootstrap.servers": bs, "enable.idempotence": True, "acks": "all",
                  "partitioner": "murmur2_random", "compression.type": "none",
                  "logger": quiet()})
    t0, n = time.monotonic(), 0
    with open(path, "rb") as f:
        for line in f:
            line = line.rstrip(b"\n")
            if not line:
                continue
            try:
                key = json.loads(line)["data"]["org"].encode()
            except (ValueError, KeyError, TypeError, AttributeError):
                key = None
            due = t0 + n / rate
            while True:
                wait = due - time.monotonic()
                if wait <= 0:
                    break
                p.poll(min(wait, 0.05))
            while True:
                try:
                    p.produce(topic, line, key=key, on_delivery=on_delivery)
                    break
                except BufferError:
                    p.poll(0.1)
            n += 1
            if errors:
                break
    left = p.flush(60)
    if errors or left:
        print("group_probe.py rate: %s; %d not delivered" % (errors[:3], left), file=sys.stderr)
        return 2
    print("produced", n)
    return 0


CMDS = {"watch": cmd_watch, "at-end": cmd_at_end, "config": cmd_config,
        "partitions": cmd_partitions, "key-partitions": cmd_key_partitions, "rate": cmd_rate}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in CMDS:
        print(__doc__, file=sys.stderr)
        sys.exit(1)
    try:
        sys.exit(CMDS[sys.argv[1]](sys.argv[2:]))
    except (ValueError, IndexError) as e:
        print("group_probe.py %s: bad arguments: %s" % (sys.argv[1], e), file=sys.stderr)
        sys.exit(1)
    except Exception as e:  # Kafka errors: name them, exit 2
        print("group_probe.py %s: %s" % (sys.argv[1], e), file=sys.stderr)
        sys.exit(2)
