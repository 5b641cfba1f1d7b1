/* gen_render -- gen-events' output (prefix gr_): a write buffer on a file
 * descriptor and the rendering of a run's base events as CloudEvents JSON
 * Lines, one line per event, with the re-sends placed among them.
 *
 * Rendering draws from the run's PRNG stream (claw-backs, usage charges,
 * offerings, re-sends) and runs the simplified model (tools/gen_model.h) as
 * it writes, event by event in time order: the bytes depend on that order.
 *
 * Ownership: struct gr_out owns its descriptor (unless it is stdout) and its
 * buffer, from gr_open until gr_free.  gr_render borrows the run and writes
 * its organisations' simulation state and its counters. */
#ifndef TOOLS_GEN_RENDER_H
#define TOOLS_GEN_RENDER_H

#include <stddef.h>
#include <stdint.h>

#include "tools/gen_model.h"

/* The output.  Fields are the module's; callers read `bytes` (flushed so
 * far) and set fd = -1 before gr_open, so that gr_free is safe either way. */
struct gr_out {
    int fd;
    char *buf;
    size_t len, cap;
    uint64_t bytes;
    int64_t day;          /* cached day of `date` */
    char date[11];        /* "YYYY-MM-DD" */
};

/* Opens path (stdout when NULL or "-"; a file is created or truncated) and
 * the 8 MiB buffer.  0, or 1 with a message on stderr. */
int gr_open(struct gr_out *o, const char *path);

/* Writes the r->nbase events of r->ev and r->ndups exact re-sends, updating
 * r->rs, the organisations' simulation state and r->st.  A write error
 * exits 1 with a message. */
void gr_render(struct gr_out *o, struct gm_run *r);

/* Flushes and closes the output (stdout stays open; path names it in the
 * message).  0, or 1 with a message when the close fails -- a full disk can
 * show only here. */
int gr_close(struct gr_out *o, const char *path);

/* Closes a descriptor left open by a failure and frees the buffer. */
void gr_free(struct gr_out *o);

#endif
