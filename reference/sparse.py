"""Sparse gradients: what a case gives a rule declared with ``sparse_gradients`` (SparseAdam), and what the rule sees.

torch's sparse COO layout holds a gradient as entries: ``values[k]`` belongs at index ``index[:, k]`` of the first
``sparse_dim`` dimensions (a whole row of an embedding when ``sparse_dim`` = 1, as ``nn.Embedding(sparse=True)``
produces; one element when ``sparse_dim`` = ndim). An index may repeat — its entries add up, as ``coalesce()``
adds them — and an index may be absent: that part of θ has no gradient this step. A materialised entry counts as
present even when its value is 0 (torch's layout, not the values, says what is present).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class SparseGrad:
    """A gradient in sparse COO layout: ``index`` (sparse_dim × nnz integers), ``values`` (nnz × the dense
    dimensions, float64 numbers of the case's dtype), ``shape`` the parameter's."""

    index: np.ndarray
    values: np.ndarray
    shape: tuple

    @classmethod
    def full(cls, dense) -> SparseGrad:
        """Every row of ``dense`` as one entry (every element of a 0-d tensor): the sparse form of a dense
        gradient, for closed-loop problems whose gradients are computed, not drawn."""
        dense = np.asarray(dense, dtype=np.float64)
        if dense.ndim == 0:
            return cls(np.zeros((0, 1), dtype=np.int64), dense.reshape(1), ())
        return cls(np.arange(dense.shape[0], dtype=np.int64).reshape(1, -1), dense.copy(), dense.shape)

    @property
    def sparse_dim(self) -> int:
        return self.index.shape[0]

    def _flat(self) -> np.ndarray:
        """Each entry's position among the slices of the first ``sparse_dim`` dimensions."""
        if self.sparse_dim == 0:
            return np.zeros(self.index.shape[1], dtype=np.int64)
        return np.ravel_multi_index(tuple(self.index), self.shape[:self.sparse_dim])

    def _scatter(self, values: np.ndarray) -> np.ndarray:
        slices = int(np.prod(self.shape[:self.sparse_dim]))
        out = np.zeros((slices, *self.shape[self.sparse_dim:]), dtype=values.dtype)
        np.add.at(out, self._flat(), values)
        return out.reshape(self.shape)

    def dense(self) -> np.ndarray:
        """The gradient as a dense array: entries at the same index added (float64), 0 where none is."""
        return self._scatter(self.values)

    def magnitude(self) -> np.ndarray:
        """Σ |values| at each index: the scale of the rounding error of adding repeated entries."""
        return self._scatter(np.abs(self.values))

    def entries(self) -> np.ndarray:
        """How many entries each element's index has (0: absent)."""
        return self._scatter(np.ones_like(self.values))

    def present(self) -> np.ndarray:
        return self.entries() > 0

    def __eq__(self, other) -> bool:
        return (isinstance(other, SparseGrad) and self.shape == other.shape
                and np.array_equal(self.index, other.index) and np.array_equal(self.values, other.values))

    __hash__ = None


@dataclass
class Masked:
    """What a sparse rule's update receives as g: ``values``, the entries added up at each element (a tensor of
    θ's shape, 0 where absent), and ``present``, the boolean tensor of the elements the gradient holds."""

    values: object
    present: object


def as_sparse(g) -> SparseGrad:
    """``g`` in sparse layout: a dense array (a closed-loop gradient) becomes one entry per row."""
    return g if isinstance(g, SparseGrad) else SparseGrad.full(g)


def masked(g, values) -> Masked:
    """The rule's view of sparse gradient ``g``, its added-up values given as ``values`` (a tensor, or a bounded
    one: the driver decides their precision)."""
    return Masked(values, torch.as_tensor(as_sparse(g).present()))
