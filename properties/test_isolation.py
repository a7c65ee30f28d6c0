"""Isolation: after every test, torch's process-wide state is as it was, even when the implementation under test
changes it (``properties/isolation.py``)."""
from __future__ import annotations

from properties.isolation import GLOBAL_STATE, same, snapshot
from properties.test_bad_input import TRAJECTORY, _torch_imported, run_suite  # noqa: F401 (fixture)


def test_global_state_is_restored_after_an_implementation_changes_it(pytester, monkeypatch):
    """A correct SGD that changes the default dtype, grad mode, thread count, deterministic flag and every RNG
    passes its tests, and leaves all of them as they were before the run."""
    before = snapshot()
    result = run_suite(pytester, monkeypatch, ["--optimizer", "optimizers.misbehaving:ChangesGlobalState",
                                               "--rule", "sgd", TRAJECTORY, "-k", "float64"])
    out = "\n".join(result.outlines + result.errlines)
    assert result.ret == 0, f"the run should pass (the implementation is a correct SGD); output:\n{out[-3000:]}"
    after = snapshot()
    changed = [name for name in GLOBAL_STATE if not same(after[name], before[name])]
    assert not changed, f"the run left changed: {', '.join(changed)}"
