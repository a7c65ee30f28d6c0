"""The suite's command-line options (``--optimizer``, ``--rule``, …): the one module a pytest run always loads. In a
clone, ``conftest.py`` loads it with the suite's plugin (``properties/plugin.py``); installed (``pip install`` a
checkout or wheel), it is the ``pytest11`` entry point, and it loads the plugin only for a run that names an
implementation (``--optimizer``), so that the suite stays out of its users' own test runs (and torch is not
imported by them: this module imports nothing heavy).
"""
from __future__ import annotations

from optimizers.loading import SPEC_FORMS

PLUGIN = __name__.rpartition(".")[0] + ".plugin"


def pytest_addoption(parser):
    group = parser.getgroup("conformance", "optimizer conformance")
    group.addoption("--optimizer", metavar="SPEC", default=None,
                    help=f"implementation under test: {SPEC_FORMS}; called as (params, **hyperparameters)")
    group.addoption("--rule", metavar="RULE", default=None,
                    help="the rule it claims to implement: a built-in rule's name (sgd, adam, adamw, …: an unknown name "
                         "is answered with the list) or a rule of your own, path/to/rule.py:NAME or "
                         "package.module:NAME (docs/your-own-rule.md)")
    group.addoption("--device", metavar="DEVICE", default="cpu", help="cpu (default) or cuda")
    group.addoption("--subnormals", choices=("ieee", "flush"), default=None,
                    help="ieee (default): judge against IEEE gradual underflow; flush: the implementation may flush "
                         "subnormal inputs and results to zero (GPU fast math, Triton, XLA on CPU), judge against a "
                         "reference that may too (an optax optimizer declares flush by itself)")
    group.addoption("--compensation", metavar="STATE_KEY", default=None,
                    help="the implementation keeps bfloat16/float16 parameters with a compensation (Kahan summation) "
                         "in its state under STATE_KEY (torch-optimi: kahan_comp): judged on the parameter plus its "
                         "compensation, held to the compensated precision")
    group.addoption("--quantized-state", metavar="SPEC", default=None,
                    help="the implementation keeps its state block-wise quantized (8-bit optimizers: torchao, "
                         "bitsandbytes): BUFFER=signed|unsigned per quantized buffer (the dynamic 8-bit map), "
                         "optionally block=256 and min_size=4096 (smaller parameters keep full-precision state), e.g. "
                         "exp_avg=signed,exp_avg_sq=unsigned; judged step by step from its own dequantized state, "
                         "each buffer within the quantization bound")
    group.addoption("--precision", choices=("parameters", "float32-state"), default=None,
                    help="how the implementation computes for bfloat16/float16 parameters: parameters (default: in "
                         "their dtype, as torch.optim does) or float32-state (float32 state and arithmetic, θ "
                         "rounded once a step; judged at that precision with its state read back)")
    group.addoption("--master-weights", metavar="STATE_KEY", default=None,
                    help="the implementation keeps float32 master weights of bfloat16/float16 parameters in its state "
                         "under STATE_KEY, the parameter their rounded copy: judged on the master at float32 "
                         "precision, the parameter within a rounding of it")
    group.addoption("--known-deviations", metavar="FILE", default=None,
                    help="TOML file of deviations you expect, each with a reason: tests (by id or glob) become "
                         "expected failures; a rule's hyperparameter (or name=value) is taken out of the searches; "
                         "entries that match nothing are reported (format: README, Known deviations file)")
    group.addoption("--step-timeout", metavar="SECONDS", default="60",
                    help="fail a test when one call into the implementation (constructor, step) takes longer "
                         "(default 60; 0 disables)")
    group.addoption("--ranks", metavar="N", default="0",
                    help="run --optimizer across N processes with torch.distributed (gloo, 127.0.0.1), every rank "
                         "given the reference's gradients, and judge every rank's parameters (sharded optimizers: "
                         "ZeroRedundancyOptimizer, FSDP-style state); N >= 2, 0 (default): one process")
    group.addoption("--plots", metavar="DIR", default=None,
                    help="into DIR, a PNG (loss contour with the reference's and the implementation's closed-loop "
                         "trajectories, loss per step) per passing test that runs a two-parameter problem; failures "
                         "on such problems are drawn without it too, into a temporary directory the message names")
    parser.getgroup("conformance").addoption(
        "--conformance-json", metavar="FILE", default=None,
        help="write the conformance report (per implementation: verdict, tests, examples, hyperparameters and "
             "features exercised, failures with their facts and reproducers) to FILE as JSON")


def pytest_configure(config):
    if config.getoption("optimizer") and not config.pluginmanager.has_plugin(PLUGIN):
        config.pluginmanager.import_plugin(PLUGIN)
