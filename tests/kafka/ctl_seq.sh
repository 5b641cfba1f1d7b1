# Every creditctl staff and owner command end to end with --wait against a
# running creditd, shared by tests/kafka/it_ctl.sh (a real Apache Kafka
# broker) and tests/scenarios/ctl_embedded.sh (creditd's embedded broker).
# Sourced, never run (not named it_* so that run.sh does not run it):
#
#   . tests/kafka/ctl_seq.sh
#   CS_ARGS=(-b "$BS" --db "$T/store") CS_STAFF=staff/creditctl CS_OWNER=owners/creditctl
#   ctl_sequence ORG OTHER
#
# The caller provides ok, bad, check (check WHAT CMD...: ok when CMD
# succeeds) and sets B (build directory), T (a scratch directory), BS (the
# bootstrap, for credit-produce and kcat), STORE (creditd's store), CS_ARGS
# (creditctl's common options: Kafka, --db STORE), CS_STAFF and CS_OWNER (the
# sources creditctl sends with), CS_WAIT (seconds for --wait, default 60).
# ORG and OTHER must have no events before.  Needs jq and kcat.
#
# Each command runs with --wait; the test checks its exit status, the event
# id, the outcome line, the ledger entries printed (entry, account, project,
# delta, balance; every one naming the event) and the balances read back
# from the store (creditctl balances --json, show --json).  The store is read
# right after --wait returns: creditd commits a batch before it relays the
# batch's outputs, so no wait is needed there.
#
#   grant (first: no if_value), adjust +25.5 and -5.5, grant with if_value
#   from --db, a stale grant (value_changed, the current balance), grant
#   --force, allocate, an owner set over the organisation's credit
#   (allocation_exceeds_org_credit; allocate takes no --if-value: the
#   semantics give if_value to org_credit.set only), allocate, deallocate,
#   terminate (spent_on_termination), a usage through credit-produce (draws
#   120, overage 10), void of it (refund, credit.overage.void, recovered),
#   void of a usage that was overage only (its outcome is the overage void),
#   revoke, and revoke again (no_org_credit).

CS_UUID='^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$'

# cs_wait_for SECONDS CMD...: poll CMD every 0.2 s until it succeeds (bounded).
cs_wait_for() {
    local deadline=$((SECONDS + $1)); shift
    until "$@"; do ((SECONDS < deadline)) || return 1; sleep 0.2; done
}

# cs_run NAME ARGS...: creditctl CS_ARGS ARGS --wait; stdout in CS_OUT, the
# exit status in CS_RC, the event id (first line) in CS_ID.
cs_run() {
    local name=$1; shift
    CS_OUT=$T/cs.$name.out CS_ERR=$T/cs.$name.err
    CS_RC=0
    timeout $((${CS_WAIT:-60} + 60)) "$B/creditctl" "${CS_ARGS[@]}" "$@" --wait "${CS_WAIT:-60}" \
        >"$CS_OUT" 2>"$CS_ERR" || CS_RC=$?
    CS_ID=$(head -n 1 "$CS_OUT")
}

# The ledger entries printed after "applied": "entry account project delta
# balance" joined by ";" (a month_closed left out: a month may end during the
# test).
cs_entries() {
    tail -n +3 "$CS_OUT" | jq -r 'select(.type == "credit.ledger" and .data.entry != "month_closed")
        | [.data.entry, .data.account, (.data.project // "-"), .data.delta, .data.balance]
        | join(" ")' | paste -sd';'
}

# Every output printed names the event (its id and source) and its org.
cs_about() { # SOURCE ORG
    tail -n +3 "$CS_OUT" | jq -e -s --arg id "$CS_ID" --arg s "$1" --arg o "$2" \
        'length > 0 and all(.data.event_id == $id and .data.event_source == $s and .subject == $o)' >/dev/null
}

# cs_applied WHAT SOURCE ORG ENTRIES: exit 0, the id, "applied", the entries.
cs_applied() {
    check "$1: exit 0 (got $CS_RC $(head -c 300 "$CS_ERR"))" test "$CS_RC" = 0
    check "$1: prints the event id first ($CS_ID)" grep -Eq "$CS_UUID" <<<"$CS_ID"
    check "$1: then applied" test "$(sed -n 2p "$CS_OUT")" = applied
    check "$1: ledger entries [$(cs_entries)]" test "$(cs_entries)" = "$4"
    check "$1: every entry names the event and $2" cs_about "$2" "$3"
}

# cs_rejected WHAT REASON: exit 3, the id, "rejected REASON: MESSAGE".
cs_rejected() {
    check "$1: exit 3 (got $CS_RC)" test "$CS_RC" = 3
    check "$1: prints the event id first" grep -Eq "$CS_UUID" <<<"$CS_ID"
    check "$1: rejected $2 [$(sed -n 2p "$CS_OUT")]" grep -Eq "^rejected $2: .+" <(sed -n 2p "$CS_OUT")
}

# The organisation's state from balances --json: "VALUE FREE |" then
# " PROJECT:VALUE" per project credit (" |" alone without credit).
cs_state() { # ORG
    "$B/creditctl" --db "$STORE" balances --json | jq -rs --arg o "$1" '
        [.[] | select(.org == $o)]
        | (map(select(has("project") | not) | .value + " " + .free) | join(",")) + " |"
          + (map(select(has("project")) | " " + .project + ":" + .value) | join(""))'
}
cs_state_is() { [[ "$(cs_state "$1")" == "$2" ]]; }
# A value of show ORG --json.
cs_show() { "$B/creditctl" --db "$STORE" show "$1" --json | jq -c "$2"; }

# A message of a topic, by a jq condition on it (empty when none).
cs_topic() { # TOPIC JQ-CONDITION
    timeout 30 kcat -C -q -b "$BS" -t "$1" -e -o beginning -f '%s\n' 2>/dev/null |
        jq -cR "fromjson? | select($2)"
}
cs_topic_has() { [[ -n "$(cs_topic "$1" "$2")" ]]; }
cs_event() { cs_topic "${CS_INPUT:-credit.events}" ".id == \"$1\""; }

# A usage through credit-produce, keyed by its org.
cs_usage() { # ORG ID TIME AMOUNT
    printf '{"specversion":"1.0","id":"%s","source":"mk/usage","type":"usage","time":"%s","data":{"org":"%s","project":"px","resource":"r-1","offering":"hpc","component":"cpu","amount":"%s"}}\n' \
        "$2" "$3" "$1" "$4" | timeout 60 "$B/credit-produce" -b "$BS" -t "${CS_INPUT:-credit.events}" - 2>>"$T/cs.produce.err"
}

ctl_sequence() { # ORG OTHER
    local o=$1 o2=$2 stale ut ov vid
    # ---- staff: grant, adjust, if_value, a lost update, --force ----
    cs_run grant1 grant "$o" --value 100
    cs_applied "grant $o 100" "$CS_STAFF" "$o" "staff_grant org - 100.000000 100.000000;terms org - 0.000000 100.000000"
    check "grant $o: no credit yet, so no if_value sent" test "$(cs_event "$CS_ID" | jq -c '.data | has("if_value")')" = false
    check "grant $o: balances 100, free 100" cs_state_is "$o" "100.000000 100.000000 |"
    cs_run adjust1 adjust "$o" --delta 25.5
    cs_applied "adjust $o +25.5" "$CS_STAFF" "$o" "staff_grant org - 25.500000 125.500000"
    check "adjust +25.5: balances 125.5" cs_state_is "$o" "125.500000 125.500000 |"
    cs_run adjust2 adjust "$o" --delta -5.5
    cs_applied "adjust $o -5.5" "$CS_STAFF" "$o" "staff_grant org - -5.500000 120.000000"
    check "adjust -5.5: balances 120" cs_state_is "$o" "120.000000 120.000000 |"
    # A grant built now (if_value 120 from --db) and sent after the next one: a lost update.
    timeout 60 "$B/creditctl" "${CS_ARGS[@]}" grant "$o" --value 999 --dry-run >"$T/cs.stale.json"
    stale=$(jq -r .data.if_value "$T/cs.stale.json")
    check "stale grant built with if_value 120 from --db" test "$stale" = 120.000000
    cs_run grant2 grant "$o" --value 200
    cs_applied "grant $o 200 (if_value from --db)" "$CS_STAFF" "$o" "staff_grant org - 80.000000 200.000000;terms org - 0.000000 200.000000"
    check "grant 200: sent if_value 120" test "$(cs_event "$CS_ID" | jq -r .data.if_value)" = 120.000000
    check "grant 200: balances 200" cs_state_is "$o" "200.000000 200.000000 |"
    cs_run stale grant "$o" --value 999 --if-value "$stale" --id "$(jq -r .id "$T/cs.stale.json")"
    cs_rejected "stale grant (staff set)" value_changed
    check "stale grant: names data.if_value" grep -q '^rejected value_changed: data.if_value' "$CS_OUT"
    check "stale grant: shows the current balance 200" test "$(sed -n 3p "$CS_OUT")" = "current balance: 200.000000"
    check "stale grant: nothing else printed" test "$(wc -l < "$CS_OUT")" = 3
    check "stale grant: balances still 200" cs_state_is "$o" "200.000000 200.000000 |"
    cs_run force grant "$o" --value 150 --force
    cs_applied "grant $o 150 --force" "$CS_STAFF" "$o" "staff_grant org - -50.000000 150.000000;terms org - 0.000000 150.000000"
    check "grant --force: no if_value sent" test "$(cs_event "$CS_ID" | jq -c '.data | has("if_value")')" = false
    check "grant --force: balances 150" cs_state_is "$o" "150.000000 150.000000 |"

    # ---- owners: allocate, a conflicting set, deallocate, terminate ----
    cs_run alloc1 allocate "$o" p1 --value 40 --use-org-credit true
    cs_applied "allocate $o p1 40" "$CS_OWNER" "$o" "allocation project p1 40.000000 40.000000;terms project p1 0.000000 40.000000"
    check "allocate p1: free 110, p1 40" cs_state_is "$o" "150.000000 110.000000 | p1:40.000000"
    cs_run over allocate "$o" p2 --value 1000
    cs_rejected "allocate p2 1000 (owner set over the credit)" allocation_exceeds_org_credit
    check "allocate over the credit: nothing else printed" test "$(wc -l < "$CS_OUT")" = 2
    check "allocate over the credit: balances unchanged" cs_state_is "$o" "150.000000 110.000000 | p1:40.000000"
    timeout 60 "$B/creditctl" "${CS_ARGS[@]}" allocate "$o" p2 --value 10 --if-value 150 --wait 5 \
        >"$T/cs.ifv.out" 2>"$T/cs.ifv.err"; local rc=$?
    check "allocate --if-value: exit 1 naming the flag, nothing sent (got $rc)" \
        test "$rc" = 1 -a ! -s "$T/cs.ifv.out" -a -n "$(grep -- '--if-value does not apply to allocate' "$T/cs.ifv.err")"
    cs_run alloc2 allocate "$o" p2 --value 30 --mark-unused-as-spent-on-termination true
    cs_applied "allocate $o p2 30" "$CS_OWNER" "$o" "allocation project p2 30.000000 30.000000;terms project p2 0.000000 30.000000"
    check "allocate p2: free 80" cs_state_is "$o" "150.000000 80.000000 | p1:40.000000 p2:30.000000"
    cs_run dealloc deallocate "$o" p1
    cs_applied "deallocate $o p1" "$CS_OWNER" "$o" "revoked project p1 -40.000000 0.000000"
    check "deallocate p1: V 150 kept, free 120" cs_state_is "$o" "150.000000 120.000000 | p2:30.000000"
    cs_run term terminate "$o" p2
    cs_applied "terminate $o p2" "$CS_OWNER" "$o" "spent_on_termination project p2 -30.000000 0.000000"
    check "terminate p2: spent, V 120" cs_state_is "$o" "120.000000 120.000000 |"

    # ---- a usage and its void ----
    ut=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    check "usage of 130 produced" cs_usage "$o" "u-$o-1" "$ut" 130
    check "usage applied: V 0 (waited for)" cs_wait_for 60 cs_state_is "$o" "0.000000 0.000000 |"
    check "usage: org credit exhausted (show)" test "$(cs_show "$o" .credit.alerts.exhausted)" = true
    check "usage: overage 10 on credit.overage" cs_wait_for 60 cs_topic_has credit.overage \
        ".type == \"credit.overage\" and .data.usage_id == \"u-$o-1\" and .data.amount == \"10.000000\" and .data.covered == \"120.000000\""
    ov=$(cs_topic credit.overage ".type == \"credit.overage\" and .data.usage_id == \"u-$o-1\"" | jq -r .id)
    cs_run void void "$o" --usage-source mk/usage --usage-id "u-$o-1" --usage-time "$ut" --reason "meter reset"
    vid=$CS_ID
    cs_applied "void of u-$o-1" "$CS_STAFF" "$o" "refund org px 120.000000 120.000000"
    check "void: --wait printed its credit.overage.void too (of $ov, 10)" test "$(tail -n +3 "$CS_OUT" |
        jq -r 'select(.type == "credit.overage.void") | .data.voids + " " + .data.amount')" = "$ov 10.000000"
    check "void: balances back to 120" cs_state_is "$o" "120.000000 120.000000 |"
    check "void: the month's consumption back to 0 (show)" \
        test "$(cs_show "$o" '[.consumption[] | select(.month == "'"${ut:0:7}"'") | .consumed][0]')" = '"0.000000"'
    check "void: no longer exhausted (show)" test "$(cs_show "$o" .credit.alerts.exhausted)" = false
    check "void: credit.overage.void of $ov, 10, with its reason" cs_wait_for 60 cs_topic_has credit.overage \
        ".type == \"credit.overage.void\" and .data.voids == \"$ov\" and .data.amount == \"10.000000\" and .data.event_id == \"$vid\" and .data.reason == \"meter reset\""
    check "void: recovered on credit.alerts" cs_wait_for 60 cs_topic_has credit.alerts \
        ".data.alert == \"recovered\" and .data.event_id == \"$vid\" and .subject == \"$o\""
    # A usage of an organisation without credit is overage only: its void's
    # one output is the overage void, which --wait must see.
    check "usage of 3 of $o2 (no credit) produced" cs_usage "$o2" "u-$o2-1" "$ut" 3
    check "usage of $o2: overage no_credit" cs_wait_for 60 cs_topic_has credit.overage \
        ".type == \"credit.overage\" and .data.usage_id == \"u-$o2-1\" and .data.reason == \"no_credit\""
    ov=$(cs_topic credit.overage ".type == \"credit.overage\" and .data.usage_id == \"u-$o2-1\"" | jq -r .id)
    cs_run void2 void "$o2" --usage-source mk/usage --usage-id "u-$o2-1" --usage-time "$ut"
    check "void of an overage-only usage: exit 0 (got $CS_RC)" test "$CS_RC" = 0
    check "void of an overage-only usage: applied" test "$(sed -n 2p "$CS_OUT")" = applied
    check "void of an overage-only usage: its credit.overage.void printed" test "$(tail -n +3 "$CS_OUT" |
        jq -r '[.type, .data.voids, .data.amount] | join(" ")')" = "credit.overage.void $ov 3.000000"
    check "void of an overage-only usage: it names the event" cs_about "$CS_STAFF" "$o2"
    check "void of an overage-only usage: $o2 has no credit" cs_state_is "$o2" " |"

    # ---- revoke ----
    cs_run revoke revoke "$o"
    cs_applied "revoke $o" "$CS_STAFF" "$o" "revoked org - -120.000000 0.000000"
    check "revoke: $o has no credit" cs_state_is "$o" " |"
    cs_run revoke2 revoke "$o"
    cs_rejected "revoke again" no_org_credit
}
