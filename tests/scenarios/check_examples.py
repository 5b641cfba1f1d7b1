#!/usr/bin/python3
"""Scenario checks of credit-replay on the worked examples (semantics §9).

usage: check_examples.py OUT_DIR
OUT_DIR holds ex_X.out (outputs of credit-replay) and ex_X.balances
(creditctl balances --json) for X in A..E.  Prints one line per check and a
closing 'N passed, N failed' line; exits 1 on any failure."""
import json
import sys

d = sys.argv[1]
passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print(f"FAIL {name} {detail}")


def outputs(x):
    with open(f"{d}/ex_{x}.out") as f:
        return [json.loads(line) for line in f]


def balances(x):
    with open(f"{d}/ex_{x}.balances") as f:
        return [json.loads(line) for line in f]


def ledger(out, entry=None):
    return [o["data"] for o in out if o["type"] == "credit.ledger"
            and (entry is None or o["data"]["entry"] == entry)]


def overages(out):
    return [o["data"] for o in out if o["type"] == "credit.overage"]


def org_line(x, org):
    lines = [b for b in balances(x) if b["org"] == org and "project" not in b]
    return lines[0] if lines else None


# A. fixed minimum
out = outputs("A")
draws = ledger(out, "minimal_draw")
check("A.jan_draw", [l["delta"] for l in draws] == ["-70.000000"], draws)
check("A.no_overage", overages(out) == [])
check("A.final", org_line("A", "o1")["value"] == "650.000000", org_line("A", "o1"))
closed = ledger(out, "month_closed")
check("A.feb_closed_no_draw", closed[-1]["month"] == "2026-02" and closed[-1]["draw"] == "0.000000")

# B. linear
out = outputs("B")
closed = {l["month"]: l for l in ledger(out, "month_closed")}
exp = {"2026-01": ("150.000000", "200.000000"), "2026-02": ("0.000000", "125.000000"),
       "2026-03": ("125.000000", "125.000000"), "2026-04": ("125.000000", "125.000000"),
       "2026-05": ("125.000000", "125.000000"), "2026-06": ("125.000000", "0.000000")}
for m, (draw, nxt) in exp.items():
    c = closed.get(m, {})
    check(f"B.close_{m}", (c.get("draw"), c.get("expected_next")) == (draw, nxt), c)
ov = overages(out)
check("B.expired_overage", [(o["amount"], o["reason"]) for o in ov] == [("10.000000", "credit_expired")], ov)
check("B.final", org_line("B", "o2")["value"] == "0.000000")

# C. projects
out = outputs("C")
ov = [(o["project"], o["amount"], o["reason"]) for o in overages(out)]
check("C.overages", ov == [("pA", "50.000000", "project_credit_exhausted"),
                           ("pC", "30.000000", "org_credit_exhausted"),
                           ("pA", "40.000000", "offering_not_eligible")], ov)
fb = [l for l in ledger(out, "compensation") if l["project"] == "pB" and l["account"] == "org"]
check("C.fallback_80", [l["delta"] for l in fb] == ["-80.000000"], fb)
bal = {(b["org"], b.get("project")): b["value"] for b in balances("C")}
check("C.final", bal == {("o3", None): "0.000000", ("o3", "pA"): "0.000000",
                         ("o3", "pB"): "0.000000"}, bal)

# D. grace
out = outputs("D")
draws = [l["delta"] for l in ledger(out, "minimal_draw")]
check("D.draws", draws == ["-80.000000", "-80.000000", "-100.000000"], draws)
exp = [l["delta"] for l in ledger(out, "expiry")]
check("D.expiry", exp == ["-740.000000"], exp)
check("D.final", org_line("D", "o4")["value"] == "0.000000")

# E. idempotency
out = outputs("E")
comp = [l["delta"] for l in ledger(out, "compensation")]
check("E.draws_once", comp == ["-100.000000"], comp)
rej = [o["data"]["reason"] for o in out if o["type"] == "credit.rejected"]
check("E.id_conflict", rej == ["id_conflict"], rej)
check("E.final", org_line("E", "o5")["value"] == "900.000000")

# Every output is a CloudEvent from creditd; ledger and overage ids follow §8.
for x in "ABCDE":
    for o in outputs(x):
        ok = o["specversion"] == "1.0" and o["source"] == "creditd"
        if o["type"] == "credit.ledger":
            ok = ok and o["id"] == f"ledger/{o['data']['org']}/{o['data']['seq']}"
        if o["type"] == "credit.overage":
            ok = ok and o["id"] == f"overage/{o['data']['org']}/{o['data']['seq']}"
        check(f"{x}.envelope", ok, o)

print(f"examples: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
