"""An optax optimizer's reproducer that needs only optax, JAX, NumPy and torch: the suite's adapter
(``optimizers/optax_adapter.py``) written out as a small ``torch.optim.Optimizer`` in the script itself, its
hyperparameter translation (the declared convention, ``optimizers/conventions.py``) as data. It runs as the adapter
runs: one optax state per parameter, a parameter without a gradient left alone with its state, the learning rate
injected and every other hyperparameter a Python constant, the update under ``jax.jit``, float64 parameters in JAX's
64-bit mode and the others in its default 32-bit one.
"""
from __future__ import annotations

from optimizers.conventions import NONE_FOR_ZERO

SHIM = '''import functools
import jax
import optax.contrib
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import optax
import torch

ALIAS = {alias}
NAMES = {names!r}   # the rule's hyperparameters (torch's names) as optax's keywords
NONE_FOR_ZERO = {none!r}   # optax spells "none" None where torch spells it 0
SIGN = {sign!r}   # θ ← θ + SIGN · optax's update


def _numpy(t):
    t = t.detach().cpu()
    return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16) if t.dtype == torch.bfloat16 else t.numpy()


class Impl(torch.optim.Optimizer):
    """{what} as a torch.optim optimizer: one optax state per parameter."""

    def __init__(self, params, **hyperparameters):
        super().__init__(params, hyperparameters)

    @staticmethod
    def _kwargs(group):
        out = {{}}
        for name, keyword in NAMES.items():
            if name in group:
                value = None if name in NONE_FOR_ZERO and group[name] == 0 else group[name]
                out.update(zip(keyword, value) if isinstance(keyword, tuple) else {{keyword: value}})
        return out

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            kwargs = self._kwargs(group)
            static = tuple(k for k in kwargs if k != "learning_rate")
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
'''


def standalone_optax(factory) -> str | None:
    """The reproducer lines that bind ``Impl`` for an adapted optax optimizer (``optax_adapter.optax_optimizer``'s
    factory) without the suite; None if its convention converts a value otherwise than None for 0."""
    from optimizers.optax_adapter import alias_of
    if any(conv is not NONE_FOR_ZERO for conv in factory.convention.conversions.values()):
        return None
    import optax
    import optax.contrib
    fn, fixed = alias_of(factory.wraps)
    name = f"optax.{fn.__name__}" if getattr(optax, fn.__name__, None) is fn else f"optax.contrib.{fn.__name__}"
    alias = f"functools.partial({name}, **{fixed!r})" if fixed else name
    c = factory.convention
    none = tuple(n for n, conv in c.conversions.items() if conv is NONE_FOR_ZERO)
    return SHIM.format(alias=alias, names=dict(c.names), none=none, sign=c.sign,
                       what=f"{name}" + (f" with {fixed!r}" if fixed else ""))
