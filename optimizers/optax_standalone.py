"""An optax optimizer's reproducer that needs only optax, JAX, NumPy and torch: the suite's adapter
(``optimizers/optax_adapter.py``) written out as a small ``torch.optim.Optimizer`` in the script itself, its
hyperparameter translation (the declared convention, ``optimizers/conventions.py``) as data and its value conversions
as the code each ``Conversion`` declares (``momentum=None`` for 0, ``warmup_steps=None`` for 0, ADOPT's clip exponent
as a clip function). It runs as the adapter runs: one optax state per parameter, a parameter without a gradient left
alone with its state, the learning rate injected and every other hyperparameter a Python constant (a callable one, or
a callable default, static: ``optax_adapter.static_args``), the update under ``jax.jit``, float64 parameters in JAX's
64-bit mode and the others in its default 32-bit one.
"""
from __future__ import annotations

SHIM = """import inspect
import jax
import optax.contrib
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import optax
import torch

ALIAS = {alias}
FIXED = {fixed!r}   # options the reproducer's alias fixes
NAMES = {names!r}   # the rule's hyperparameters (torch's names) as optax's keywords
CONVERT = {{{convert}}}
SIGN = {sign!r}   # θ ← θ + SIGN · optax's update


def _numpy(t):
    t = t.detach().cpu()
    return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16) if t.dtype == torch.bfloat16 else t.numpy()


def _static(kwargs):
    # every keyword given but the learning rate, and every default that is not a number (a callable default would
    # otherwise be taken by inject_hyperparams for a schedule and passed on as its value)
    number = lambda v: isinstance(v, (int, float, np.ndarray, jax.Array)) and not isinstance(v, bool)
    return tuple(k for k in kwargs if k != "learning_rate") + tuple(
        n for n, p in inspect.signature(ALIAS).parameters.items()
        if n not in kwargs and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.default is not p.empty
        and not number(p.default))


class Impl(torch.optim.Optimizer):
    \"\"\"{what} as a torch.optim optimizer: one optax state per parameter.\"\"\"

    def __init__(self, params, **hyperparameters):
        super().__init__(params, hyperparameters)

    @staticmethod
    def _kwargs(group):
        out = {{}}
        for name, keyword in NAMES.items():
            if name in group:
                value = CONVERT[name](group[name]) if name in CONVERT else group[name]
                out.update(zip(keyword, value) if isinstance(keyword, tuple) else {{keyword: value}})
        return {{**out, **FIXED}}

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            kwargs = self._kwargs(group)
            static = _static(kwargs)
            for p in group["params"]:
                if p.grad is None:
                    continue
                with jax.enable_x64(p.dtype == torch.float64):
                    tx = optax.inject_hyperparams(ALIAS, static_args=static)(**kwargs)

                    @jax.jit
                    def update(g, state, theta):
                        u, state = tx.update(g, state, theta)
                        return optax.apply_updates(theta, jax.tree.map(lambda x: SIGN * x, u)), state

                    theta, g = jnp.asarray(_numpy(p)), jnp.asarray(_numpy(p.grad))
                    state = self.state[p].get("optax") or tx.init(theta)
                    lr = state.hyperparams["learning_rate"]
                    state = state._replace(hyperparams={{**state.hyperparams, "learning_rate":
                                                        jnp.asarray(kwargs["learning_rate"], lr.dtype)}})
                    theta, self.state[p]["optax"] = update(g, state, theta)
                    out = np.asarray(theta)
                    p.copy_(torch.from_numpy(out.view(np.int16).copy()).view(torch.bfloat16)
                           if out.dtype.name == "bfloat16" else torch.from_numpy(np.array(out)).to(p.dtype))
"""


def standalone_optax(factory) -> str | None:
    """The reproducer lines that bind ``Impl`` for an adapted optax optimizer (``optax_adapter.optax_optimizer``'s
    factory) without the suite: its convention's conversions are written out from their ``code``
    (``conventions.Conversion``); None if one has none (the reproducer then imports the suite's adapter)."""
    from optimizers.optax_adapter import alias_of
    conversions = factory.convention.conversions
    if any(conv.code is None for conv in conversions.values()):
        return None
    import optax
    import optax.contrib
    fn, fixed = alias_of(factory.wraps)
    name = f"optax.{fn.__name__}" if getattr(optax, fn.__name__, None) is fn else f"optax.contrib.{fn.__name__}"
    c = factory.convention
    convert = "".join(f"\n    {n!r}: {conv.code},   # {conv.why}" for n, conv in conversions.items())
    fixed = {**c.fixed, **fixed}
    return SHIM.format(alias=name, fixed=fixed, names=dict(c.names), convert=convert + ("\n" if convert else ""),
                       sign=c.sign, what=f"{name}" + (f" with {fixed!r}" if fixed else ""))
