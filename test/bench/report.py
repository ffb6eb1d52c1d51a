#!/usr/bin/env python3
"""Issue #12's table from the results file of test/bench/bench.sh.

Reads the lines that bench_connect, bench_reverse and reverse.sh append (`ROW MODE key=value
...`), prints the table (nonoproxy, tinyproxy, squid, nginx side by side; `n/a` with a footnote
where a proxy cannot do the row; any failed request marked), and with --doc / --plot replaces
the region between the bench markers of docs/PERFORMANCE.md and draws docs/perf/tunnels.png
(gnuplot: tunnels/s and p99 against 1..256 clients). Exit status 1 when any row had a failed
request or a part did not run, else 0.
"""
import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

PROXIES = ["nonoproxy", "tinyproxy", "squid", "nginx"]
BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"

# Why a proxy has no value in a row (the footnotes).
NA_CONNECT = "stock nginx has no CONNECT method (no forward-proxy module in Debian's build)"
NA_FORWARD = ("nginx is not a forward proxy: an absolute-form request needs a hand-made "
              "`proxy_pass http://$http_host` configuration without upstream keep-alive, "
              "which would not be nginx as deployed")
NA_ROUTE = ("tinyproxy and squid have no route with credential injection (tinyproxy's "
            "ReversePath cannot set a header; squid would need a TLS peer and "
            "`request_header_replace`, a different product)")


def parse(path):
    """Return {(row, mode): [dict, ...]} and the free-form lines (version, part)."""
    rows = {}
    meta = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            words = line.split()
            if len(words) < 2:
                continue
            if words[0] in ("version", "part", "load"):
                meta.append(words)
                continue
            kv = {}
            for w in words[2:]:
                if "=" in w:
                    k, v = w.split("=", 1)
                    try:
                        kv[k] = float(v)
                    except ValueError:
                        kv[k] = v
            rows.setdefault((words[0], words[1]), []).append(kv)
    return rows, meta


class Table:
    """The cells of the table, the errors seen, the footnotes used."""

    def __init__(self, rows):
        self.rows = rows
        self.errors = []
        self.notes = []

    def note(self, text):
        if text not in self.notes:
            self.notes.append(text)
        return "n/a" + "¹²³⁴⁵⁶"[self.notes.index(text)]

    def get(self, row, mode):
        """The one line of (row, mode), or None; records its errors."""
        lines = self.rows.get((row, mode))
        if not lines:
            return None
        d = lines[-1]
        if d.get("errors", 0) > 0:
            self.errors.append(f"{row} via {mode}: {int(d['errors'])} failed")
        return d

    def mark(self, row, mode, text):
        """text, flagged when (row, mode) had failed requests."""
        d = self.rows.get((row, mode))
        if d and d[-1].get("errors", 0) > 0:
            return f"{text} **({int(d[-1]['errors'])} failed)**"
        return text


def wrk_summary(rows, mode):
    """Median req/s, µs/request and the failures over the wrk rounds of mode; the median of the
    per-round ratios to nginx."""
    mine = rows.get(("wrk16r", mode), [])
    ngx = {d["round"]: d for d in rows.get(("wrk16r", "nginx"), [])}
    if not mine:
        return None
    ratios = [d["value"] / ngx[d["round"]]["value"] for d in mine
              if d["round"] in ngx and ngx[d["round"]]["value"] > 0]
    return {
        "value": statistics.median(d["value"] for d in mine),
        "cpu": statistics.median(d["cpu"] for d in mine),
        "ratio_nginx": statistics.median(ratios) if ratios else 0.0,
        "errors": sum(d["errors"] for d in mine),
    }


def mib(kib):
    return f"{kib / 1024:.1f} MiB"


def cells_for(t, mode):
    """The cells of one proxy's column, in row order."""
    out = []
    connect_na = t.note(NA_CONNECT) if mode == "nginx" else None

    def connect_row(row, fmt):
        if connect_na:
            return connect_na
        d = t.get(row, mode)
        return t.mark(row, mode, fmt(d)) if d else "not run"

    out.append(connect_row("setup16", lambda d: f"{d['ratio']:.2f}, {d['cpu']:.0f} µs"))
    out.append(connect_row("setup1", lambda d: f"{d['cp50']:.3f} ms"))
    out.append(connect_row("bulk1", lambda d: f"{d['ratio']:.2f}, {d['cpu']:.2f} CPU-s/GB"))
    out.append(connect_row("bulk8", lambda d: f"{d['ratio']:.2f}"))
    if mode == "nginx":
        out.append(t.note(NA_FORWARD))
    else:
        d = t.get("fwd16", mode)
        out.append(t.mark("fwd16", mode, f"{d['ratio']:.2f}, {d['cpu']:.0f} µs") if d else "not run")
    if mode in ("tinyproxy", "squid"):
        na = t.note(NA_ROUTE)
        out += [na, na, na]
    else:
        d = t.get("route16", mode)
        out.append(t.mark("route16", mode, f"{d['ratio_nginx']:.2f} × nginx, {d['cpu']:.0f} µs")
                   if d else "not run")
        w = wrk_summary(t.rows, mode)
        if w and w["errors"] > 0:
            t.errors.append(f"wrk via {mode}: {int(w['errors'])} failed")
        out.append((f"{w['ratio_nginx']:.2f} × nginx, {w['cpu']:.0f} µs"
                    + (f" **({int(w['errors'])} failed)**" if w["errors"] else "")) if w else "not run")
        d = t.get("sse", mode)
        out.append(t.mark("sse", mode, f"+{d['added']:.2f} ms") if d else "not run")
    rss = t.get("rss", mode)
    if mode == "nonoproxy":
        route = t.get("rss_route", mode)
        out.append(f"{mib(rss['idle_kib']) if rss else '?'} / {mib(route['idle_kib']) if route else '?'}")
    elif mode == "nginx":
        route = t.get("rss_route", mode)
        out.append(f"{mib(route['idle_kib'])} (route proxy)" if route else "not run")
    else:
        out.append(mib(rss["idle_kib"]) if rss else "not run")
    if mode == "nginx":
        out += [connect_na, connect_na]
    elif rss:
        per = (rss["held_kib"] - rss["idle_kib"]) / rss["tunnels"]
        out.append(t.mark("rss", mode, f"{per:.1f} KiB"))
        out.append(f"{mib(rss['after_kib'])} (idle {mib(rss['idle_kib'])})")
    else:
        out += ["not run", "not run"]
    return out


# The targets of issue #12 for nonoproxy, in row order (a reminder beside the figures).
TARGETS = ["≥ 0.50, ≤ 100 µs", "≤ 0.06 ms", "≥ 0.85, ≤ 0.15 CPU-s/GB", "≥ 0.80", "≥ 0.50",
           "≥ 1.05 × nginx, ≤ 33 µs", "≥ 1.05 × nginx", "≤ +0.15 ms", "≤ 2.5 / ≤ 3.5 MiB",
           "≤ 16 KiB", "within 1 MiB of idle"]


def row_labels(rows):
    hold = rows.get(("rss", "nonoproxy"), [{}])[-1]
    tunnels = int(hold.get("tunnels", 256))
    linger = int(hold.get("linger_s", 10))
    size_mib = int(rows.get(("bulk1", "direct"), [{}])[-1].get("bulk_mib", 1024))
    size = f"bulk {size_mib // 1024} GiB" if size_mib % 1024 == 0 else f"bulk {size_mib} MiB"
    return [
        ("CONNECT + 1 GET, 16 clients", "ratio to direct, CPU µs/tunnel"),
        ("CONNECT phase p50, 1 client", "ms, CONNECT sent → 200 read"),
        (f"{size}, 1 tunnel", "ratio to direct, CPU-s/GB"),
        (f"{size}, 8 tunnels", "ratio to direct"),
        ("forward keep-alive, 16 clients", "ratio to direct, CPU µs/request"),
        ("route + injection → HTTPS, 16 keep-alive clients", "× nginx, CPU µs/request"),
        ("same with `wrk -t2 -c16`", "× nginx, CPU µs/request"),
        ("SSE time to first byte over direct", "ms added (median)"),
        ("RSS idle, CONNECT only / with one TLS route", "VmRSS"),
        (f"RSS per idle tunnel ({tunnels} open)", "KiB"),
        (f"RSS {linger} s after those {tunnels} close", "VmRSS"),
    ]


def direct_line(rows):
    """The direct-traffic values the ratios are taken against."""
    parts = []
    for row, label, unit in (("setup16", "CONNECT+GET 16 clients", "conn/s"),
                             ("bulk1", "bulk 1 stream", "MiB/s"),
                             ("bulk8", "bulk 8 streams", "MiB/s"),
                             ("fwd16", "HTTP keep-alive 16 clients", "req/s"),
                             ("route16", "HTTPS keep-alive 16 clients", "req/s"),
                             ("sse", "SSE first byte", "ms")):
        d = rows.get((row, "direct"))
        if d:
            v = d[-1]["value"]
            parts.append(f"{label} {v:.3f} {unit}" if unit == "ms" else f"{label} {v:,.0f} {unit}")
    return "; ".join(parts)


def render(rows, meta, args):
    t = Table(rows)
    for n in (NA_CONNECT, NA_FORWARD, NA_ROUTE):  # footnotes numbered in row order
        t.note(n)
    columns = [cells_for(t, m) for m in PROXIES]
    labels = row_labels(rows)
    lines = ["| row | unit | " + " | ".join(PROXIES) + " | nonoproxy target |",
             "|---|---|" + "---|" * (len(PROXIES) + 1)]
    for i, (label, unit) in enumerate(labels):
        lines.append(f"| {label} | {unit} | " + " | ".join(c[i] for c in columns)
                     + f" | {TARGETS[i]} |")
    for i, n in enumerate(t.notes):
        lines.append("")
        lines.append(f"{'¹²³⁴⁵⁶'[i]} {n}.")
    for m in ["direct"] + PROXIES:
        failed = sum(int(d.get("errors", 0)) for d in rows.get(("sweep", m), []))
        if failed:
            t.errors.append(f"plot sweep via {m}: {failed} failed cycles")
    for words in meta:
        if words[0] == "part":
            t.errors.append(f"part {words[1]} did not finish cleanly ({words[2]})")
    lines.append("")
    if t.errors:
        lines.append("**Failed requests — these rows are invalid:** " + "; ".join(t.errors) + ".")
    else:
        lines.append("0 errors: every request, tunnel and transfer of every row succeeded.")
    lines.append("")
    lines.append("Direct traffic in the same run (the ratios' denominators): " + direct_line(rows) + ".")
    versions = [" ".join(w[2:]) for w in meta if w[0] == "version"]
    load = {w[1]: " ".join(w[2:]) for w in meta if w[0] == "load"}
    rounds = int(rows.get(("setup16", "direct"), [{"rounds": 0}])[-1].get("rounds", 0))
    lines.append("")
    lines.append(
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{'`--quick` (1 round, short windows)' if args.quick else f'medians of {rounds} runs'}, "
        f"{os.cpu_count()} CPUs, Linux {platform.release()}, {args.seconds} s in all, "
        f"load average (1/5/15 min) {load.get('start', '?')} at the start and "
        f"{load.get('end', '?')} at the end; " + "; ".join(versions) + ".")
    return "\n".join(lines) + "\n", not t.errors


def write_doc(path, table):
    """Replace the region between the markers of path with table (create the file if needed)."""
    block = f"{BEGIN}\n{table}{END}"
    text = open(path, encoding="utf-8").read() if os.path.exists(path) else ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        text = head + block + tail
    else:
        text = text + ("\n" if text and not text.endswith("\n") else "") + block + "\n"
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def plot(rows, path):
    """docs/perf/tunnels.png: tunnels/s and p99 of a CONNECT + GET cycle against clients."""
    if shutil.which("gnuplot") is None:
        print("report: gnuplot is not installed: no plot", file=sys.stderr)
        return False
    modes = [m for m in ["direct", "nonoproxy", "tinyproxy", "squid"] if rows.get(("sweep", m))]
    with tempfile.TemporaryDirectory() as d:
        for m in modes:
            with open(os.path.join(d, m + ".dat"), "w", encoding="utf-8") as f:
                for r in sorted(rows[("sweep", m)], key=lambda r: r["conc"]):
                    f.write(f"{int(r['conc'])} {r['value']:.1f} {r['p99']:.4f}\n")
        rate = ", ".join(f"'{d}/{m}.dat' using 1:2 with linespoints lw 2 title '{m}'" for m in modes)
        p99 = ", ".join(f"'{d}/{m}.dat' using 1:3 with linespoints lw 2 title '{m}'" for m in modes)
        script = f"""
set terminal pngcairo size 1200,480 font ',10'
set output '{path}'
set multiplot layout 1,2 title 'CONNECT + GET + close per client, loopback (nginx: no CONNECT)'
set logscale x 2
set xrange [0.8:320]
set xlabel 'concurrent clients'
set grid
set key top left
set ylabel 'tunnels/s'
set yrange [0:*]
plot {rate}
set logscale y
set yrange [*:*]
set ylabel 'p99 cycle latency, ms'
plot {p99}
unset multiplot
"""
        subprocess.run(["gnuplot"], input=script, text=True, check=True)
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--seconds", default="?")
    ap.add_argument("--build", default="")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--doc")
    ap.add_argument("--plot")
    args = ap.parse_args()
    rows, meta = parse(args.results)
    table, ok = render(rows, meta, args)
    print(table)
    if args.plot and plot(rows, args.plot):
        print(f"report: wrote {args.plot}")
    if args.doc:
        write_doc(args.doc, table)
        print(f"report: wrote the table into {args.doc}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
