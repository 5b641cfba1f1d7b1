#!/usr/bin/python3
"""Parse creditd's GET /metrics text with the Prometheus client's own parser
(Debian's python3-prometheus-client) and check what any scrape must satisfy;
print a JSON summary for the tests to compare.

    prom_check.py FILE        (FILE "-" = stdin)

Checks (exit 1 naming the first failures):
  - it parses; every sample belongs to a family with a TYPE line (the parser
    turns a sample without one into a family of type "unknown");
  - the families creditd always exports are there, with their types;
  - counters are >= 0; every histogram's buckets are cumulative, end with
    le="+Inf", and +Inf == _count;
  - creditd_events_total has type and outcome labels, reason exactly on
    rejected samples.
Summary: {"events": {"applied": N, "duplicate": N, "rejected": N},
"events_by": {"type/outcome/reason": N}, "outputs": {kind: N},
"outputs_by_topic": {topic: N}, "delivered": {kind: N}, "alerts": {kind: N},
"lag": {partition: N}, "store_events": {outcome: N}, "gauges": {name: value}
(unlabelled gauges), "histograms": {name: count}}.
"""
import json
import math
import sys

from prometheus_client.parser import text_string_to_metric_families

ALWAYS = {  # family name as the parser reports it (counters without _total) -> type
    "creditd_up": "gauge", "creditd_build_info": "gauge", "creditd_ready": "gauge",
    "creditd_store_open": "gauge", "creditd_input_paused": "gauge",
    "creditd_events": "counter", "creditd_outputs": "counter",
    "creditd_outputs_delivered": "counter", "creditd_alerts": "counter",
    "creditd_outbox_entries": "gauge", "creditd_outbox_max_pending": "gauge",
    "creditd_partitions_assigned": "gauge", "creditd_consumer_lag": "gauge",
    "creditd_last_commit_timestamp_seconds": "gauge",
    "creditd_batch_commit_seconds": "histogram", "creditd_event_to_delivery_seconds": "histogram",
    "creditd_event_to_delivery_untracked": "counter",
}


def check_histogram(fam, errors):
    buckets = [s for s in fam.samples if s.name == fam.name + "_bucket"]
    count = [s.value for s in fam.samples if s.name == fam.name + "_count"]
    sums = [s.value for s in fam.samples if s.name == fam.name + "_sum"]
    if not buckets or len(count) != 1 or len(sums) != 1:
        errors.append(f"{fam.name}: needs buckets, one _sum and one _count")
        return 0
    les = [float(s.labels["le"]) for s in buckets]
    vals = [s.value for s in buckets]
    if les != sorted(les) or les[-1] != math.inf:
        errors.append(f"{fam.name}: le not increasing to +Inf: {les}")
    if any(b < a for a, b in zip(vals, vals[1:])):
        errors.append(f"{fam.name}: buckets not cumulative: {vals}")
    if vals[-1] != count[0]:
        errors.append(f"{fam.name}: +Inf {vals[-1]} != _count {count[0]}")
    return count[0]


def add(d, k, v):
    d[k] = d.get(k, 0) + v


def summarise(text):
    errors, fams = [], {}
    for fam in text_string_to_metric_families(text):
        if fam.type in ("untyped", "unknown"):
            errors.append(f"sample without TYPE: {fam.samples}")
        if fam.name in fams:
            errors.append(f"family {fam.name} twice")
        fams[fam.name] = fam
    for name, typ in ALWAYS.items():
        if name not in fams:
            errors.append(f"missing family {name}")
        elif fams[name].type != typ:
            errors.append(f"{name}: type {fams[name].type}, want {typ}")
    out = {"events": {"applied": 0, "duplicate": 0, "rejected": 0}, "events_by": {},
           "outputs": {}, "outputs_by_topic": {}, "delivered": {}, "alerts": {}, "lag": {},
           "gauges": {}, "histograms": {}, "store_events": {}}
    for fam in fams.values():
        if fam.type == "counter":
            for s in fam.samples:
                if s.name.endswith("_total") and s.value < 0:
                    errors.append(f"negative counter {s}")
        if fam.type == "histogram":
            out["histograms"][fam.name] = check_histogram(fam, errors)
        if fam.type == "gauge" and len(fam.samples) == 1 and not fam.samples[0].labels:
            out["gauges"][fam.name] = fam.samples[0].value
    for s in fams.get("creditd_events", None).samples if "creditd_events" in fams else []:
        lab = s.labels
        if lab.get("outcome") not in out["events"] or "type" not in lab or \
                ("reason" in lab) != (lab.get("outcome") == "rejected"):
            errors.append(f"bad events_total labels: {lab}")
            continue
        add(out["events"], lab["outcome"], int(s.value))
        add(out["events_by"], f"{lab['type']}/{lab['outcome']}/{lab.get('reason', '')}", int(s.value))
    for fam, key in (("creditd_outputs", "outputs"), ("creditd_outputs_delivered", "delivered")):
        for s in fams[fam].samples if fam in fams else []:
            add(out[key], s.labels["kind"], int(s.value))
            if key == "outputs":
                add(out["outputs_by_topic"], s.labels["topic"], int(s.value))
    for s in fams["creditd_alerts"].samples if "creditd_alerts" in fams else []:
        add(out["alerts"], s.labels["kind"], int(s.value))
    for s in fams["creditd_store_events"].samples if "creditd_store_events" in fams else []:
        out["store_events"][s.labels["outcome"]] = int(s.value)
    for s in fams["creditd_consumer_lag"].samples if "creditd_consumer_lag" in fams else []:
        out["lag"][s.labels["partition"]] = int(s.value)
    return out, errors


def main():
    text = sys.stdin.read() if sys.argv[1] == "-" else open(sys.argv[1], encoding="utf-8").read()
    try:
        out, errors = summarise(text)
    except Exception as e:  # the parser's own complaint
        print(f"prom_check: does not parse: {e!r}", file=sys.stderr)
        return 1
    for e in errors[:10]:
        print(f"prom_check: {e}", file=sys.stderr)
    print(json.dumps(out, sort_keys=True))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
