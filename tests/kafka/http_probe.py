#!/usr/bin/env python3
"""HTTP client for tests/kafka/it_http.sh: creditd's HTTP API under abuse.

  http_probe.py abuse HOST:PORT [ORG]
      Every abuse case below against a running creditd; prints one line per
      case ("ok: ..." / "FAIL: ...") and exits 1 if any failed:
        - 1,000 concurrent connections, each sending GET /healthz: every one
          gets a 200 or is refused (reset, closed without an answer, not
          accepted within the bound); never another status;
        - a 1 MB header, and a 100 kB request target: 4xx or refused;
        - malformed and percent-encoded targets (bad escapes, %00, "..",
          "%2e%2e", over-long ids, raw non-UTF-8, absolute form, unknown
          query parameters, bad limits): the expected 4xx status with a JSON
          body {"error": ...} that is valid UTF-8;
        - methods other than GET and HEAD (with and without a body): 405 with
          "Allow: GET, HEAD"; HEAD: the GET's status and headers, no body.
  http_probe.py compare HOST:PORT CREDITCTL STORE ORGS_FILE
      creditd's answers against creditctl's on the same store (nothing may
      be applied meanwhile): for every id in ORGS_FILE (one per line),
      GET /v1/orgs/{id} is 200 with exactly the bytes of `creditctl show ID
      --json`, or 404 {"error":...,"org":ID} where creditctl knows no such
      organisation; GET /v1/orgs followed page by page (limit 1, 7, the
      default, 1000, and from an `after` in the middle) gives exactly the
      objects of `creditctl balances --json`, in order, pages holding at
      most `limit` organisations, `next` null on the last page.
  http_probe.py get HOST:PORT TARGET
      One GET; prints the status line's code, then the body.
Only the standard library: raw sockets, so that malformed requests reach the
server as written.
"""
import json
import resource
import subprocess
import selectors
import socket
import sys
import time

TIMEOUT = 20.0  # seconds: every wait is bounded


def split_addr(addr):
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)


def request(addr, raw, timeout=TIMEOUT):
    """Send raw bytes; return (status or None, headers dict, body bytes, note)."""
    host, port = split_addr(addr)
    try:
        s = socket.create_connection((host, port), timeout=timeout)
    except OSError as e:
        return None, {}, b"", f"connect: {e}"
    data = b""
    try:
        try:
            s.sendall(raw)
        except OSError as e:  # the server may close before reading it all
            note = f"send: {e}"
        else:
            note = ""
        s.settimeout(timeout)
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                return None, {}, data, "timeout"
            except OSError as e:
                note = note or f"recv: {e}"
                break
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    if not data:
        return None, {}, b"", note or "closed without an answer"
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
    return status, headers, body, note


def get(addr, target, method=b"GET", extra=b""):
    return request(addr, method + b" " + target + b" HTTP/1.1\r\nHost: creditd\r\n" + extra + b"\r\n")


class Report:
    def __init__(self):
        self.failed = 0

    def check(self, cond, what):
        print(("ok: " if cond else "FAIL: ") + what, flush=True)
        if not cond:
            self.failed += 1


def json_error(body):
    """The {"error": ...} object of an error body, or None."""
    try:
        obj = json.loads(body.decode("utf-8", errors="strict"))
    except (UnicodeDecodeError, ValueError):
        return None
    return obj if isinstance(obj, dict) and isinstance(obj.get("error"), str) else None


def many_connections(addr, rep, n=1000):
    """n connections at once, each sending GET /healthz."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 256), hard))
    host, port = split_addr(addr)
    sel = selectors.DefaultSelector()
    req = b"GET /healthz HTTP/1.1\r\nHost: creditd\r\n\r\n"
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        s.setblocking(False)
        s.connect_ex((host, port))
        socks.append(s)
        sel.register(s, selectors.EVENT_WRITE, {"sent": False, "data": b""})
    outcome = {}
    deadline = time.monotonic() + TIMEOUT * 2
    while len(outcome) < n and time.monotonic() < deadline:
        for key, ev in sel.select(timeout=0.5):
            s, st = key.fileobj, key.data
            try:
                if not st["sent"]:
                    s.send(req)
                    st["sent"] = True
                    sel.modify(s, selectors.EVENT_READ, st)
                    continue
                chunk = s.recv(4096)
            except OSError:
                chunk = b""
            if chunk:
                st["data"] += chunk
                continue
            sel.unregister(s)
            d = st["data"]
            outcome[s] = d.split(b" ")[1].decode() if d.startswith(b"HTTP/1.") else "refused"
    for s in socks:
        if s not in outcome:
            outcome[s] = "no answer within the bound (refused)"
        s.close()
    counts = {}
    for v in outcome.values():
        counts[v] = counts.get(v, 0) + 1
    bad = {k: v for k, v in counts.items() if k not in ("200", "refused") and not k.startswith("no answer")}
    rep.check(not bad and counts.get("200", 0) > 0,
              f"{n} concurrent connections: {counts} (only 200 or refused, some served)")


def big_requests(addr, rep):
    status, _, _, note = get(addr, b"/healthz", extra=b"X-Big: " + b"a" * (1 << 20) + b"\r\n")
    rep.check(status is None or 400 <= status < 500, f"1 MB header: {status or note}")
    status, _, _, note = get(addr, b"/" + b"a" * 100000)
    rep.check(status is None or 400 <= status < 500, f"100 kB request target: {status or note}")
    status, _, _, note = request(addr, b"GARBAGE\r\n\r\n")
    rep.check(status is None or 400 <= status < 500, f"not HTTP: {status or note}")


TARGETS = [
    (b"/v1/orgs/a%zz", 400), (b"/v1/orgs/a%2", 400), (b"/v1/orgs/%00", 400),
    (b"/v1/orgs/a%00b", 400), (b"/v1/orgs/..", 400), (b"/v1/orgs/.", 400),
    (b"/v1/../healthz", 400), (b"/../../etc/passwd", 400), (b"/v1/orgs/%2e%2e", 404),
    (b"/v1/orgs/%2e%2e%2f%2e%2e%2fetc%2fpasswd", 404), (b"/v1/orgs/" + b"x" * 201, 400),
    (b"/v1/orgs/" + b"%78" * 201, 400), (b"/v1/orgs/%ff%fe", 400), (b"/v1/orgs/\xff", 400),
    (b"/v1/orgs/%c0%ae%c0%ae", 400), (b"http://creditd/healthz", 400), (b"/v1/orgs?limit=0", 400),
    (b"/v1/orgs?limit=1001", 400), (b"/v1/orgs?limit=abc", 400), (b"/v1/orgs?limit=1&limit=2", 400),
    (b"/v1/orgs?after=%zz", 400), (b"/v1/orgs?after=a%00", 400), (b"/v1/orgs?bogus=1", 400),
    (b"/v1/orgs/o1?limit=1", 400), (b"/nope", 404), (b"/v1/orgs/", 404), (b"/v1/orgs/a/b", 404),
    (b"/healthz/", 404), (b"/v1/orgs/no-such-org", 404),
]


def malformed(addr, rep):
    for target, want in TARGETS:
        status, headers, body, note = get(addr, target)
        err = json_error(body)
        rep.check(status == want and err is not None and headers.get("content-type") == "application/json",
                  f"GET {target[:60]!r}: {status or note} (want {want}) {body[:100]!r}")


def methods(addr, rep, org):
    target = b"/v1/orgs/" + org.encode()
    for m in (b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS", b"TRACE", b"CONNECT", b"BREW"):
        status, headers, body, note = get(addr, target, method=m)
        rep.check(status == 405 and headers.get("allow") == "GET, HEAD" and json_error(body) is not None,
                  f"{m.decode()} {target.decode()}: {status or note}, Allow {headers.get('allow')}")
    status, headers, body, note = request(addr, b"POST " + target + b" HTTP/1.1\r\nHost: creditd\r\n"
                                          b"Content-Length: 5\r\n\r\nhello")
    rep.check(status == 405, f"POST with a body: {status or note}")
    status, headers, body, note = request(addr, b"PUT " + target + b" HTTP/1.1\r\nHost: creditd\r\n"
                                          b"Content-Length: 100000000\r\n\r\n" + b"x" * 65536)
    rep.check(status == 405, f"PUT announcing a 100 MB body: {status or note}")
    status, headers, body, note = get(addr, b"/healthz", method=b"HEAD")
    rep.check(status == 200 and body == b"" and headers.get("content-length") == "19",
              f"HEAD /healthz: {status or note}, body {len(body)} bytes, "
              f"Content-Length {headers.get('content-length')}")


def quote_id(org):
    """Percent-encode an id for a path segment ('.' too: "." and ".." are ids)."""
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_~") else
                   "".join(f"%{b:02X}" for b in c.encode()) for c in org).encode()


def compare_orgs(addr, ctl, store, orgs, rep):
    same = missing = 0
    for org in orgs:
        r = subprocess.run([ctl, "--db", store, "show", org, "--json"], capture_output=True, timeout=60)
        status, headers, body, note = get(addr, b"/v1/orgs/" + quote_id(org))
        if r.returncode == 0 and status == 200 and body == r.stdout:
            same += 1
            continue
        err = json_error(body)
        if r.returncode == 1 and status == 404 and err and err.get("org") == org:
            missing += 1
            continue
        rep.check(False, f"GET /v1/orgs/{org}: {status or note} {body[:200]!r}; creditctl exit "
                         f"{r.returncode} {r.stdout[:200]!r}")
    rep.check(same > 0 and same + missing == len(orgs),
              f"GET /v1/orgs/{{org}} == creditctl show --json for {same} orgs, 404 for {missing} unknown")


def pages(addr, limit, after=""):
    """Every balances object from after on, following next; (objects, pages) or a failure text."""
    objs, n = [], 0
    while True:
        q = [] if limit is None else [b"limit=%d" % limit]
        if after:
            q.append(b"after=" + quote_id(after))
        status, headers, body, note = get(addr, b"/v1/orgs" + (b"?" + b"&".join(q) if q else b""))
        if status != 200 or headers.get("content-type") != "application/json":
            return f"page {n}: {status or note} {body[:200]!r}"
        page = json.loads(body)
        orgs = [o for o in page["balances"] if "project" not in o]
        if len(orgs) > (limit or 100):
            return f"page {n}: {len(orgs)} organisations, limit {limit}"
        objs += page["balances"]
        n += 1
        if page["next"] is None:
            return objs, n
        after = page["next"]


def compare_pages(addr, ctl, store, rep):
    r = subprocess.run([ctl, "--db", store, "balances", "--json"], capture_output=True, timeout=60)
    want = [json.loads(line) for line in r.stdout.splitlines()]
    rep.check(r.returncode == 0 and len(want) > 0, f"creditctl balances --json: {len(want)} objects")
    for limit in (1, 7, None, 1000):
        got = pages(addr, limit)
        rep.check(not isinstance(got, str) and got[0] == want,
                  f"GET /v1/orgs limit {limit or 'default'}: " +
                  (got if isinstance(got, str) else f"{len(got[0])} objects in {got[1]} pages == creditctl's"))
    orgs = [o["org"] for o in want if "project" not in o]
    mid = orgs[len(orgs) // 2]
    got = pages(addr, 5, after=mid)
    tail = [o for o in want if o["org"] > mid]
    rep.check(not isinstance(got, str) and got[0] == tail,
              f"GET /v1/orgs?after={mid}: the {len(tail)} objects after it")


def main():
    if len(sys.argv) == 6 and sys.argv[1] == "compare":
        rep = Report()
        with open(sys.argv[5]) as f:
            orgs = [line.rstrip("\n") for line in f if line.strip()]
        compare_orgs(sys.argv[2], sys.argv[3], sys.argv[4], orgs, rep)
        compare_pages(sys.argv[2], sys.argv[3], sys.argv[4], rep)
        print(f"http_probe: {rep.failed} failed", flush=True)
        sys.exit(1 if rep.failed else 0)
    if len(sys.argv) >= 3 and sys.argv[1] == "abuse":
        rep = Report()
        org = sys.argv[3] if len(sys.argv) > 3 else "o1"
        malformed(sys.argv[2], rep)
        methods(sys.argv[2], rep, org)
        big_requests(sys.argv[2], rep)
        many_connections(sys.argv[2], rep)
        status, _, body, note = get(sys.argv[2], b"/healthz")
        rep.check(status == 200, f"GET /healthz after the abuse: {status or note}")
        print(f"http_probe: {rep.failed} failed", flush=True)
        sys.exit(1 if rep.failed else 0)
    if len(sys.argv) == 4 and sys.argv[1] == "get":
        status, _, body, note = get(sys.argv[2], sys.argv[3].encode())
        print(status or note)
        sys.stdout.flush()
        sys.stdout.buffer.write(body)
        sys.exit(0 if status else 1)
    print(__doc__, file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    main()
