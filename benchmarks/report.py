"""Read pytest-benchmark JSON written by ``pytest benchmarks --benchmark-json FILE``.

    python -m benchmarks.report RESULTS.json [--out DIR]
        writes DIR/report.md (one row per rule, configuration, implementation, size, dtype, device: median time,
        GB/s, % of roofline) and DIR/*.png (time per element and % of roofline against size, one line per
        implementation); DIR defaults to RESULTS-report/ beside the file.

    python -m benchmarks.report OLD.json NEW.json [--threshold PERCENT]
        compares the step cases both files hold and lists those whose median is more than PERCENT (default 10)
        slower in NEW, beyond the noise (NEW's first quartile above OLD's third): exit 1 if there is any, else 0.

Exit 2, with one line saying why, for a missing or unreadable file, or one that is not pytest-benchmark JSON of
these benchmarks.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from benchmarks.configurations import CONFIGURATIONS
from benchmarks.implementations import TORCH_PATHS

PROG = "python -m benchmarks.report"
KINDS = ("step", "copy", "empty", "oracle")
# the columns of a step row, and the fields each needs from extra_info
STEP_FIELDS = ("rule", "configuration", "implementation", "size", "dtype", "device", "median_s", "gbps",
               "roofline_fraction", "elements")
ORACLE_FIELDS = ("rule", "dtype", "median_s", "reference_s")
IMPLEMENTATION_ORDER = (*TORCH_PATHS, "compiled", "reference")
RULE_ORDER = tuple(CONFIGURATIONS)


class BadInput(Exception):
    """A file the report cannot use; the message is one line."""


@dataclass(frozen=True)
class Results:
    path: Path
    steps: list[dict]
    copies: list[dict]
    oracle: list[dict]            # the tolerance's own cost per rule and dtype (benchmarks/test_oracle.py)
    empty: dict[str, float]       # device -> harness overhead per round, seconds
    machine: dict
    datetime: str


def _valid(name: str, value) -> bool:
    if name in ("median_s", "elements", "size", "reference_s"):
        return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 and math.isfinite(value)
    if name in ("gbps", "roofline_fraction"):
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return isinstance(value, str) and value != ""


def load(path: str) -> Results:
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise BadInput(f"cannot read {path}: {e.strerror or e}") from None
    try:
        data = json.loads(raw)
    except ValueError as e:   # JSONDecodeError, or bytes that are not text
        where = f" at line {e.lineno}" if isinstance(e, json.JSONDecodeError) else ""
        raise BadInput(f"{path} is not JSON ({getattr(e, 'msg', 'not UTF-8 text')}{where}); expected the file "
                       "pytest benchmarks --benchmark-json FILE writes") from None
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise BadInput(f"{path} is not pytest-benchmark JSON (no 'benchmarks' list); expected the file "
                       "pytest benchmarks --benchmark-json FILE writes")
    by_kind: dict[str, list[dict]] = defaultdict(list)
    for entry in data["benchmarks"]:
        info = entry.get("extra_info") if isinstance(entry, dict) else None
        if isinstance(info, dict) and info.get("kind") in KINDS:
            stats = entry.get("stats") if isinstance(entry.get("stats"), dict) else {}
            quartiles = [stats.get("q1"), stats.get("q3")]
            if all(_valid("median_s", q) for q in quartiles):
                info = {**info, "q1_s": quartiles[0], "q3_s": quartiles[1]}
            by_kind[info["kind"]].append(info)
    oracle = [o for o in by_kind["oracle"] if all(_valid(f, o.get(f)) for f in ORACLE_FIELDS)]
    if not by_kind["step"] and not oracle:
        raise BadInput(f"{path} holds no optimizer step results of these benchmarks (extra_info kind 'step' or "
                       "'oracle'); expected the file pytest benchmarks --benchmark-json FILE writes")
    for info in by_kind["step"]:
        wrong = [f for f in STEP_FIELDS if not _valid(f, info.get(f))]
        if wrong:
            raise BadInput(f"{path}: a step result has no valid {', '.join(wrong)} in its extra_info; was it written "
                           "by another version of these benchmarks?")
    empty = {info["device"]: info["median_s"] for info in by_kind["empty"]
             if isinstance(info.get("device"), str) and _valid("median_s", info.get("median_s"))}
    copies = [c for c in by_kind["copy"] if all(_valid(f, c.get(f)) for f in ("device", "dtype", "size", "median_s"))
              and _valid("gbps", c.get("gbps"))]
    machine = data.get("machine_info") if isinstance(data.get("machine_info"), dict) else {}
    return Results(p, by_kind["step"], copies, oracle, empty, machine, str(data.get("datetime", "")))


# ---- formatting ----------------------------------------------------------------------------------------------------
def seconds(s: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if s >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s / 1e-9:.3g} ns"


def _order(info: dict) -> tuple:
    rule, conf, impl = info["rule"], info["configuration"], info["implementation"]
    configs = list(CONFIGURATIONS.get(rule, {}))
    return (info["device"], RULE_ORDER.index(rule) if rule in RULE_ORDER else len(RULE_ORDER), rule,
            configs.index(conf) if conf in configs else len(configs), conf, info["dtype"] != "float32",
            info["dtype"], info["size"], _impl_rank(impl), impl)


def _impl_rank(name: str) -> int:
    return IMPLEMENTATION_ORDER.index(name) if name in IMPLEMENTATION_ORDER else len(IMPLEMENTATION_ORDER)


def _size(info: dict) -> str:
    return info.get("size_label") or str(info["size"])


def _notes(info: dict) -> str:
    notes = []
    if info.get("steps_failed"):
        notes.append(f"**{info['steps_failed']} of {info.get('steps_checked', '?')} timed steps did not update the "
                     f"parameters** (least changed {info.get('least_changed_fraction', 0):.0%})")
    if info.get("compile_s") is not None:
        notes.append(f"compiled in {info['compile_s']:.1f} s")
    if info.get("roofline_source") not in (None, "copy benchmark"):
        notes.append(f"roofline {info['roofline_source']}")
    return "; ".join(notes)


def oracle_markdown(results: Results) -> list[str]:
    """The oracle's table: the tolerance of one 20-step, four-parameter example per rule and dtype."""
    if not results.oracle:
        return []
    lines = ["## The oracle's cost", "",
             "Median time of the tolerance (error bound and judgement) of one trajectory example — 20 steps, four "
             "parameters (`benchmarks/test_oracle.py`) — beside one run of the reference rule on it.", "",
             "| rule | dtype | tolerance | reference run | ratio | judged |", "|---|---|---:|---:|---:|---|"]
    for o in sorted(results.oracle, key=lambda o: (o["dtype"], o["rule"])):
        lines.append(f"| {o['rule']} | {o['dtype']} | {seconds(o['median_s'])} | {seconds(o['reference_s'])} | "
                     f"{o['median_s'] / o['reference_s']:.1f} | {'no' if o.get('judged') is False else 'yes'} |")
    mean = sum(o["median_s"] for o in results.oracle) / len(results.oracle)
    return lines + ["", f"Mean over the {len(results.oracle)} cases: {seconds(mean)}.", ""]


def markdown(results: Results) -> str:
    steps = sorted(results.steps, key=_order)
    if not steps:
        return "\n".join(["# The oracle's benchmarks", "", f"`{results.path.name}`, {results.datetime}", "",
                          *oracle_markdown(results)])
    first = steps[0]
    lines = ["# Optimizer step benchmarks", "",
             f"`{results.path.name}`, {results.datetime}: torch {first.get('torch', '?')}, "
             f"{first.get('threads', '?')} thread(s); "
             + "; ".join(f"{d}: {n}" for d, n in sorted({(s['device'], s.get('device_name', '?')) for s in steps})),
             ""]
    lines += oracle_markdown(results)
    if results.empty:
        lines += ["Harness overhead (an empty step through the same rounds): "
                  + ", ".join(f"{d} {seconds(s)}" for d, s in sorted(results.empty.items()))
                  + ". Times near it measure the harness, not the step.", ""]
    lines += ["Median of the timed rounds; GB/s is the rule's minimum traffic (read θ, g and each state buffer, "
              "write θ and each buffer) over that time; % of roofline is that over the bandwidth of the fastest "
              "round of a contiguous copy of the same bytes measured in the same run.", "",
              "| rule | configuration | implementation | size | dtype | device | median | GB/s | % of roofline | notes |",
              "|---|---|---|---:|---|---|---:|---:|---:|---|"]
    for s in steps:
        lines.append(f"| {s['rule']} | {s['configuration']} | {s['implementation']} | {_size(s)} | {s['dtype']} | "
                     f"{s['device']} | {seconds(s['median_s'])} | {s['gbps']:.3g} | {100 * s['roofline_fraction']:.1f} | "
                     f"{_notes(s)} |")
    if results.copies:
        lines += ["", "## Roofline: copy bandwidth", "",
                  "| device | dtype | size | bytes moved | median | GB/s at the median | GB/s, fastest round (the roofline) |",
                  "|---|---|---:|---:|---:|---:|---:|"]
        for c in sorted(results.copies, key=lambda c: (c.get("device", ""), c.get("dtype", ""), c.get("size", 0),
                                                        c.get("bytes_per_step", 0))):
            lines.append(f"| {c.get('device')} | {c.get('dtype')} | {_size(c) if 'size' in c else '?'} | "
                         f"{c.get('bytes_per_step', 0):,} | {seconds(c.get('median_s', math.nan))} | "
                         f"{c.get('gbps', math.nan):.3g} | {c.get('best_gbps', math.nan):.3g} |")
    return "\n".join(lines) + "\n"


# ---- plots ---------------------------------------------------------------------------------------------------------
def plots(results: Results, out: Path) -> list[Path]:
    """One PNG per (device, dtype, rule): a row per configuration, time per element and % of roofline against size,
    one line per implementation; and a summary per (device, dtype): % of roofline of each rule's first
    configuration."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    impls = sorted({s["implementation"] for s in results.steps}, key=lambda n: (_impl_rank(n), n))
    colour = {name: f"C{i}" for i, name in enumerate(impls)}
    marker = dict(zip(impls, "osD^vPX*"))
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for s in results.steps:
        groups[(s["device"], s["dtype"], s["rule"])].append(s)
    written = []

    def series(rows, value):
        """Per implementation, its points; results whose timed steps did not update θ are a separate series drawn
        dotted, so a fast no-op cannot pass for a fast step."""
        by_impl = defaultdict(list)
        for r in rows:
            by_impl[(r["implementation"], bool(r.get("steps_failed")))].append((r["elements"], value(r)))
        return {k: sorted(v) for k, v in sorted(by_impl.items(), key=lambda kv: (_impl_rank(kv[0][0]), kv[0]))}

    def line(ax, key, pts):
        impl, failed = key
        ax.plot(*zip(*pts), marker=marker[impl], color=colour[impl], ls=":" if failed else "-",
                mfc="none" if failed else colour[impl], label=f"{impl} (θ not updated!)" if failed else impl)

    def draw(ax_time, ax_roof, rows, device, title):
        for key, pts in series(rows, lambda r: r["median_s"] / r["elements"] * 1e9).items():
            line(ax_time, key, pts)
        for key, pts in series(rows, lambda r: 100 * r["roofline_fraction"]).items():
            line(ax_roof, key, pts)
        if device in results.empty:
            xs = sorted({r["elements"] for r in rows})
            ax_time.plot(xs, [results.empty[device] / x * 1e9 for x in xs], ls="--", color="grey",
                         label="empty step (harness)")
        ax_time.set(xscale="log", yscale="log", title=f"{title}: time per element", xlabel="elements",
                    ylabel="ns per element")
        ax_roof.set(xscale="log", title=f"{title}: % of copy bandwidth", xlabel="elements", ylabel="% of roofline")
        ax_roof.set_ylim(bottom=0)
        for ax in (ax_time, ax_roof):
            ax.grid(True, which="major", alpha=0.3)

    for (device, dtype, rule), rows in sorted(groups.items(), key=lambda kv: _order(kv[1][0])):
        configs = sorted({r["configuration"] for r in rows}, key=lambda c: _order({**rows[0], "configuration": c}))
        fig, axes = plt.subplots(len(configs), 2, figsize=(12, 4 * len(configs)), squeeze=False)
        for (ax_time, ax_roof), conf in zip(axes, configs):
            draw(ax_time, ax_roof, [r for r in rows if r["configuration"] == conf], device, f"{rule}/{conf}")
        for ax_time, _ in axes:
            ax_time.legend(fontsize=8)
        fig.suptitle(f"{rule} — {dtype} on {device} ({rows[0].get('device_name', '')}, "
                     f"{rows[0].get('threads', '?')} thread(s))")
        fig.tight_layout()
        path = out / f"{device}-{dtype}-{rule}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)

    for device, dtype in sorted({(d, t) for d, t, _ in groups}):
        rules = sorted({r for d, t, r in groups if (d, t) == (device, dtype)},
                       key=lambda r: RULE_ORDER.index(r) if r in RULE_ORDER else len(RULE_ORDER))
        cols = min(4, len(rules))
        nrows = math.ceil(len(rules) / cols)
        fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 3.2 * nrows), squeeze=False)
        for ax, rule in zip(axes.flat, rules):
            rows = groups[(device, dtype, rule)]
            first = min((r["configuration"] for r in rows), key=lambda c: _order({**rows[0], "configuration": c}))
            for key, pts in series([r for r in rows if r["configuration"] == first],
                                   lambda r: 100 * r["roofline_fraction"]).items():
                line(ax, key, pts)
            ax.set(xscale="log", title=f"{rule}/{first}", xlabel="elements", ylabel="% of roofline")
            ax.set_ylim(bottom=0)
            ax.grid(True, alpha=0.3)
        for ax in list(axes.flat)[len(rules):]:
            ax.axis("off")
        legend = {}
        for ax in axes.flat:
            for handle, label in zip(*ax.get_legend_handles_labels()):
                legend.setdefault(label, handle)
        fig.legend(legend.values(), legend.keys(), loc="upper right", fontsize=8)
        fig.suptitle(f"% of copy bandwidth, each rule's first configuration — {dtype} on {device}")
        fig.tight_layout(rect=(0, 0, 0.9, 0.96))
        path = out / f"{device}-{dtype}-summary.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written


# ---- comparison ----------------------------------------------------------------------------------------------------
def _key(info: dict) -> tuple:
    return (info["device"], info["rule"], info["configuration"], info["implementation"], info["size"], info["dtype"])


def regressed(old: dict, new: dict, threshold: float) -> bool:
    """Slower by more than ``threshold`` percent at the median, and not within the noise: the new first quartile lies
    above the old third quartile (where the files have quartiles)."""
    if new["median_s"] <= old["median_s"] * (1 + threshold / 100):
        return False
    return not ("q1_s" in new and "q3_s" in old) or new["q1_s"] > old["q3_s"]


def _context(results: Results) -> dict:
    if not results.steps:
        return {}
    s = results.steps[0]
    return {"torch": s.get("torch"), "threads": s.get("threads"),
            "devices": ", ".join(sorted({str(x.get("device_name")) for x in results.steps}))}


def compare(old: Results, new: Results, threshold: float) -> tuple[str, int]:
    """A Markdown table of the step cases that regressed in ``new``; and their count."""
    before = {_key(s): s for s in old.steps}
    after = {_key(s): s for s in new.steps}
    common = sorted(before.keys() & after.keys(), key=lambda k: _order(after[k]))
    slower = [k for k in common if regressed(before[k], after[k], threshold)]
    faster = [k for k in common if regressed(after[k], before[k], threshold)]
    lines = [f"{len(common)} step cases in both {old.path.name} and {new.path.name} "
             f"({len(after.keys() - before.keys())} only in the new, {len(before.keys() - after.keys())} only in the "
             f"old): {len(slower)} slower by more than {threshold:g}% (median, beyond the quartiles), {len(faster)} "
             "faster."]
    a, b = _context(old), _context(new)
    lines += [f"note: {k} differ: {a[k]} in {old.path.name}, {b[k]} in {new.path.name}" for k in a
              if k in b and a[k] != b[k]]
    oracle_before = {(o["rule"], o["dtype"]): o for o in old.oracle}
    oracle_after = {(o["rule"], o["dtype"]): o for o in new.oracle}
    oracle_slower = sorted(k for k in oracle_before.keys() & oracle_after.keys()
                           if regressed(oracle_before[k], oracle_after[k], threshold))
    if oracle_before.keys() & oracle_after.keys():
        lines.append(f"oracle: {len(oracle_before.keys() & oracle_after.keys())} cases in both, {len(oracle_slower)} "
                     f"slower by more than {threshold:g}%.")
    for k in oracle_slower:
        o, n = oracle_before[k], oracle_after[k]
        lines.append(f"- oracle {k[0]} {k[1]}: {seconds(o['median_s'])} -> {seconds(n['median_s'])} "
                     f"(+{100 * (n['median_s'] / o['median_s'] - 1):.0f}%)")
    if slower:
        lines += ["", "| rule | configuration | implementation | size | dtype | device | old median | new median | "
                      "change |", "|---|---|---|---:|---|---|---:|---:|---:|"]
        for k in slower:
            o, n = before[k], after[k]
            lines.append(f"| {n['rule']} | {n['configuration']} | {n['implementation']} | {_size(n)} | {n['dtype']} | "
                         f"{n['device']} | {seconds(o['median_s'])} | {seconds(n['median_s'])} | "
                         f"+{100 * (n['median_s'] / o['median_s'] - 1):.0f}% |")
    return "\n".join(lines) + "\n", len(slower) + len(oracle_slower)


# ---- command line --------------------------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, message):   # one line, exit 2, as for a bad file
        self.exit(2, f"{PROG}: {message} (usage: {PROG} RESULTS.json [--out DIR] | OLD.json NEW.json "
                     "[--threshold PERCENT])\n")


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog=PROG, description=__doc__.split("\n\n")[0],
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", metavar="FILE.json", help="RESULTS, or OLD and NEW to compare")
    parser.add_argument("--out", metavar="DIR", help="where report.md and the PNGs go (default RESULTS-report/)")
    parser.add_argument("--threshold", type=float, default=10.0, metavar="PERCENT",
                        help="comparing: flag cases this many percent slower (default 10)")
    args = parser.parse_args(argv)
    if len(args.files) > 2:
        parser.error(f"give one results file, or two to compare; got {len(args.files)}")
    if not args.threshold >= 0 or math.isinf(args.threshold):
        parser.error(f"--threshold {args.threshold:g}: give a percentage >= 0")
    try:
        loaded = [load(f) for f in args.files]
    except BadInput as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 2
    if len(loaded) == 2:
        table, slower = compare(*loaded, args.threshold)
        print(table, end="")
        return 1 if slower else 0
    results = loaded[0]
    out = Path(args.out) if args.out else results.path.with_name(results.path.stem + "-report")
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.md").write_text(markdown(results))
    except OSError as e:
        print(f"{PROG}: cannot write to {out}: {e.strerror or e}", file=sys.stderr)
        return 2
    print(f"wrote {out / 'report.md'} ({len(results.steps)} step results)")
    try:
        written = plots(results, out)
    except ImportError:
        print(f"{PROG}: matplotlib is not installed, so no plots were drawn (pip install matplotlib)",
              file=sys.stderr)
        return 0
    print(f"wrote {len(written)} plots in {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
