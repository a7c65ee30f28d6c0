"""Pictures of closed-loop runs on two-parameter problems, drawn as the documents draw them (000's ``plot_gd_steps``,
004's ``show_trace_2d``): on the left the loss contour with the trajectories x_0 … x_T (a marker per step, the start
and the ends marked), on the right the loss per step.

    from properties import plots
    plots.draw("out.png", problem, {"reference rule 'sgd'": run_a, "torch.optim.SGD": run_b.xs}, "title")

When a property of ``properties/quadratics.py`` fails on a problem with exactly two coordinates, ``failure()`` hands
its NonConformance to ``pictured``: the message gains a line ``picture: <path>``, and the picture — the reference
rule and the implementation, each run in closed loop on ∇f of the same problem from the same start with the same
hyperparameters and learning rates, the failing step marked — is drawn when pytest reports the failure (a
Hypothesis search formats every failing example it meets while shrinking; only the one reported is drawn). Where
the failing comparison fed the implementation replayed or transformed gradients (a lockstep comparison, −∇f, c·∇f, a
doubled element), the implementation is run again in closed loop for the picture, and its legend says so.

Pictures go to ``--plots DIR`` when given, else to one temporary directory per pytest process, named in the message.
Their names are the test id and a digest of the example (rule, runner, hyperparameters, problem, start, learning
rates, failing step), so that two examples never share a file.

``--plots DIR`` also draws passing runs: ONE picture per test — of the closed-loop runs on ∇f of two-coordinate
problems that the test made (``seen``, called by ``closed_loop``), the longest that moved — with the reference rule's
run beside it. Not one per example: a property test draws 10–25 examples, and a picture (0.25–0.5 s of CPU time,
measured on 2 shared cores; the first also imports matplotlib) costs more than most examples' checks. The run's
summary line says how many pictures were drawn and what they cost.
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

#: --plots DIR (None: pictures of failures only, into ``session_directory()``); set by ``configure``
DIRECTORY: Path | None = None
GRID = 100                 # contour grid points per axis (a 100×100 grid costs ≤ 0.1 s on the documents' surfaces)
LEVELS = 16
PAD = 0.08                 # margin around the trajectories, as a fraction of their extent
LOG_RANGE = 100.0          # a log loss axis when the values span more than this
VIEW_LIMIT = 50.0          # the view follows a run at most this many times the reference's extent (a diverging
                           # implementation would otherwise shrink the reference's path to a dot)
LOW_BANDS = 0.2            # the share of the picture that evenly spaced levels may leave in their lowest two bands
MINIMISER_ZOOM = 4.0       # the view takes in the minimiser if that widens it at most this many times
# the reference is drawn wide and pale beneath the others, so that a run on top of it leaves it visible
STYLES = ({"color": "#1f77b4", "marker": "o", "markersize": 6, "linestyle": "-", "linewidth": 4, "alpha": 0.55},
          {"color": "#d62728", "marker": "x", "markersize": 5, "linestyle": "--", "linewidth": 1.4},
          {"color": "#2ca02c", "marker": "^", "markersize": 4, "linestyle": ":", "linewidth": 1.4})

_session_dir: Path | None = None
_active: "Pictures | None" = None


def session_directory() -> Path:
    """Where pictures of failures go without --plots: one temporary directory per process, made on first use."""
    global _session_dir
    if _session_dir is None:
        _session_dir = Path(tempfile.mkdtemp(prefix="optimizer-conformance-pictures-"))
    return _session_dir


# ---- the problem's loss ------------------------------------------------------------------------------------------
def _x0(problem) -> np.ndarray | None:
    x0 = getattr(problem, "x0", None)
    if x0 is None:
        return None
    return np.asarray(x0.numpy() if hasattr(x0, "numpy") else x0, dtype=np.float64)


def two_coordinates(problem) -> bool:
    """A problem the picture can draw: its start has exactly two coordinates."""
    x0 = _x0(problem)
    return x0 is not None and x0.shape == (2,)


def loss_function(problem) -> Callable[[np.ndarray], np.ndarray] | None:
    """f on rows of points, (k, 2) → (k,), in float64; None where the problem states no f (a doubled element)."""
    from properties import quadratics as q

    if isinstance(problem, q.Quadratic):
        A, x_star, c = problem.A, problem.x_star, problem.c
        return lambda X: 0.5 * np.einsum("ki,ij,kj->k", X - x_star, A, X - x_star) + c
    if isinstance(problem, q.AbsValue):
        return lambda X: np.abs(X - problem.x_star) @ problem.c
    if isinstance(problem, q.Constant):
        return lambda X: np.zeros(len(X))
    f = getattr(getattr(problem, "problem", problem), "f", None)   # a Surface's document problem, or one itself
    if f is None:
        return None
    import torch

    vf = torch.func.vmap(f)

    def values(X):
        points = torch.as_tensor(np.asarray(X, dtype=np.float64))
        try:
            return vf(points).numpy()
        except Exception:                   # an f vmap cannot batch (data-dependent control flow): point by point
            return np.array([float(f(x)) for x in points])
    return values


def minimizer(problem) -> np.ndarray | None:
    """A global minimiser where the problem states one (a definite quadratic's x*, a document's ``minimizer``)."""
    from properties import quadratics as q

    if isinstance(problem, q.Quadratic):
        return problem.x_star if np.all(problem.lam > 0) else None
    if isinstance(problem, q.AbsValue):
        return problem.x_star
    m = getattr(getattr(problem, "problem", problem), "minimizer", None)
    if m is None:
        return None
    m = np.asarray(m.numpy() if hasattr(m, "numpy") else m, dtype=np.float64)
    return m if m.shape == (2,) else None


# ---- drawing ---------------------------------------------------------------------------------------------------------
def _points(run) -> np.ndarray:
    xs = np.asarray(getattr(run, "xs", run), dtype=np.float64)
    return np.where(np.isfinite(xs), xs, np.nan)


def _view(paths: list[np.ndarray], extra: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) corners of the view: every finite point of the first path (the reference) and of ``extra``
    (start, minimiser), then the other paths' points up to VIEW_LIMIT × that extent away."""
    base = np.vstack([paths[0], *[e[None] for e in extra]])
    base = base[np.all(np.isfinite(base), axis=1)]
    lo, hi = base.min(axis=0), base.max(axis=0)
    reach = VIEW_LIMIT * max(float(np.max(hi - lo)), 1e-12 + 1e-6 * float(np.max(np.abs(base))))
    for p in paths[1:]:
        p = p[np.all(np.isfinite(p), axis=1)]
        p = p[np.all((p >= lo - reach) & (p <= hi + reach), axis=1)]
        if len(p):
            lo, hi = np.minimum(lo, p.min(axis=0)), np.maximum(hi, p.max(axis=0))
    span = hi - lo
    if not np.max(span) > 0:                  # nothing moved (a constant f): a view a tenth of the start's size
        span = 0.1 * np.maximum(np.abs(lo), 1.0)
    span = np.where(span > 0, span, np.max(span))
    centre = (lo + hi) / 2
    return centre - span * (0.5 + PAD), centre + span * (0.5 + PAD)


def _levels(Z: np.ndarray) -> tuple[np.ndarray, bool] | None:
    """Contour levels for the grid values: evenly spaced, unless more than LOW_BANDS of the picture would lie in the
    lowest two bands (a large range of f: a steep wall or a far corner); then log-spaced above the grid's minimum.
    None on a flat grid."""
    z = Z[np.isfinite(Z)]
    if z.size == 0:
        return None
    lo, hi = float(z.min()), float(z.max())
    if not hi > lo:
        return None
    above = z - lo
    linear = np.linspace(lo, hi, LEVELS)
    if np.mean(z < linear[2]) <= LOW_BANDS:
        return linear, False
    small = max(float(np.quantile(above[above > 0], 0.01)) if np.any(above > 0) else (hi - lo) * 1e-6,
                (hi - lo) * 1e-8)
    return lo + np.geomspace(small, hi - lo, LEVELS), True


def _loss_scale(values: np.ndarray) -> tuple[str, float | None]:
    """The loss axis: ("log", floor) where the values are ≥ 0 and the positive ones span more than LOG_RANGE (values
    ≤ 0 drawn at ``floor``, a tenth of the least positive one); ("symlog", linear threshold) where values of both
    signs span more than LOG_RANGE in magnitude (an unbounded f, as the saddle); else ("linear", None)."""
    positive = values[values > 0]
    if values.size == 0 or positive.size == 0:
        return "linear", None
    if np.all(values >= 0):
        if positive.max() / positive.min() > LOG_RANGE:
            return "log", float(positive.min()) / 10
        return "linear", None
    magnitude = np.abs(values[values != 0])
    if magnitude.max() / magnitude.min() > LOG_RANGE:
        return "symlog", float(max(np.quantile(magnitude, 0.1), magnitude.max() * 1e-9))
    return "linear", None


def figure(problem, runs: dict, title: str, mark: tuple[str, int] | None = None, note: str = ""):
    """The two-panel figure (matplotlib, Agg): left, the contour of f with each run's trajectory (``runs``: label →
    Run or array of iterates x_0 … x_T; the first is the reference the view is fitted to), start and ends marked;
    right, f(x_t) per step (f(x_t) − f* where the problem states its minimum, a log axis where the values are
    positive and span more than LOG_RANGE). ``mark`` = (label, t) rings x_t of that run and marks step t."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg   # no display, no pyplot state
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    f = loss_function(problem)
    paths = {label: _points(run) for label, run in runs.items()}
    x0 = _x0(problem)
    x_min = minimizer(problem)
    lo, hi = _view(list(paths.values()), [x0] if x0 is not None else [])
    if x_min is not None:
        # show x* too, unless that would shrink the runs' paths to a few pixels (a one-step run far from x*)
        wide_lo, wide_hi = _view(list(paths.values()), [e for e in (x0, x_min) if e is not None])
        if np.max((wide_hi - wide_lo) / (hi - lo)) <= MINIMISER_ZOOM:
            lo, hi = wide_lo, wide_hi

    fig = Figure(figsize=(13.5, 6.2), dpi=100, layout="constrained")   # room for any tick labels and titles
    FigureCanvasAgg(fig)
    ax, bx = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.15, 1]})
    heading = title + ("\n" + _wrap(note) if note else "")

    # left: the loss contour and the trajectories
    contour_title = "trajectories on the contour of f" if f is not None else "trajectories (f not stated)"
    if f is not None:
        g1, g2 = np.linspace(lo[0], hi[0], GRID), np.linspace(lo[1], hi[1], GRID)
        X1, X2 = np.meshgrid(g1, g2)
        with np.errstate(all="ignore"):
            Z = f(np.column_stack([X1.ravel(), X2.ravel()])).reshape(X1.shape)
        levels = _levels(Z)
        if levels is not None:
            lv, log = levels
            Zm = np.ma.masked_invalid(Z)
            filled = ax.contourf(X1, X2, Zm, levels=lv, cmap="Greys_r", alpha=0.45, extend="both")
            ax.contour(X1, X2, Zm, levels=lv, colors="#555555", linewidths=0.5, alpha=0.7)
            step = float(np.min(np.diff(lv)))
            digits = int(np.clip(np.ceil(np.log10(max(np.max(np.abs(lv)), 1e-300) / step)), 3, 12))
            cb = fig.colorbar(filled, ax=ax, pad=0.01, fraction=0.045, spacing="uniform", format=f"%.{digits}g")
            cb.ax.set_title("f(x)", fontsize=9, y=1.06)
            contour_title += ", log-spaced levels" if log else ""
    if x_min is not None and np.all((x_min >= lo) & (x_min <= hi)):
        ax.plot(*x_min, marker="+", color="black", markersize=12, mew=1.5, linestyle="none", label="minimiser x*")
    elif x_min is not None:
        ax.plot([], [], " ", label=f"minimiser x* = ({x_min[0]:.4g}, {x_min[1]:.4g}), outside the view")
    for k, (label, p) in enumerate(paths.items()):
        style = STYLES[k % len(STYLES)]
        T = len(p) - 1
        ax.plot(p[:, 0], p[:, 1], label=f"{label}: x_0 … x_{T}", zorder=3 + k, **style)
        finite = np.flatnonzero(np.all(np.isfinite(p), axis=1))
        if len(finite):
            end = p[finite[-1]]
            ax.plot(*end, marker="*", markersize=22 if k == 0 else 13, color=style["color"], markeredgecolor="black",
                    zorder=6, linestyle="none", label=f"end of {label.split(' (')[0]}: x_{finite[-1]}")
        outside = int(np.sum(np.any((p < lo) | (p > hi), axis=1) | ~np.all(np.isfinite(p), axis=1)))
        if outside:
            ax.plot([], [], " ", label=f"  ({outside} of its {T + 1} points outside the view or not finite)")
    if x0 is not None:
        ax.plot(*x0, marker="s", markersize=10, markerfacecolor="white", markeredgecolor="black", mew=1.5,
                linestyle="none", zorder=7, label=f"start x_0 = ({x0[0]:.4g}, {x0[1]:.4g})")
    if mark is not None and mark[0] in paths:
        t = mark[1]
        p = paths[mark[0]]
        if t < len(p) and np.all(np.isfinite(p[t])):
            where = "where the judged run failed" if "run again" in mark[0] else "the failing step"
            ax.plot(*p[t], marker="o", markersize=17, markerfacecolor="none", markeredgecolor="#ff7f0e", mew=2.5,
                    linestyle="none", zorder=8, label=f"x_{t} of {mark[0].split(' (')[0]}: {where}")
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.ticklabel_format(useOffset=False)                      # coordinates, not offsets from a coordinate
    ax.set_xlabel("x₁ (parameter element 0)")
    ax.set_ylabel("x₂ (parameter element 1)")
    ax.set_title(contour_title, fontsize=10, y=1.01)  # a fixed y spares matplotlib a layout pass

    # right: the loss per step
    shift = 0.0
    if f is not None and x_min is not None:
        with np.errstate(all="ignore"):
            shift = float(f(x_min[None])[0])
    what = "f(x_t)" if f is not None else "‖∇f‖ fed at step t"
    if f is not None and shift != 0.0:
        what = f"f(x_t) − f*   (f* = {shift:.6g})"
    elif f is not None and x_min is not None:
        what = "f(x_t) − f*   (f* = 0)"
    curves = {}
    for label, run in runs.items():
        if f is not None:
            with np.errstate(all="ignore"):
                p = paths[label]
                ok = np.all(np.isfinite(p), axis=1)
                y = np.full(len(p), np.nan)
                if ok.any():
                    y[ok] = f(p[ok]) - shift
        else:
            grads = getattr(run, "grads", None)
            y = np.linalg.norm(grads, axis=1) if grads is not None else np.full(len(paths[label]), np.nan)
        curves[label] = y
    scale, floor = _loss_scale(np.concatenate([y[np.isfinite(y)] for y in curves.values()]))
    for k, (label, y) in enumerate(curves.items()):
        style = STYLES[k % len(STYLES)]
        if floor is not None:
            y = np.where(y <= 0, floor, y)
        bx.plot(np.arange(len(y)), y, label=label, **{**style, "markersize": style["markersize"] * 0.7})
    if mark is not None:
        vline = bx.axvline(mark[1], color="#ff7f0e", linewidth=1.5, alpha=0.7)
        ax.plot([], [], color=vline.get_color(), linewidth=1.5, label=f"loss panel: step {mark[1]}")
    bx.xaxis.set_major_locator(MaxNLocator(integer=True))
    if scale == "log":
        bx.set_yscale("log")
    elif scale == "symlog":
        bx.set_yscale("symlog", linthresh=floor)
        floor = None
    else:
        bx.ticklabel_format(axis="y", useOffset=False)        # values, not offsets from a value
    bx.set_xlabel("step t (x_t after t steps; t = 0 is the start)")
    bx.set_ylabel(what + {"log": "   (log scale)", "symlog": "   (symmetric log scale)"}.get(scale, ""))
    bx.set_title("loss per step" + ("; values ≤ 0 drawn on the bottom line" if floor is not None and
                                    any(np.any(y <= 0) for y in curves.values()) else ""), fontsize=10, y=1.01)
    bx.grid(linestyle="dotted", alpha=0.8)

    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower left", ncol=2, fontsize=8.5, frameon=False)
    fig.suptitle(heading, fontsize=10, x=0.01, ha="left", family="monospace")
    return fig


def draw(path, problem, runs: dict, title: str, mark: tuple[str, int] | None = None, note: str = "") -> Path:
    """``figure(...)`` saved as a PNG at ``path`` (its directory made if missing); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = figure(problem, runs, title, mark, note)
    fig.savefig(path, format="png")
    return path


# ---- pictures of the properties' runs ------------------------------------------------------------------------------
def _hp_text(hp: dict) -> str:
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.6g}"
        if isinstance(v, tuple):
            return "(" + ", ".join(fmt(x) for x in v) + ")"
        return repr(v)
    return ", ".join(f"{k}={fmt(v)}" for k, v in hp.items())


def _who(runner) -> str:
    if getattr(runner, "subject", None) is None:
        return runner.name
    return f"{runner.name} vs reference rule {runner.rule.name!r}"


def _wrap(text: str, width: int = 150) -> str:
    return "\n".join(textwrap.fill(line, width, subsequent_indent="    ") for line in text.splitlines())


def _test_id() -> str:
    """The running test's id (pytest sets PYTEST_CURRENT_TEST), as a file name: 'test_descent.test_x[...]'."""
    current = os.environ.get("PYTEST_CURRENT_TEST", "")
    nodeid = current.rsplit(" (", 1)[0] if current else "run"
    nodeid = re.sub(r"^(.*/)?([^/]+)\.py::", r"\2.", nodeid)
    name = re.sub(r"[^A-Za-z0-9._=+-]+", "_", nodeid).strip("_")
    return name[:150]


def _digest(*parts) -> str:
    h = hashlib.sha1()
    for p in parts:
        h.update((p.tobytes() if isinstance(p, np.ndarray) else repr(p).encode()) + b"\0")
    return h.hexdigest()[:10]


def _closed_loop_on(problem, run) -> bool:
    """Whether ``run`` is a closed-loop run on ∇f of ``problem`` from its start: x_0 is the start and every gradient
    fed is ∇f at the parameters of that step, bit for bit."""
    x0 = _x0(problem)
    if run.xs.shape[1] != 2 or not np.array_equal(run.xs[0], x0):
        return False
    for t in range(run.steps):
        if not np.all(np.isfinite(run.xs[t])):
            return False
        if not np.array_equal(np.asarray(problem.grad(run.xs[t].copy())), run.grads[t], equal_nan=True):
            return False
    return True


@dataclass
class Picture:
    """A picture to draw: the run a property judged (failing at x_``step``, or passing), and what it needs to run
    the reference rule beside it."""

    path: Path
    runner: object
    hp: dict
    problem: object
    run: object
    title: str
    step: int | None = None
    drawn: bool = field(default=False, init=False)
    seconds: float = field(default=0.0, init=False)
    note: str = field(default="", init=False)

    def runs(self) -> tuple[dict, str | None]:
        """(label → trajectory: the reference rule's and the implementation's closed-loop runs, the label of the
        implementation's) — running again whatever the judged run does not already show."""
        from properties.quadratics import ReferenceRunner, closed_loop

        run, runner, hp = self.run, self.runner, self.hp
        lr = hp.get("lr")
        lrs = None if all(v == lr for v in run.lrs) else list(run.lrs)
        rule = runner.rule
        out: dict = {}
        notes = []
        if getattr(runner, "subject", None) is None:           # a reference rule judged itself: one run
            label = f"{runner.name} (closed loop)"
            out[label] = run if _closed_loop_on(self.problem, run) else closed_loop(runner, self.problem, hp,
                                                                                     run.steps, lrs)
            return out, label
        try:
            out[f"reference rule {rule.name!r} (float64, closed loop)"] = closed_loop(
                ReferenceRunner(rule), self.problem, hp, run.steps, lrs)
        except Exception as e:                                          # the picture must not hide the failure
            notes.append(f"the reference rule could not run here: {type(e).__name__}: {e}")
        if _closed_loop_on(self.problem, run):
            label = f"{runner.name} (closed loop: the run judged)"
            out[label] = run
            notes.append("The reference runs its own closed loop (∇f at its own iterates) beside the run judged.")
        else:
            label = f"{runner.name} (closed loop, run again for this picture)"
            notes.append("The judged run was fed other gradients (replayed in lockstep, or transformed); "
                         "both runs drawn here are closed loops on ∇f.")
            try:
                out[label] = closed_loop(runner, self.problem, hp, run.steps, lrs)
            except Exception as e:
                notes.append(f"{runner.name} could not run again: {type(e).__name__}: {e}")
                label = None
        self.note = " ".join(notes)
        return out, label

    def draw(self) -> Path:
        """Draw it (once); returns the path."""
        if not self.drawn:
            start = time.perf_counter()
            runs, label = self.runs()
            if not runs:
                raise RuntimeError(f"nothing to draw: {self.note}")
            mark = (label, self.step) if self.step is not None and label is not None else None
            draw(self.path, self.problem, runs, self.title, mark, self.note)
            self.drawn = True
            self.seconds = time.perf_counter() - start
        return self.path


def pictured(exc, runner, claim: str, hp: dict, problem, run, step: int, element: int):
    """The failure hook (``quadratics.failure``): on a problem with two coordinates, name a picture of the failing
    run in the message (a last line ``picture: <path>``) and attach it as ``exc.picture``, drawn when pytest reports
    the failure (``Pictures``) or by ``exc.picture.draw()``. Other problems: ``exc`` unchanged."""
    if not two_coordinates(problem) or getattr(run, "xs", None) is None or run.xs.shape[1:] != (2,):
        return exc
    directory = DIRECTORY if DIRECTORY is not None else session_directory()
    name = f"{_test_id()}-{_digest(runner.name, runner.rule.name, claim, sorted(hp.items(), key=str), repr(problem), run.xs[0], list(run.lrs), step, element)}-failed.png"
    lockstep = not _closed_loop_on(problem, run)
    title = _wrap(f"FAILED  {_who(runner)} on {problem.name}\n"
                  f"claim: {claim}\n"
                  f"fails at x_{step} (after step {step} of {run.steps}), element {element}; "
                  f"learning rate {'scheduled' if len(set(run.lrs)) > 1 else 'constant'}\n"
                  f"hyperparameters: {_hp_text(hp)}")
    picture = Picture(directory / name, runner, hp, problem, run, title, step)
    where = "" if DIRECTORY is not None else " (this session's temporary directory; --plots DIR to choose)"
    what = ("both rules in closed loop on ∇f (the comparison above fed replayed or transformed gradients)"
            if lockstep else "the reference rule and this run, in closed loop on ∇f")
    exc.picture = picture
    exc.args = (f"{exc.args[0]}\npicture: {picture.path}{where}\n  loss contour with {what}, and loss per step",
                *exc.args[1:])
    return exc


def seen(runner, problem, hp: dict, run, feed) -> None:
    """The passing-run hook (``quadratics.closed_loop``), under --plots only: remember the test's closed-loop run on
    ∇f of a two-coordinate problem that shows the most — one that moved (Hypothesis draws edge cases such as lr = 0
    and f constant) and stayed finite, with the most steps, the last among equals — to draw if the test passes."""
    if _active is None or DIRECTORY is None or feed is not None or not two_coordinates(problem):
        return
    if loss_function(problem) is None:      # a doubled element: the same test's run on f itself shows more
        return
    xs = run.xs
    rank = (not np.array_equal(xs[-1], xs[0]), bool(np.all(np.isfinite(xs))), run.steps)
    if _active.last is None or rank >= _active.last[0]:
        _active.last = (rank, (runner, problem, hp, run))


# ---- pytest: the option and the hooks ---------------------------------------------------------------------------------
def _pictures_in(exc, depth: int = 0) -> list[Picture]:
    if exc is None or depth > 8:
        return []
    found = [exc.picture] if isinstance(getattr(exc, "picture", None), Picture) else []
    for inner in getattr(exc, "exceptions", ()) or ():                 # Hypothesis reports several as a group
        found += _pictures_in(inner, depth + 1)
    return found


class Pictures:
    """The pytest plugin: draws the pictures of a test's failures when its call is reported (and, under --plots,
    the picture of a passing test's last two-coordinate run); says in the summary how many and what they cost."""

    def __init__(self, directory: Path | None):
        self.directory = directory
        self.last = None
        self.drawn: list[Picture] = []

    def pytest_runtest_setup(self, item):
        self.last = None

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        if call.when != "call":
            return
        report = outcome.get_result()
        pictures = _pictures_in(call.excinfo.value) if call.excinfo is not None else []
        if not pictures and report.passed and self.last is not None and self.directory is not None:
            runner, problem, hp, run = self.last[1]
            name = f"{_test_id()}-{_digest(runner.name, sorted(hp.items(), key=str), repr(problem), run.xs[0], list(run.lrs))}.png"
            title = _wrap(f"passed  {_who(runner)} on {problem.name}\n"
                          f"test: {item.nodeid} (of its closed-loop runs on two-coordinate problems, the longest "
                          f"that moved: {run.steps} steps)\nhyperparameters: {_hp_text(hp)}")
            pictures = [Picture(self.directory / name, runner, hp, problem, run, title)]
        for picture in pictures:
            try:
                picture.draw()
                self.drawn.append(picture)
            except Exception as e:                                          # the report must still be made
                report.sections.append(("picture", f"{picture.path} could not be drawn: {type(e).__name__}: {e}"))
        self.last = None                                  # (drawing ran closed loops of its own)

    def pytest_terminal_summary(self, terminalreporter):
        if self.drawn:
            seconds = sum(p.seconds for p in self.drawn)
            where = sorted({str(p.path.parent) for p in self.drawn})
            terminalreporter.write_line(f"pictures: {len(self.drawn)} drawn into {', '.join(where)} in {seconds:.1f} s "
                                        f"({seconds / len(self.drawn):.2f} s each)")


def configure(config) -> None:
    """From conftest's pytest_configure: read --plots DIR (made if missing; one line saying what is wrong if it cannot
    be), register the plugin, and restore the previous setting when this session ends (pytester runs a session
    inside a session)."""
    global DIRECTORY, _active
    raw = config.getoption("plots", None)
    directory = None
    if raw is not None:
        directory = Path(raw)
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise pytest.UsageError(f"--plots {raw!r}: cannot make that directory ({e.strerror}); give a directory "
                                    "path that can be written (it is created if missing)") from None
    previous = (DIRECTORY, _active)
    DIRECTORY, _active = directory, Pictures(directory)
    config.pluginmanager.register(_active, "conformance-pictures")

    def restore():
        global DIRECTORY, _active
        DIRECTORY, _active = previous
    config.add_cleanup(restore)
