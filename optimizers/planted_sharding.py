"""Planted sharding bugs: ZeroRedundancyOptimizer over torch.optim.Adam, correct but for ONE realistic mistake in how
it shards (``properties/test_distributed.py`` must catch every one across ranks).

Each class is written as a user's own ZeRO would be: a subclass of torch.distributed's ZeroRedundancyOptimizer
(``(params, **hp)``, rule ``adam``) that overrides the step or the partition. The Adam arithmetic itself is torch's
and right, so only the distributed mode can see these bugs: run in one process they would either be correct or not
build at all.

* ``PLANTED``: (name, what is wrong, the check). The suite must report every one as non-conforming, naming the
  rank.
* ``MISBEHAVING``: ranks that raise or hang; the suite must fail them naming the rank and the step, and leave no
  process behind.

Do not use these classes for training.
"""
from __future__ import annotations

import math

import torch
from torch.distributed.optim import ZeroRedundancyOptimizer


class _ZeroAdam(ZeroRedundancyOptimizer):
    def __init__(self, params, **hp):
        super().__init__(params, optimizer_class=torch.optim.Adam, **hp)


class SkipsLastRankShard(_ZeroAdam):
    """The last rank never steps its shard (an early exit meant for a rank with no parameters, testing the wrong
    condition) but still broadcasts it: the parameters it owns never move, on every rank."""

    def step(self, closure=None, **kwargs):
        if self.rank != self.world_size - 1:
            self._local_step(closure=closure, **kwargs)
        self._sync_params()


class NoBroadcastAfterStep(_ZeroAdam):
    """Each rank steps its shard but the updated shards are never broadcast: a rank's replica of the parameters
    another rank owns stays at their initial values."""

    def step(self, closure=None, **kwargs):
        return self._local_step(closure=closure, **kwargs)


class BroadcastBeforeStep(_ZeroAdam):
    """The shards are broadcast before the local step instead of after it: every rank but the owner holds each
    parameter one step behind."""

    def step(self, closure=None, **kwargs):
        self._sync_params()
        return self._local_step(closure=closure, **kwargs)


class DuplicatedShard(_ZeroAdam):
    """Rank 1 is given rank 0's shard instead of its own (the partition list built with a copied row): two ranks own
    rank 0's parameters, and the parameters meant for rank 1 are owned by no rank and never move."""

    def _partition_parameters(self, params_per_rank=None):
        fresh = not self._partition_parameters_cache
        partition = super()._partition_parameters(params_per_rank)
        if fresh and self.world_size > 1:
            partition[1] = [{**mine, "params": list(first["params"])}
                            for mine, first in zip(partition[1], partition[0])]
        return partition


class PartitionOffByOne(_ZeroAdam):
    """Each group's parameters are cut into contiguous chunks, one per rank, with the end of the last chunk taken as
    ``len(params) - 1`` (an inclusive bound used as an exclusive one): each group's last parameter is owned by no
    rank and never moves."""

    def _partition_parameters(self, params_per_rank=None):
        if params_per_rank is None and not self._partition_parameters_cache:
            n = self.world_size
            self._partition_parameters_cache = [[] for _ in range(n)]
            for group in self.param_groups:
                params = group["params"]
                size = math.ceil(len(params) / n)
                chunks = [params[r * size:min((r + 1) * size, len(params) - 1)] for r in range(n)]
                self._partition_param_group(group, chunks)
        return super()._partition_parameters(params_per_rank)


class MergesOnlyFirstShard(_ZeroAdam):
    """``state_dict()`` after ``consolidate_state_dict()`` merges only the first rank's shard into the global state
    dict (its loop over the gathered shards stops after one): a checkpoint restored mid-run gives every other
    rank's parameters fresh optimizer state, and they leave the trajectory from the restore on."""

    def state_dict(self):
        gathered, self._all_state_dicts = self._all_state_dicts, self._all_state_dicts[:1]
        try:
            return super().state_dict()
        finally:
            self._all_state_dicts = gathered


class RaisesOnLastRank(_ZeroAdam):
    """The last rank raises in its second step (the other ranks then wait for it in a collective)."""

    def step(self, closure=None, **kwargs):
        self._steps = getattr(self, "_steps", 0) + 1
        if self.rank == self.world_size - 1 and self._steps == 2:
            raise RuntimeError("shard update failed")
        return super().step(closure=closure, **kwargs)


class LastRankSkipsBroadcast(_ZeroAdam):
    """The last rank leaves the broadcast out of its step: the other ranks wait for its shard forever."""

    def step(self, closure=None, **kwargs):
        if self.rank == self.world_size - 1:
            return self._local_step(closure=closure, **kwargs)
        return super().step(closure=closure, **kwargs)


#: (name, what is wrong, the check that must catch it: "trajectory", or "round trip" for a checkpoint restored
#: mid-trajectory through consolidate_state_dict)
PLANTED = [
    ("SkipsLastRankShard", "a rank that skips its shard's update", "trajectory"),
    ("NoBroadcastAfterStep", "updated shards not broadcast after the step", "trajectory"),
    ("BroadcastBeforeStep", "shards broadcast before the step instead of after it", "trajectory"),
    ("DuplicatedShard", "a wrong partition: two ranks own rank 0's shard, rank 1's parameters are owned by none",
     "trajectory"),
    ("PartitionOffByOne", "a wrong partition: an off-by-one leaves each group's last parameter unowned",
     "trajectory"),
    ("MergesOnlyFirstShard", "the consolidated state dict holds only the first rank's shard", "round trip"),
]

MISBEHAVING = [
    ("RaisesOnLastRank", "a rank raises in a step"),
    ("LastRankSkipsBroadcast", "a rank never joins the broadcast: the others hang"),
]
