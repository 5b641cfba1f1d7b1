/* ctl_cmds -- creditctl's staff and owner commands (issue 8 point 2): each
 * builds one CloudEvent of semantics §3 from its flags and produces it to the
 * input topic, keyed by organisation, with the murmur2 partitioner.
 *
 *   creditctl [COMMON] grant ORG --value V [terms...]      org_credit.set
 *   creditctl [COMMON] adjust ORG --delta D                 org_credit.adjust
 *   creditctl [COMMON] revoke ORG                           org_credit.delete
 *   creditctl [COMMON] allocate ORG PROJECT --value V [...] project_credit.set
 *   creditctl [COMMON] deallocate ORG PROJECT               project_credit.delete
 *   creditctl [COMMON] terminate ORG PROJECT                project.terminate
 *   creditctl [COMMON] void ORG --usage-source S --usage-id I --usage-time T
 *
 * Flags are checked before anything is sent, with the engine's own parsers
 * (money_parse, time_parse_*), and an error names the flag.  `grant` sends
 * if_value, the organisation's current balance read from --db (read-only,
 * store_get_org) or from creditd's HTTP API with --http URL (GET
 * /v1/orgs/ORG: tools/ctl_http.h), unless --force.  --dry-run prints the event instead of
 * producing it.  The event's time is the wall clock (UTC): the producer's
 * timestamp, the only wall-clock use of creditctl; or --time T, so that a
 * retry with the same --id, --time and flags is the same event (a duplicate,
 * not an id_conflict).  --wait S then reads the
 * outcome from the output topics (tools/ctl_wait.h).
 * Exit 0 ok, 1 bad usage, 2 store or Kafka error, 3 rejected (--wait),
 * 4 no outcome within S seconds (--wait). */
#ifndef TOOLS_CTL_CMDS_H
#define TOOLS_CTL_CMDS_H

/* 1 when argv holds one of the commands above as its command word (the first
 * argument that is neither an option nor an option's value), else 0. */
int ctlcmd_wanted(int argc, char **argv);

/* Run the command; returns the exit status.  Prints to stdout/stderr. */
int ctlcmd_main(int argc, char **argv);

#endif
