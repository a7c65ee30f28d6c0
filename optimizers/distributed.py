"""Sharded implementations to run across ranks with ``--ranks N``: torch.distributed's ZeroRedundancyOptimizer over
each torch.optim class the suite has a rule for, as factories called like a torch.optim class, ``(params, **hp)``.

    python -m pytest --optimizer optimizers.distributed:ZeroAdam --rule adam --ranks 2

Each factory is called inside every rank after ``torch.distributed.init_process_group`` (``properties/ranks.py``
does that); outside a process group ZeroRedundancyOptimizer cannot be built. Every rank is given the same
parameters and gradients; ZeroRedundancyOptimizer steps the parameters its rank owns with the wrapped class and
broadcasts them, so after ``step()`` every rank's replica must equal the unsharded rule's.

Any other sharded implementation is checked the same way, by naming its own factory: ``--optimizer
my_module:MyShardedAdam --rule adam --ranks 4``.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch.distributed.optim import ZeroRedundancyOptimizer



def zero(optimizer_class: type, **zero_options) -> Callable:
    """A factory ``(params, **hp)`` building ``ZeroRedundancyOptimizer(params, optimizer_class=optimizer_class,
    **zero_options, **hp)``. Its ``wraps`` names the wrapped class: torch's known deviations of that class
    (``optimizers/known_deviations.py``) concern the sharded optimizer too, since each rank steps its shard with it."""

    def factory(params, **hp):
        return ZeroRedundancyOptimizer(params, optimizer_class=optimizer_class, **zero_options, **hp)

    suffix = "Buckets" if zero_options.get("parameters_as_bucket_view") else ""
    # the name it is bound to below, so that pickle and the reproducer find it by module and name
    factory.__name__ = factory.__qualname__ = f"Zero{optimizer_class.__name__}{suffix}"
    options = "".join(f", {k}={v!r}" for k, v in zero_options.items())
    factory.__doc__ = (f"ZeroRedundancyOptimizer(params, optimizer_class=torch.optim.{optimizer_class.__name__}"
                       f"{options}, **hp)")
    factory.wraps = optimizer_class
    return factory


ZeroSGD = zero(torch.optim.SGD)
ZeroAdam = zero(torch.optim.Adam)
ZeroAdamW = zero(torch.optim.AdamW)
ZeroRMSprop = zero(torch.optim.RMSprop)
ZeroAdagrad = zero(torch.optim.Adagrad)
ZeroAdadelta = zero(torch.optim.Adadelta)
ZeroAdamax = zero(torch.optim.Adamax)
ZeroNAdam = zero(torch.optim.NAdam)
ZeroRAdam = zero(torch.optim.RAdam)
ZeroASGD = zero(torch.optim.ASGD)
ZeroRprop = zero(torch.optim.Rprop)
#: the other code path of ZeroRedundancyOptimizer: parameters become views into one flat bucket per rank, and a
#: bucket, not each parameter, is broadcast after the step
ZeroAdamBuckets = zero(torch.optim.Adam, parameters_as_bucket_view=True)

#: factory name -> the rule it claims (the rule whose ``torch_class`` it wraps)
FACTORIES = {"ZeroSGD": "sgd", "ZeroAdam": "adam", "ZeroAdamW": "adamw", "ZeroRMSprop": "rmsprop",
             "ZeroAdagrad": "adagrad", "ZeroAdadelta": "adadelta", "ZeroAdamax": "adamax", "ZeroNAdam": "nadam",
             "ZeroRAdam": "radam", "ZeroASGD": "asgd", "ZeroRprop": "rprop", "ZeroAdamBuckets": "adam"}
