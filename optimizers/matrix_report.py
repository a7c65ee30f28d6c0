"""The conformance matrix as a person reads it: ``matrix.md`` opens with the table — one line per implementation,
grouped by library, its verdict and the one-line reason — then one short section per finding with its
counterexample; each row's full detail (every failed test, its message, its standalone reproducer) goes to a file of
its own under ``rows/``. The verdicts are defined here and in the file itself (``TAXONOMY``).

A row's verdict comes from the suite's run (``optimizers/matrix.py``: what failed, and whether a variant rule
explains it) and, for an update that differs from the rule, from a hand assessment of the library's source
(``optimizers/assessments.py``): *likely bug* only with the offending upstream line cited.
"""
from __future__ import annotations

import math
import os
import re

#: the verdicts, worst first, with what each means; the table's legend
TAXONOMY = {
    "crashes": "the class raised while the suite drove it (other than refusing a value), or the run did not finish",
    "likely bug": "the counterexample contradicts the library's own documentation or the paper it cites; the "
                  "offending upstream line is cited",
    "differs (not assessed)": "the updates leave the rule and no variant or assessment explains it yet",
    "different formula": "the library documents another formula than the rule (cited); not a bug, not this rule",
    "convention": "differs by a named convention, and conforms to the variant rule that encodes it",
    "convention (no variant rule yet)": "reading the source shows a named convention (the reason says which) that "
                                        "no variant rule encodes yet, so the suite has not confirmed it",
    "precision": "the updates conform but for lower-precision arithmetic inside (float32 in float64 parameters): the "
                 "largest relative error is given",
    "subnormals": "the updates conform but where subnormal numbers are fed or formed: it flushes them to zero",
    "known deviation": "the rest conforms; torch's named known deviations concern this class and path (torch's rows), "
                       "or this row deviates as torch does on the cases one of them names",
    "side effects": "the updates conform; a contract check fails (writes into .grad, sets p.grad = None, state lost "
                    "in a state_dict round trip, a param group's hyperparameter ignored for the constructor's)",
    "validation only": "the updates conform; it refuses values inside the rule's domain (searched with them held "
                       "out) or accepts values outside it",
    "conforms": "every test passed",
    "not run": "its library is not installed",
}
#: the suite's automatic verdict (``matrix.verdict``) → the taxonomy's
FROM_RUN = {"conforms": "conforms", "differs by convention": "convention", "differs (updates)": "differs (not assessed)",
            "differs (float64 precision)": "precision", "differs (subnormals)": "subnormals",
            "differs (known deviation)": "known deviation", "differs (side effects)": "side effects",
            "differs (domain)": "validation only", "differs (validation)": "validation only", "crashes": "crashes",
            "not run": "not run"}
ASSESSABLE = {"differs (not assessed)", "precision", "subnormals"}


def assessment_of(row: dict, assessments: dict) -> dict | None:
    """The hand assessment of a row: by its entry's name, or by its class for the class's default row."""
    if row.get("name") in assessments:
        return assessments[row["name"]]
    return assessments.get(row["class"]) if row.get("path") in ("", "default", None) else None


def classify(row: dict, assessment: dict | None) -> tuple[str, str]:
    """The row's verdict and one-line reason: the run's verdict, refined by a hand assessment where the updates
    differ (a *likely bug* needs its cited source line, else it stays unassessed; a convention the suite has not
    confirmed with a variant rule says so)."""
    verdict = FROM_RUN.get(row["verdict"], row["verdict"])
    reason = one_line(row)
    if assessment and verdict in ASSESSABLE:
        kind = assessment.get("verdict")
        if kind == "likely bug" and not assessment.get("source"):
            kind = None
        if kind == "convention":
            kind = "convention (no variant rule yet)"
        if kind in TAXONOMY:
            verdict, reason = kind, assessment.get("reason") or reason
    elif assessment and verdict == "convention":
        reason = assessment.get("reason") or reason
    if verdict == "precision":
        reason += f" (largest relative error {relative_error(row):.2g})"
    if verdict == "convention" and row.get("variant"):
        reason = f"conforms to rule `{row['variant']}`" + (f"; {reason}" if reason else "")
    return verdict, reason


def relative_error(row: dict) -> float:
    errors = [f["error"] / max(abs(f.get("expected") or 0.0), 1e-300) for f in row.get("findings", [])
              if isinstance(f.get("error"), (int, float)) and math.isfinite(f["error"])]
    return max(errors, default=float("nan"))




def one_line(row: dict) -> str:
    """The row's worst finding, in a line: what the suite's message says."""
    if row["verdict"] == "not run":
        return row.get("reason", "")
    shown = [f for f in row.get("findings", []) if f["category"] != "known deviation"] or row.get("findings", [])
    if row["verdict"] == "known deviation" or (shown and shown[0]["category"] == "known deviation"):
        names = [n for f in row["findings"] if f["category"] == "known deviation"
                 for n in (f.get("torch's known deviations") or [f["test"]])]
        return "known deviations: " + ", ".join(dict.fromkeys(names))
    from optimizers.matrix import CATEGORIES   # a finding's category, worst first: the reason shows the worst one
    shown = sorted(shown, key=lambda f: CATEGORIES.index(f["category"]) if f["category"] in CATEGORIES else 99)
    return cell(shown[0]["what"], 140) if shown else ""


def cell(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= limit else text[:limit - 1] + "…"


def row_file(row: dict) -> str:
    """The row's detail file under ``rows/``: library, class and path, as a file name."""
    name = f"{row['library']}-{row['class']}" + (f"-{row['path']}" if row["path"] not in ("", "default") else "")
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name) + ".md"


def scrub(text: str, root: str) -> str:
    """No absolute path of this machine in a committed file: the checkout named relatively, a picture of the run
    (a temporary file) left out, another temporary directory named as such."""
    text = re.sub(r"^.*picture: /\S+.*(\n|$)", "", str(text), flags=re.M)
    text = text.replace(root + os.sep, "").replace(root, ".")
    return re.sub(r"/tmp/[\w.-]+", "<temporary directory>", text)


def table(data: dict, assessments: dict) -> list[str]:
    lines = []
    by_library: dict[str, list[tuple[int, dict]]] = {}
    for i, r in enumerate(data["rows"]):
        by_library.setdefault(r["library"], []).append((i, r))
    for library, rows in by_library.items():
        version = rows[0][1].get("version") or "not installed"
        lines += [f"### {library} {version}", "", "| class | path | rule | verdict | reason |", "|---|---|---|---|---|"]
        for _, r in rows:
            verdict, reason = classify(r, assessment_of(r, assessments))
            link = f"[{verdict}](rows/{row_file(r)})" if r.get("findings") else verdict
            lines.append(f"| `{r['class']}` | {r['path']} | {r['rule']} | **{link}** | {cell(reason)} |")
        lines.append("")
    return lines


def findings_section(data: dict, assessments: dict, root: str) -> list[str]:
    """One short section per row that does not conform: its verdict, reason, cited source, and the counterexample's
    first lines; the rest in its row file."""
    lines = []
    for r in data["rows"]:
        verdict, reason = classify(r, assessment_of(r, assessments))
        if verdict in ("conforms", "not run") or not r.get("findings"):
            continue
        a = assessment_of(r, assessments) or {}
        lines += [f"### {r['class']}" + (f" [{r['path']}]" if r["path"] not in ("", "default") else "")
                  + f" — {verdict}", "", reason + ("" if reason.endswith(".") else "."), ""]
        if a.get("source") and verdict == "likely bug":
            lines += [f"Source: {a['source']}", ""]
        f = next((x for x in r["findings"] if x.get("message")), r["findings"][0])
        counterexample = (f.get("message") or f.get("what") or "").split("Reproduce without the suite:")[0]
        shown = [ln for ln in counterexample.strip().splitlines()[1:6]]
        if shown:
            lines += ["```"] + [scrub(ln.rstrip(), root) for ln in shown] + ["```", ""]
        if f.get("reproduces"):
            lines += [f"Standalone reproducer in [rows/{row_file(r)}](rows/{row_file(r)}) (fails outside the "
                      f"suite: {scrub(f['reproduces'], root)}).", ""]
    return lines


def row_detail(r: dict, assessment: dict | None, root: str) -> str:
    verdict, reason = classify(r, assessment)
    lines = [f"# {r['class']}" + (f" [{r['path']}]" if r["path"] not in ("", "default") else "")
             + f" — rule `{r['rule']}`: {verdict}", "", reason, "",
             f"Library {r['library']} {r.get('version') or ''}; mapping: {r.get('mapping')}; claim: {r.get('claim')}.",
             ""]
    if assessment:
        lines += [f"Assessment of the source: {assessment.get('verdict')} — {assessment.get('reason')}"
                  + (f" Source: {assessment['source']}." if assessment.get("source") else "")
                  + (f" Variant: {assessment['variant']}." if assessment.get("variant") else ""), ""]
    if r.get("note"):
        lines += [f"Reading the source: {r['note']}", ""]
    if r.get("variant"):
        lines += [f"Conforms in its updates to rule `{r['variant']}` (`reference/variants.py`); the findings against "
                  f"`{r['rule']}` follow.", ""]
    if r.get("held"):
        lines += ["Held at the rule's defaults (the class does not take them): "
                  + ", ".join(f"{k}={v!r}" for k, v in r["held"].items()), ""]
    for f in r.get("findings", []):
        head = f"## {f['category']}: `{f['test']}`"
        lines += [head, "", cell(scrub(f["what"], root), 600), ""]
        if f.get("link"):
            lines += [f"Upstream: {f['link']}", ""]
        if f.get("error") is not None:
            lines += [f"Error {f['error']:.3g}, tolerance {f.get('tolerance') or 0:.3g}.", ""]
        message = (f.get("message") or "").split("Reproduce without the suite:")[0].strip().splitlines()[1:]
        if message:
            lines += ["```"] + [scrub(ln, root) for ln in message] + ["```", ""]
        if f.get("reproducer"):
            lines += [f"Reproducer (standalone: needs only the library; fails outside the suite: "
                      f"{scrub(f.get('reproduces', 'not checked'), root)}):", "", "```python",
                      scrub(f["reproducer"], root), "```", ""]
    return "\n".join(lines) + "\n"


def markdown(data: dict, assessments: dict, root: str, header: list[str]) -> str:
    counts: dict[str, int] = {}
    for r in data["rows"]:
        v = classify(r, assessment_of(r, assessments))[0]
        counts[v] = counts.get(v, 0) + 1
    lines = ["# Conformance matrix of the optimizer ecosystem", "", *header, "",
             "In all: " + ", ".join(f"{n} {v}" for v, n in sorted(counts.items(), key=lambda kv: list(TAXONOMY)
                                                                  .index(kv[0]) if kv[0] in TAXONOMY else 99)) + ".",
             "", "## The table", "", *table(data, assessments),
             "## Verdicts", "", *(f"- **{v}**: {what}" for v, what in TAXONOMY.items()), "",
             "## Findings", "", *findings_section(data, assessments, root)]
    return "\n".join(lines).rstrip() + "\n"
