"""Gathering across processes for ``gather=True`` and the class-count synchronisation of GAP.

Every collective here is preceded by one *agreement* round (an ``all_gather`` of a few integers
per rank): whether each rank's inputs passed their checks, its number of rows, its trailing
dimension and the dtypes of its tensors.  So

* a rank whose inputs are rejected raises its ValueError and every other rank raises one too
  (no rank is left waiting inside a collective, and gloo never aborts on mismatched buffers);
* tensors are cast to one dtype agreed by all ranks (``torch.promote_types`` of theirs) before
  they are gathered, so ranks may hold targets of different dtypes;
* batches of different sizes are padded to the largest and cut back after gathering.

Without a process group of more than one process nothing is gathered, and nothing is said: the
process's batch is the whole batch, so ``gather=True`` computes the gathered loss.
"""
import functools

import torch
import torch.distributed as dist

__all__ = []

# dtype codes exchanged in the agreement round
_DTYPES = (torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64,
           torch.float16, torch.bfloat16, torch.float32, torch.float64)
_CODE = {d: i for i, d in enumerate(_DTYPES)}


def active():
    """True when a process group of more than one process is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _exchange(values, device):
    """All ranks' integer vectors (same length on every rank), as a list of lists."""
    mine = torch.tensor(values, dtype=torch.int64, device=device)
    parts = [torch.empty_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, mine)
    return [[int(v) for v in p.tolist()] for p in parts]


def agree(error, device, rows=0, cols=-1, dtypes=()):
    """The agreement round; raises on every rank if any rank has an ``error`` message.

    Returns ``(sizes, agreed_dtypes)``: every rank's number of rows, and for each dtype position
    the promotion of all ranks' dtypes.  Ranks must agree on ``cols`` (the trailing dimension).
    """
    codes = [_CODE[d] for d in dtypes]
    table = _exchange([0 if error is None else 1, rows, cols] + codes, device)
    rank = dist.get_rank()
    if error is not None:
        raise ValueError(error + f" (rank {rank}; every rank of the group raises)")
    bad = [k for k, row in enumerate(table) if row[0]]
    if bad:
        raise ValueError(
            f"rank(s) {bad} of the process group rejected their inputs, so no rank computes "
            f"this gathered loss; see the error raised on rank {bad[0]}."
        )
    colset = sorted({row[2] for row in table})
    if len(colset) > 1:
        raise ValueError(
            f"gather=True needs the same number of columns on every rank, got {colset} "
            f"(rank {rank} has {cols}); every rank has to score the same classes."
        )
    agreed = [functools.reduce(torch.promote_types, (_DTYPES[row[3 + i]] for row in table))
              for i in range(len(codes))]
    return [row[1] for row in table], agreed


def all_gather_rows(t, sizes):
    """Concatenate ``t`` (this rank's rows) over the ranks, ``sizes`` being every rank's rows."""
    world = len(sizes)
    biggest = max(sizes)
    padded = torch.zeros((biggest,) + tuple(t.shape[1:]), dtype=t.dtype, device=t.device)
    padded[: t.shape[0]] = t
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat([p[:s] for p, s in zip(parts, sizes)])


def gather_pair(x, y, sizes, dtypes):
    """``x`` and ``y`` of every rank, concatenated along dim 0, cast to the agreed dtypes.

    Returns ``(x_all, y_all, local_rows, world)``: ``x_all[local_rows]`` is this rank's part.
    """
    rank = dist.get_rank()
    offset = sum(sizes[:rank])
    x_all = all_gather_rows(x.detach().to(dtypes[0]).contiguous(), sizes)
    y_all = all_gather_rows(y.detach().to(dtypes[1]).contiguous(), sizes)
    return x_all, y_all, slice(offset, offset + sizes[rank]), len(sizes)


def all_reduce_sum(t):
    """Sum ``t`` over the ranks (in place) and return it."""
    dist.all_reduce(t)
    return t
