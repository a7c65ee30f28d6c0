"""Pictures of failures (``properties/plots.py``):

* a property failing on a two-parameter problem names, in its message, a PNG that exists once pytest has reported
  the failure — in ``--plots DIR`` when given, else in the session's temporary directory;
* the picture draws what it says: the reference rule's and the implementation's closed-loop runs on the problem's
  contour (the reference's run is GD's own iteration x ← x − η∇f, computed here independently), f per step beside
  them, and a title naming the implementation, the rule, the claim, the hyperparameters and the failing step;
* where the failing comparison fed the implementation other gradients than ∇f at its own iterates, the
  implementation is run again in closed loop, and the picture says so;
* a problem with other than two coordinates gets no picture and an unchanged message;
* ``--plots DIR`` writes one picture per passing test too; without it a passing run draws nothing; a DIR that
  cannot be made is a one-line usage error.

The in-process runs (``pytester``) use the fixed 002 paraboloids of ``test_descent.test_book_paraboloids`` and the
planted bug ``GDClippedUpdate`` (every step clipped to [−1, 1]): deterministic, ~1 s each. These judge the suite.
"""
from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from optimizers import planted_properties
from optimizers.adapters import Subject
from properties import plots
from properties.assertions import NonConformance
from properties.quadratics import Layout, Quadratic, SubjectRunner, book_paraboloids
from properties.test_descent import check_gd_rate
from properties.test_identities import check_elementwise
from reference.registry import RULES

ROOT = Path(__file__).resolve().parent.parent
PARABOLOIDS = "properties/test_descent.py::test_book_paraboloids"
CLIPPED = ["--optimizer", "optimizers.planted_properties:GDClippedUpdate", "--rule", "sgd"]
PNG = b"\x89PNG\r\n\x1a\n"
#: a figure of two panels, each with a contour or curves, legends and a title, is far above this; an empty or
#: truncated file below it
MIN_BYTES = 20_000


@pytest.fixture(scope="module", autouse=True)
def _imported():
    """As in test_bad_input: pytester restores ``sys.modules`` after each in-process run, and native extensions
    (torch's operators, matplotlib's contourpy) refuse to register their types twice; so torch's lazy submodules
    and everything drawing a figure imports are imported here, before any run."""
    p = torch.nn.Parameter(torch.zeros(1))
    p.grad = torch.zeros(1)
    torch.optim.SGD([p]).step()
    problem = Quadratic("warm-up", np.array([1.0, 2.0]), None, np.zeros(2), np.array([1.0, 1.0]))
    plots.figure(problem, {"x": np.array([[1.0, 1.0], [0.5, 0.0]])}, "warm-up")
    from matplotlib.image import imread  # noqa: F401


def run_suite(pytester, monkeypatch, args):
    monkeypatch.chdir(ROOT)
    return pytester.runpytest_inprocess("-p", "no:warnings", "-p", "no:cacheprovider", *args)


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's header, after checking its signature and that it is not trivially small."""
    data = path.read_bytes()
    assert data[:8] == PNG, f"{path} is not a PNG"
    assert len(data) > MIN_BYTES, f"{path} has {len(data)} bytes: an empty or truncated figure"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def assert_two_panel_png(path: Path) -> None:
    width, height = png_size(path)
    assert width > 1.5 * height, f"{path} is {width}×{height}: not two panels side by side"
    from matplotlib.image import imread
    pixels = imread(path)
    assert float(np.std(pixels[..., :3])) > 0.05, f"{path} is nearly blank"


def pictures_named(text: str) -> list[Path]:
    """The distinct pictures a run's output names. A failure's message is printed more than once where pytest shows
    whole messages in its short summary (it does when the ``CI`` variable is set), so a name may repeat."""
    found = re.findall(r"^E?\s*picture: (\S+\.png)", text, re.MULTILINE)
    return [Path(p) for p in dict.fromkeys(found)]


def clipped_runner() -> SubjectRunner:
    name = "GDClippedUpdate"
    return SubjectRunner(Subject(f"planted_properties.{name}", getattr(planted_properties, name), RULES["sgd"],
                                 f"optimizers.planted_properties:{name}"))


def test_failing_run_names_an_existing_two_panel_picture(pytester, monkeypatch):
    """Without --plots: the property failing on 002's non-isotropic paraboloid (two parameters) names a PNG in the
    session's temporary directory, which exists once the run is over; the passing case beside it draws nothing."""
    result = run_suite(pytester, monkeypatch, [PARABOLOIDS, *CLIPPED, "-k", "lr0.1"])
    out = "\n".join(result.outlines)
    result.assert_outcomes(passed=1, failed=1)
    named = pictures_named(out)
    assert len(named) == 1, f"one picture should be named; output:\n{out[-3000:]}"
    path = named[0]
    assert path.exists(), f"the message names {path}, which does not exist"
    assert_two_panel_png(path)
    assert re.fullmatch(r"test_descent\.test_book_paraboloids_optimizers\.planted_properties_GDClippedUpdate-"
                        r"non-isotropic-lr0\.1-[0-9a-f]{10}-failed\.png", path.name), path.name
    assert "this session's temporary directory" in out
    assert re.search(r"^pictures: 1 drawn into .* in [0-9.]+ s", out, re.MULTILINE), out[-2000:]


def test_plots_option_draws_failing_and_passing_runs_one_per_test(pytester, monkeypatch, tmp_path):
    """--plots DIR: the failure's picture is in DIR, and the passing test (002's isotropic paraboloid, lr 0.1) gets
    one picture too."""
    directory = tmp_path / "pictures"
    result = run_suite(pytester, monkeypatch, [PARABOLOIDS, *CLIPPED, "-k", "lr0.1", "--plots", str(directory)])
    out = "\n".join(result.outlines)
    result.assert_outcomes(passed=1, failed=1)
    named = pictures_named(out)
    assert len(named) == 1 and named[0].parent == directory, out[-3000:]
    files = sorted(directory.glob("*.png"))
    assert len(files) == 2 and named[0] in files, [f.name for f in files]
    passing = next(f for f in files if f != named[0])
    assert re.fullmatch(r"test_descent\.test_book_paraboloids_optimizers\.planted_properties_GDClippedUpdate-"
                        r"isotropic-lr0\.1-[0-9a-f]{10}\.png", passing.name), passing.name
    for f in files:
        assert_two_panel_png(f)
    assert re.search(r"^pictures: 2 drawn into .* in [0-9.]+ s", out, re.MULTILINE), out[-2000:]


def test_plots_directory_that_cannot_be_made_is_a_usage_error(pytester, monkeypatch, tmp_path):
    """--plots naming an existing file: exit 4, one line saying what is wrong and what would be right."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = run_suite(pytester, monkeypatch, [PARABOLOIDS, "--plots", str(blocker / "pictures")])
    errors = [line for line in result.errlines if line.strip()]
    assert result.ret == 4 and len(errors) == 1 and errors[0].startswith("ERROR: --plots"), errors


def test_picture_draws_both_closed_loops_and_says_what_failed(tmp_path):
    """The figure of a failure: left, the reference's closed loop (GD's x ← x − η∇f, recomputed here) and the
    implementation's judged run, each x_0 … x_T, on the contour of f; right, f(x_t) − f* of both; the title names
    the implementation, the rule, the hyperparameters and the failing step."""
    problem, lr, _ = book_paraboloids()[2]                   # 0.2x1² + 2x2² − 5, lr 0.1, from (6, 6)
    with pytest.raises(NonConformance) as caught:
        check_gd_rate(clipped_runner(), problem, lr, steps=100)
    exc = caught.value
    message = str(exc)
    assert message.splitlines()[-2].startswith(f"picture: {exc.picture.path}")
    runs, label = exc.picture.runs()
    assert label is not None and "the run judged" in label
    gd = [problem.x0.copy()]
    for _ in range(100):
        gd.append(gd[-1] - lr * problem.grad(gd[-1]))
    reference = next(r for name, r in runs.items() if name.startswith("reference rule 'sgd'"))
    np.testing.assert_allclose(reference.xs, np.array(gd), rtol=1e-12, atol=1e-300)
    implementation = runs[label].xs
    assert not np.allclose(implementation, reference.xs), "the clipped steps should leave GD's path"

    fig = plots.figure(problem, runs, exc.picture.title, (label, exc.picture.step))
    contour_panel, loss_panel = fig.axes[:2]
    drawn = [np.column_stack(line.get_data()) for line in contour_panel.get_lines()]
    for xs in (reference.xs, implementation):
        assert any(d.shape == xs.shape and np.array_equal(d, xs) for d in drawn), "a trajectory is not drawn"
    assert contour_panel.collections, "no contour drawn"
    f = plots.loss_function(problem)
    curves = [line.get_ydata() for line in loss_panel.get_lines()]
    for xs in (reference.xs, implementation):
        expected = f(xs) - problem.c                         # f* = c, the value at x*
        assert any(len(y) == len(expected) and np.allclose(y, expected, rtol=1e-12) for y in curves)
    title = fig._suptitle.get_text()
    for fact in ("GDClippedUpdate", "reference rule 'sgd'", "lr=0.1", f"fails at x_{exc.picture.step}",
                 "claim: GD on a quadratic"):
        assert fact in title, f"the title should say {fact!r}: {title}"

    path = exc.picture.draw()
    assert path == exc.picture.path and path.exists()
    assert_two_panel_png(path)


def test_failure_on_other_gradients_runs_the_implementation_again(tmp_path, monkeypatch):
    """The element-wise property judges a run on f with one element's part doubled: the picture runs the
    implementation again in closed loop on f itself, and its legend and message say so."""
    monkeypatch.setattr(plots, "DIRECTORY", tmp_path)
    name = "AdamPerTensorDenominator"
    runner = SubjectRunner(Subject(name, getattr(planted_properties, name), RULES["adam"],
                                   f"optimizers.planted_properties:{name}"))
    problem = Quadratic("diagonal quadratic", np.array([1.0, 0.1]), None, np.zeros(2), np.array([-5.0, 2.0]))
    hp = {**RULES["adam"].defaults(), "lr": 0.1}
    with pytest.raises(NonConformance) as caught:
        check_elementwise(runner, problem, hp, 5, 0, Layout.flat(2))
    exc = caught.value
    assert "both rules in closed loop on ∇f" in str(exc)
    runs, label = exc.picture.runs()
    assert "run again for this picture" in label
    assert np.array_equal(runs[label].xs[0], problem.x0) and len(runs) == 2
    path = exc.picture.draw()
    assert path.parent == tmp_path
    assert_two_panel_png(path)


def test_no_picture_for_other_than_two_parameters():
    """A one-parameter problem: the same failure, no picture attached or named."""
    problem = Quadratic("one-dimensional", np.array([4.0]), None, np.zeros(1), np.array([6.0]))
    with pytest.raises(NonConformance) as caught:
        check_gd_rate(clipped_runner(), problem, 0.1, steps=5)
    assert not hasattr(caught.value, "picture") and "picture:" not in str(caught.value)
