"""A NumPy RS loss in a module that also uses torch, for crosscheck's framework detection: the
auto guess is torch (the module uses torch), the call fails on tensors, and the report suggests
``--framework numpy``."""
import numpy as np
import torch

import rankref


def rank_sort(logits, targets, delta):
    return rankref.rank_sort_loss(np.asarray(logits), np.asarray(targets), delta)


def as_tensor(values):
    return torch.as_tensor(values)
