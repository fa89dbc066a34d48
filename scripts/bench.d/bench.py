#!/usr/bin/env python3
"""Helpers for scripts/bench (standard library only).

Subcommands:
  ports N                         print N free loopback TCP ports
  token AS_PORT                   get an opaque token from the demo AS
  introspect AS_PORT TOKEN        print the JWT the AS returns for TOKEN
  jwt SIZE [BASE_JWT]             print a well-formed compact JWT of exactly
                                  SIZE bytes (0: BASE_JWT's size) whose exp is
                                  one day ahead (claims copied from BASE_JWT)
  tokens N PREFIX FILE            write N distinct opaque tokens to FILE
  warm PORT PATH JWT_FILE TOKENS_FILE [FROM [TO]]
                                  POST {"action":"warm"} for each token
                                  (keep-alive, 4 parallel connections)
  stats PORT PATH                 print the admin GET stats JSON
  merge FILE key=value...         add fields to the JSON object in FILE
  get KEY                         print field KEY of the JSON object on stdin
  wrk LABEL                       parse wrk --latency output on stdin, print
                                  one JSON result line
  aggregate RESULTS_DIR NAME      combine NAME.r1.json, NAME.r2.json, ... (one
                                  per round) into NAME.json: medians of req/s
                                  and latencies, per-round lists, summed
                                  requests, errors and CPU ticks
  report RESULTS_DIR              print the markdown tables
"""

import base64
import http.client
import json
import os
import re
import socket
import statistics
import sys
import threading
import time

BASIC = "Basic " + base64.b64encode(b"api-gateway:gateway-secret").decode()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def post(port, path, body, headers):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("POST", path, body=body, headers=headers)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def get_token(as_port):
    status, data = post(
        as_port, "/token", "grant_type=client_credentials",
        {"Authorization": BASIC, "Content-Type": "application/x-www-form-urlencoded"})
    if status != 200:
        sys.exit(f"token endpoint answered {status}: {data[:200]!r}")
    return json.loads(data)["access_token"]


def introspect(as_port, token):
    status, data = post(
        as_port, "/introspect", "token=" + token,
        {"Authorization": BASIC, "Accept": "application/jwt",
         "Content-Type": "application/x-www-form-urlencoded"})
    if status != 200:
        sys.exit(f"introspection answered {status}")
    return data.decode()


def make_jwt(size, base=None):
    """A compact JWT of exactly `size` bytes: header and claims of `base`
    (or made up), exp one day ahead, padded with a "pad" claim; the
    signature segment is filler of the right alphabet (the module checks
    the shape and exp only)."""
    if base:
        h, p, s = base.split(".")
        header = json.loads(b64url_decode(h))
        claims = json.loads(b64url_decode(p))
        sig_len = len(s)
    else:
        header = {"alg": "RS256", "typ": "JWT", "kid": "bench"}
        claims = {"sub": "bench", "scope": "read write", "aud": "api"}
        sig_len = 342  # RS256 with a 2048-bit key
    claims["exp"] = int(time.time()) + 86400
    if not size:
        size = len(base)
    hseg = b64url(json.dumps(header, separators=(",", ":")).encode())

    def build(pad):
        c = dict(claims)
        if pad:
            c["pad"] = "x" * pad
        return hseg + "." + b64url(json.dumps(c, separators=(",", ":")).encode())

    pad = 0
    while len(build(pad + 1)) + 1 + sig_len <= size:
        pad += 1
    head = build(pad)
    filler = (b64url(os.urandom(size)) * 2)[: size - len(head) - 1]
    jwt = head + "." + filler
    if len(jwt) != size or len(filler) < 16:
        sys.exit(f"cannot make a {size}-byte JWT")
    return jwt


def warm(port, path, jwt, tokens, conns=4):
    errors = []

    def worker(chunk):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for t in chunk:
            body = json.dumps({"action": "warm", "token": t, "jwt": jwt, "ttl": 3600})
            c.request("POST", path, body=body, headers={"Content-Type": "application/json"})
            r = c.getresponse()
            data = r.read()
            if r.status != 200:
                errors.append(f"{r.status} {data[:200]!r}")
                return
        c.close()

    threads = [threading.Thread(target=worker, args=(tokens[i::conns],)) for i in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        sys.exit("warm failed: " + errors[0])


def stats(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", path)
    r = c.getresponse()
    data = r.read()
    if r.status != 200:
        sys.exit(f"admin stats answered {r.status}")
    return json.loads(data)


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def to_ms(v):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", v)
    return float(m.group(1)) * UNITS[m.group(2)]


def parse_wrk(label, text):
    res = {"label": label, "rps": None, "p50": None, "p99": None,
           "non2xx": 0, "socket_errors": 0, "requests": None}
    m = re.search(r"Requests/sec:\s*([\d.]+)", text)
    if m:
        res["rps"] = float(m.group(1))
    m = re.search(r"(\d+) requests in", text)
    if m:
        res["requests"] = int(m.group(1))
    m = re.search(r"^\s*50%\s+(\S+)", text, re.M)
    if m:
        res["p50"] = to_ms(m.group(1))
    m = re.search(r"^\s*99%\s+(\S+)", text, re.M)
    if m:
        res["p99"] = to_ms(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text)
    if m:
        res["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        res["socket_errors"] = sum(int(x) for x in m.groups())
    return res


def aggregate(d, name):
    rounds = []
    while (r := load(d, f"{name}.r{len(rounds) + 1}.json")) is not None:
        rounds.append(r)
    if not rounds:
        sys.exit(f"no rounds for {name}")

    def median(field):
        xs = [r[field] for r in rounds if r.get(field) is not None]
        return statistics.median(xs) if xs else None

    res = {
        "label": name, "rounds": len(rounds),
        "rps": median("rps"), "p50": median("p50"), "p99": median("p99"),
        "rps_rounds": [r.get("rps") for r in rounds],
        "p50_rounds": [r.get("p50") for r in rounds],
        "non2xx": sum(r.get("non2xx", 0) for r in rounds),
        "socket_errors": sum(r.get("socket_errors", 0) for r in rounds),
        "requests": sum(r.get("requests") or 0 for r in rounds),
        "cpu_ticks": sum(r.get("cpu_ticks") or 0 for r in rounds),
        "clk_tck": rounds[0].get("clk_tck", 100),
    }
    with open(os.path.join(d, f"{name}.json"), "w") as f:
        json.dump(res, f)


def quick(d, *keys):
    """BENCH_ROWS: medians, nginx CPU per request, and req/s ratios to the
    first row, paired per round."""
    rows = {k: load(d, f"row-{k}.json") for k in keys}
    base = rows[keys[0]]
    print(f"| row | req/s (median) | all rounds | nginx CPU / request | vs ({keys[0]}) |")
    print("|---|---|---|---|---|")
    for k, r in rows.items():
        cpu = cpu_us(r)
        ratio = paired(r, base)
        print(f"| ({k}) | {r['rps']:,.0f} | {spread(r)} | "
              f"{'n/a' if cpu is None else f'{cpu:.1f} µs'} | "
              f"{'n/a' if ratio is None else f'{ratio:.3f}'} |")


def paired(x, y, field="rps_rounds"):
    """Median over rounds of x/y, each round's two runs taken minutes apart
    at most: the machine's drift cancels out of every ratio."""
    if not x or not y:
        return None
    rs = [a / b for a, b in zip(x.get(field, []), y.get(field, [])) if a and b]
    return statistics.median(rs) if rs else None


def spread(r):
    xs = [v for v in (r or {}).get("rps_rounds", []) if v]
    return f"{min(xs):,.0f}–{max(xs):,.0f}" if xs else "n/a"


def load(d, name):
    p = os.path.join(d, name)
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return json.loads(f.read())


def fmt_ms(v):
    if v is None:
        return "n/a"
    return f"{v * 1000:.0f} µs" if v < 1 else f"{v:.2f} ms"


def fmt_rps(v):
    return "n/a" if v is None else f"{v:,.0f}"


def ratio(a, b):
    return None if not a or not b else a / b


def cpu_us(r):
    """nginx worker CPU time per request (µs), or None."""
    if not r or not r.get("requests") or r.get("cpu_ticks") is None:
        return None
    return r["cpu_ticks"] / r.get("clk_tck", 100) * 1e6 / r["requests"]


def fmt_us(v):
    return "n/a" if v is None else f"{v:.1f} µs"


def authz_section(d, w):
    """The rule/claims and JWKS verification series."""
    authz = {k: load(d, f"{k}.json") for k in ("hit", "hit-rule", "hit-jwks", "miss", "miss-jwks")}
    ntok = (authz["miss"] or {}).get("tokens", "n/a")
    w("Authorization and verification (one nginx; the series alternate in every round): "
      "cache hits (one token) without and with `phantom_token_require GET \"read and write\"` "
      "plus `$phantom_token_claim_sub` and `$phantom_token_claim_scope` in `proxy_set_header`, "
      "and with `phantom_token_jwks`; misses (no cache: every request introspected, a random "
      f"token of {ntok}) without and with `phantom_token_jwks` (RS256):")
    w("")
    w("| series | req/s | req/s, all rounds | p50 | p99 | non-2xx | nginx CPU / request |")
    w("|---|---:|---:|---:|---:|---:|---:|")
    for k, r in authz.items():
        if r is None:
            w(f"| {k} | failed | | | | | |")
            continue
        w(f"| {k} | {fmt_rps(r['rps'])} | {spread(r)} | {fmt_ms(r['p50'])} | {fmt_ms(r['p99'])} "
          f"| {r['non2xx']} | {fmt_us(cpu_us(r))} |")
    r_rule = paired(authz["hit-rule"], authz["hit"])
    cpu = {k: cpu_us(r) for k, r in authz.items()}
    w("")
    if r_rule is not None:
        met = r_rule >= 0.97
        w(f"- rule + two claim variables on a hit: req/s **{r_rule * 100:.1f}%** of the plain hit "
          f"(target ≥ 97%: {'**met**' if met else '**not met**'}); nginx CPU / request "
          f"{fmt_us(cpu['hit-rule'])} vs {fmt_us(cpu['hit'])}.")
    if cpu["hit-jwks"] is not None and cpu["hit"] is not None:
        w(f"- `phantom_token_jwks` on a hit: nginx CPU / request {fmt_us(cpu['hit-jwks'])} vs "
          f"{fmt_us(cpu['hit'])} without (a stored entry was verified once, when stored).")
    if cpu["miss-jwks"] is not None and cpu["miss"] is not None:
        w(f"- `phantom_token_jwks` on a miss: nginx CPU / request {fmt_us(cpu['miss-jwks'])} vs "
          f"{fmt_us(cpu['miss'])}: one RS256 verification adds **{cpu['miss-jwks'] - cpu['miss']:.1f} µs**.")
    w("")


def report(d):
    meta = load(d, "meta.json")
    out = []
    w = out.append
    w(f"Date: {meta['date']}  ")
    w(f"Machine: {meta['nproc']} CPUs, {meta['cpu']}, Linux {meta['kernel']}; "
      f"load average before the run: {meta.get('load_before', 'n/a')}, after: "
      f"{meta.get('load_after', 'n/a')}  ")
    w(f"NGINX: {meta['nginx']} (objs-release); CPUs: {meta.get('layout', '`worker_processes 2`')}  ")
    w(f"Load: "
      f"wrk {meta['wrk']}: `-t{meta['threads']} -c{meta['conns']} -d{meta['duration']} --latency`, "
      f"loopback; upstreams via `keepalive` pools; {meta.get('rounds', 1)} rounds, every "
      f"configuration once per round (rotating order): req/s, p50 and p99 are medians over "
      f"the rounds, ratios are medians of the per-round ratios")
    w("")
    rows = [
        ("a", "plain `proxy_pass` to the echo API, no auth (stock NGINX)"),
        ("aj", "plain `proxy_pass` that sends the AS's JWT upstream itself (`proxy_set_header Authorization`), no module³"),
        ("b", "module + built-in cache (`phantom_token_cache`), all hits"),
        ("c", "module, no cache: every request introspected at the AS"),
        ("d", "module + `proxy_cache` on the introspection location (C module's setup), hits"),
        ("a2", "as (a), on the stock build with `auth_request` compiled in²"),
        ("e", "stock `auth_request` + `proxy_cache` introspection (gating only¹), no module²"),
    ]
    base = load(d, "row-a.json")
    w("| row | configuration | req/s | req/s, all rounds | p50 | p99 | non-2xx | socket errors | req/s vs (a) | nginx CPU / request |")
    w("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    res = {}
    for key, desc in rows:
        r = load(d, f"row-{key}.json")
        res[key] = r
        if r is None:
            w(f"| ({key}) | {desc} | failed | | | | | | | |")
            continue
        rt = paired(r, base)
        w(f"| ({key}) | {desc} | {fmt_rps(r['rps'])} | {spread(r)} | {fmt_ms(r['p50'])} | {fmt_ms(r['p99'])} "
          f"| {r['non2xx']} | {r['socket_errors']} | {'n/a' if rt is None else f'{rt:.2f}'} "
          f"| {fmt_us(cpu_us(r))} |")
    w("")
    w("nginx CPU / request: user + system time of the nginx workers during the "
      "measured runs divided by the requests served: the gateway's own work, whatever "
      "else runs on the machine. When wrk and the demo servers share the CPUs with nginx, "
      "throughput saturates near row (a) for every cheap configuration and ratios are "
      "compressed towards 1.")
    w("")
    notes = {}
    for k, _ in rows:
        p = os.path.join(d, f"note-{k}.txt")
        if os.path.exists(p):
            with open(p) as f:
                notes[k] = f.read().strip()
    w("¹ `auth_request` cannot read the subrequest's body, so the JWT cannot be forwarded "
      "(the demo AS returns it only in the body): row (e) measures the 200/401 gate with a "
      "cached introspection answer, less work than the phantom token exchange. Stock "
      "`auth_request` also treats the AS's `204` (inactive token) as success; a real setup "
      "needs an adapter. All rows send the same `Authorization: Bearer <opaque>` header "
      "to `/api/static`, which the echo API answers with a fixed `{\"ok\":true}`: every row's "
      "upstream answer costs the same (rows (b)-(d) forward a JWT instead of the opaque token).")
    w("² `objs-release/nginx` is not configured with `ngx_http_auth_request_module`; rows "
      "(a2) and (e) run the same NGINX source built with the same configure arguments plus "
      "`--with-http_auth_request_module` (target/bench-nginx/).")
    w("³ Row (aj) is a control, not an alternative: the upstream request carries the same "
      "~630-byte JWT as in rows (b)-(d) (the client still sends the opaque token), so (b) vs "
      "(aj) is the module's own cost, and (aj) vs (a) the cost of the bigger upstream request "
      "that the phantom token pattern implies.")
    for k, _ in rows:
        if k not in notes:
            continue
        w(f"- ({k}) {notes[k]}")
    w("")

    s1, s100 = load(d, "hit-1k.json"), load(d, "hit-100k.json")
    c1, c100 = load(d, "plain-1k.json"), load(d, "plain-100k.json")
    w("Cache-hit latency vs number of cached tokens (row (b) config in one nginx with two "
      "zones, `small` (32m) and `large` (256m), each holding its token set; a random cached "
      "token per request via a wrk Lua `request()`; the four series alternate in every "
      "round; the control rows send the same requests to a plain `proxy_pass` location of "
      "the same nginx, measuring the client-side cost of the random pick):")
    w("")
    w("| cached tokens | location | req/s | req/s, all rounds | p50 | p99 | non-2xx | socket errors | cache misses during run |")
    w("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for r, what in ((c1, "control: plain proxy"), (s1, "module, cache hits"),
                    (c100, "control: plain proxy"), (s100, "module, cache hits")):
        if r is None:
            w(f"| | {what} | failed | | | | | | |")
            continue
        misses = r.get("misses", "n/a") if "hits" in what else "–"
        w(f"| {r.get('count', 0):,} | {what} | {fmt_rps(r['rps'])} | {spread(r)} | {fmt_ms(r['p50'])} "
          f"| {fmt_ms(r['p99'])} | {r['non2xx']} | {r['socket_errors']} | {misses} |")
    p50r = paired(s100, s1, "p50_rounds")
    p99r = ratio(s100 and s100["p99"], s1 and s1["p99"])
    cp50r = paired(c100, c1, "p50_rounds")

    def module_us(hit, ctl):
        if not hit or not ctl or not hit["rps"] or not ctl["rps"]:
            return None
        return 1e6 / hit["rps"] - 1e6 / ctl["rps"]

    mu1, mu100 = module_us(s1, c1), module_us(s100, c100)
    mur = ratio(mu100, mu1) if mu1 and mu1 > 0 and mu100 is not None else None  # noisy: a difference of reciprocals
    if p50r:
        w("")
        w(f"- cache hits, p50 ratio {s100.get('count', 0):,} / {s1.get('count', 0):,} tokens: "
          f"**{p50r:.2f}** (p99 {p99r:.2f}, req/s {paired(s100, s1):.2f}); "
          f"control p50 ratio: {'n/a' if cp50r is None else f'{cp50r:.2f}'}.")
    if mu1 is not None and mu100 is not None:
        w(f"- module cost per request (1/req/s of the hit row minus the control row, saturated "
          f"machine): {mu1:.1f} µs with {s1.get('count', 0):,} tokens, {mu100:.1f} µs with "
          f"{s100.get('count', 0):,} (ratio {'n/a: below the noise' if mur is None else f'{mur:.2f}'}).")
    if s100:
        w(f"- warming {s100.get('count', 0):,} tokens through the admin API (python client, "
          f"4 keep-alive connections) took {s100.get('warm_s', 0):.1f} s; zone entries during "
          f"the run: {s1.get('entries', 'n/a') if s1 else 'n/a':,} (small zone), "
          f"{s100.get('entries', 'n/a'):,} (large zone).")
    w("")

    authz_section(d, w)

    m1k = load(d, "mem-1024.json") or {}
    w(f"Zone memory per cached entry (fresh zone, {m1k.get('n', 0):,} entries per JWT size "
      "warmed via the admin API; `bytes_used` counts whole slab pages):")
    w("")
    w("| JWT size | entries | Δ bytes_used | bytes_used / entry | entry_bytes / entries | overhead vs JWT |")
    w("|---:|---:|---:|---:|---:|---:|")
    for size in (1024, 4096):
        m = load(d, f"mem-{size}.json")
        if m is None:
            w(f"| {size} B | failed | | | | |")
            continue
        per = m["delta_used"] / m["n"]
        eb = m["entry_bytes"] / m["entries"] if m["entries"] else 0
        w(f"| {size // 1024} KB | {m['entries']:,} | {m['delta_used']:,} | {per:,.0f} | {eb:,.0f} "
          f"| {per / size:.2f}× |")
    w("")

    def ok(v):
        return "n/a" if v is None else ("**met**" if v else "**not met**")

    b, a, dd, e = (res.get(k) for k in "bade")
    r_ba, r_bd, r_be = paired(b, a), paired(b, dd), paired(b, e)
    r_baj, r_aja = paired(b, res.get("aj")), paired(res.get("aj"), a)
    w("Targets:")
    w("")
    w("| target | measured | result |")
    w("|---|---:|---|")
    w(f"| cache hit (b) ≥ 95% of plain proxy (a) req/s | "
      f"{'n/a' if r_ba is None else f'{r_ba * 100:.1f}%'} | {ok(None if r_ba is None else r_ba >= 0.95)} |")
    w(f"| cache hit (b) ≥ 1.5× module + proxy_cache (d) req/s | "
      f"{'n/a' if r_bd is None else f'{r_bd:.2f}×'} | {ok(None if r_bd is None else r_bd >= 1.5)} |")
    w(f"| cache hit (b) ≥ 1.5× auth_request + proxy_cache (e) req/s | "
      f"{'n/a' if r_be is None else f'{r_be:.2f}×'} | {ok(None if r_be is None else r_be >= 1.5)} |")
    if r_baj is not None and r_aja is not None:
        w(f"| (supporting) cache hit (b) vs the same-bytes control (aj); (aj) vs (a) | "
          f"{r_baj * 100:.1f}%; {r_aja * 100:.1f}% | – |")
    ca, cb, cd, ce, ca2 = (cpu_us(res.get(k)) for k in ("a", "b", "d", "e", "a2"))
    if None not in (ca, cb, cd, ce, ca2):
        ob, od, oe = cb - ca, cd - ca, ce - ca2
        w(f"| (supporting) gateway work over plain proxy, nginx CPU / request: (b) {ob:.1f} µs, "
          f"(d) {od:.1f} µs, (e) {oe:.1f} µs | (d)/(b) {od / ob if ob > 0 else float('inf'):.1f}×, "
          f"(e)/(b) {oe / ob if ob > 0 else float('inf'):.1f}× | – |")
    w(f"| 100k-token hit p50 within 20% of 1k (raw wrk p50, client cost included) | "
      f"{'n/a' if p50r is None else f'{p50r:.2f}×'} | {ok(None if p50r is None else p50r <= 1.2)} |")
    logs = meta.get("log_issues", [])
    w("")
    if logs:
        w(f"NGINX error-log lines at [error] or above during the run ({len(logs)}; first 10):")
        w("")
        w("```")
        out.extend(logs[:10])
        w("```")
    else:
        w("NGINX error logs: no [emerg]/[alert]/[crit]/[error] lines during the run.")
    print("\n".join(out))


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "ports":
        print(" ".join(map(str, free_ports(int(args[0])))))
    elif cmd == "token":
        print(get_token(int(args[0])))
    elif cmd == "issue":
        # issue AS_PORT N FILE: N opaque tokens from the AS's token endpoint
        port, n = int(args[0]), int(args[1])
        with open(args[2], "w") as f:
            for _ in range(n):
                f.write(get_token(port) + "\n")
    elif cmd == "introspect":
        print(introspect(int(args[0]), args[1]))
    elif cmd == "jwt":
        print(make_jwt(int(args[0]), args[1] if len(args) > 1 else None))
    elif cmd == "tokens":
        n, prefix = int(args[0]), args[1]
        with open(args[2], "w") as f:
            for i in range(n):
                f.write(f"{prefix}{i:06d}_{b64url(os.urandom(18))}\n")
    elif cmd == "warm":
        port, path = int(args[0]), args[1]
        with open(args[2]) as f:
            jwt = f.read().strip()
        with open(args[3]) as f:
            tokens = f.read().split()
        lo = int(args[4]) if len(args) > 4 else 0
        hi = int(args[5]) if len(args) > 5 else len(tokens)
        warm(port, path, jwt, tokens[lo:hi])
    elif cmd == "stats":
        print(json.dumps(stats(int(args[0]), args[1])))
    elif cmd == "wrk":
        print(json.dumps(parse_wrk(args[0], sys.stdin.read())))
    elif cmd == "quick":
        quick(args[0], *args[1:])
    elif cmd == "authz":
        out = []
        authz_section(args[0], out.append)
        print("\n".join(out))
    elif cmd == "aggregate":
        aggregate(args[0], args[1])
    elif cmd == "merge":
        # merge FILE key=value...: add numeric/string fields to a JSON object file
        with open(args[0]) as f:
            obj = json.load(f)
        for kv in args[1:]:
            k, v = kv.split("=", 1)
            try:
                obj[k] = json.loads(v)
            except ValueError:
                obj[k] = v
        with open(args[0], "w") as f:
            json.dump(obj, f)
    elif cmd == "get":
        # get KEY: print a field of the JSON object on stdin
        print(json.load(sys.stdin).get(args[0], ""))
    elif cmd == "report":
        report(args[0])
    else:
        sys.exit(f"unknown subcommand {cmd}")


if __name__ == "__main__":
    main()
