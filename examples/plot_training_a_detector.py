"""
Training a detector with RS loss
================================

A complete anchor-based one-stage detector, trained twice on synthetic images: once as an RS
head (:class:`rankref.torch.RankSortLoss` on IoU targets taken from the predicted boxes, a
GIoU box loss weighted by the classification scores and balanced by the loss values) and once
as a RetinaNet head (focal loss, plain GIoU).  Both runs share the backbone, the anchors, the
assigner, the optimiser and the schedule; COCO-style AP is measured on held-out images.

The guide :doc:`/training` explains each step and gives the mmdetection configuration.
"""
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import rankref.torch as rt

IMG, C = 32, 2                      # image size, number of classes
STRIDE, SIZES = 4, (6.0, 10.0, 16.0)  # one feature level, three square anchors per cell
A = len(SIZES)
torch.manual_seed(0)


# %%
# Synthetic images
# ----------------
# Each image holds one to three boxes: red rectangles (class 0) and green ones (class 1), on
# noise with small clutter of both colours, so the detector has hard negatives to rank.

def make_images(n, seed, max_boxes=3):
    """Images [n, 3, 32, 32] and padded ground truths: boxes [n, max_boxes, 4] (x0, y0, x1,
    y1), labels [n, max_boxes] and a mask of the real ones."""
    rng = np.random.default_rng(seed)
    imgs = rng.normal(0.0, 0.25, (n, 3, IMG, IMG)).astype(np.float32)
    boxes = np.zeros((n, max_boxes, 4), np.float32)
    labels = np.zeros((n, max_boxes), np.int64)
    valid = np.zeros((n, max_boxes), bool)
    for i in range(n):
        for j in range(rng.integers(1, max_boxes + 1)):
            w, h = rng.uniform(5, 16, 2)
            x0, y0 = rng.uniform(0, IMG - w), rng.uniform(0, IMG - h)
            c = int(rng.integers(0, C))
            imgs[i, c, int(y0):int(np.ceil(y0 + h)), int(x0):int(np.ceil(x0 + w))] += 1.0
            boxes[i, j], labels[i, j], valid[i, j] = (x0, y0, x0 + w, y0 + h), c, True
        for _ in range(3):  # clutter: 2x2 dots
            y, x = rng.integers(0, IMG - 2, 2)
            imgs[i, rng.integers(0, 3), y:y + 2, x:x + 2] += 1.0
    return tuple(torch.from_numpy(a) for a in (imgs, boxes, labels, valid))


train_imgs, *train_gts = make_images(256, seed=1)
val_imgs, *val_gts = make_images(48, seed=2)


# %%
# Anchors, boxes and the assigner
# -------------------------------
# Anchors are ordered (row, column, size), as the head's outputs are flattened below.

def make_anchors():
    centres = (torch.arange(IMG // STRIDE, dtype=torch.float32) + 0.5) * STRIDE
    cy, cx = torch.meshgrid(centres, centres, indexing="ij")
    s = torch.tensor(SIZES)
    cx, cy = cx[..., None].expand(-1, -1, A), cy[..., None].expand(-1, -1, A)
    half = (s / 2).expand_as(cx)
    return torch.stack([cx - half, cy - half, cx + half, cy + half], -1).reshape(-1, 4)


ANCHORS = make_anchors()


def box_iou(a, b):
    """IoU of every box of ``a`` [..., n, 4] with every box of ``b`` [..., m, 4]."""
    lt = torch.maximum(a[..., :, None, :2], b[..., None, :, :2])
    rb = torch.minimum(a[..., :, None, 2:], b[..., None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[..., 2:] - a[..., :2]).prod(-1)
    area_b = (b[..., 2:] - b[..., :2]).prod(-1)
    return inter / (area_a[..., :, None] + area_b[..., None, :] - inter)


def giou_loss(p, g):
    """1 - GIoU of aligned boxes [n, 4]."""
    lt, rb = torch.maximum(p[:, :2], g[:, :2]), torch.minimum(p[:, 2:], g[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    union = (p[:, 2:] - p[:, :2]).prod(-1) + (g[:, 2:] - g[:, :2]).prod(-1) - inter
    hull = (torch.maximum(p[:, 2:], g[:, 2:]) - torch.minimum(p[:, :2], g[:, :2])).prod(-1)
    return 1 - inter / union + (hull - union) / hull


def decode(anchors, deltas):
    """Box deltas (dx, dy, dw, dh), scaled by (0.1, 0.1, 0.2, 0.2), to boxes."""
    wh = anchors[:, 2:] - anchors[:, :2]
    ctr = anchors[:, :2] + wh / 2 + deltas[:, :2] * 0.1 * wh
    size = wh * torch.exp((deltas[:, 2:] * 0.2).clamp(max=4.0))
    return torch.cat([ctr - size / 2, ctr + size / 2], 1)


def assign(gt_boxes, gt_labels, valid, pos_thr=0.5, neg_thr=0.4):
    """Max-IoU assigner (RetinaNet), for a batch of images at once.

    Returns each anchor's label in [0, C] (C background), its weight (0 for the anchors
    between the thresholds, which are ignored) and its matched ground-truth box.  Every ground
    truth keeps its best anchor."""
    iou = box_iou(ANCHORS, gt_boxes).masked_fill(~valid[:, None, :], -1.0)  # [n, anchors, G]
    best, gt_idx = iou.max(2)
    labels = torch.where(best >= pos_thr, gt_labels.gather(1, gt_idx), C)
    weight = ((best < neg_thr) | (best >= pos_thr)).float()
    img, g = torch.nonzero(valid, as_tuple=True)
    own = iou.argmax(1)[img, g]
    labels[img, own], gt_idx[img, own], weight[img, own] = gt_labels[img, g], g, 1.0
    boxes = gt_boxes.gather(1, gt_idx[..., None].expand(-1, -1, 4))
    return labels, weight, boxes


# The assignment does not depend on the network: it is made once for the training set.
train_labels, train_weight, train_boxes = assign(*train_gts)


# %%
# The head
# --------
# A small convolutional backbone at stride 4 (4x4 patches, then two 3x3 convolutions), a
# classification branch with C sigmoid outputs per anchor (prior bias of 0.01) and a box branch.

class Detector(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(3, 32, STRIDE, stride=STRIDE), nn.ReLU(),  # patches of 4x4 pixels
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU())
        self.cls = rt.init_prior_bias_(nn.Conv2d(32, A * C, 3, padding=1), 0.01)
        self.reg = nn.Conv2d(32, A * 4, 3, padding=1)

    def forward(self, x):
        f = self.backbone(x)
        n, _, h, w = f.shape
        cls = self.cls(f).reshape(n, A, C, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, C)
        reg = self.reg(f).reshape(n, A, 4, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, 4)
        return cls, reg


# %%
# The two losses
# --------------
# The RS head ranks the logits of the whole batch together: the targets are the IoUs of the
# *predicted* boxes of the positives with their ground truths (detached), passed in
# mmdetection's ``(labels, scores)`` convention.  Its box loss weights each positive by its
# classification score and is scaled to the value of the RS loss (the RS paper's tuning-free
# balance).  The focal head is RetinaNet's.

rs_loss = rt.RankSortLoss(delta=0.5)


def focal_loss(logits, labels, weight, alpha=0.25, gamma=2.0):
    onehot = F.one_hot(labels, C + 1)[:, :C].float()
    p = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, onehot, reduction="none")
    pt = p * onehot + (1 - p) * (1 - onehot)
    at = alpha * onehot + (1 - alpha) * (1 - onehot)
    return (at * (1 - pt) ** gamma * ce * weight[:, None]).sum()


def losses(model, idx, kind):
    cls, reg = model(train_imgs[idx])
    cls, reg = cls.reshape(-1, C), reg.reshape(-1, 4)
    labels, weight = train_labels[idx].reshape(-1), train_weight[idx].reshape(-1)
    gt_boxes = train_boxes[idx].reshape(-1, 4)
    pos = torch.nonzero((labels < C) & (weight > 0)).squeeze(1)
    pred_boxes = decode(ANCHORS.repeat(len(idx), 1)[pos], reg[pos])
    box = giou_loss(pred_boxes, gt_boxes[pos])
    if kind == "RS loss":
        scores = torch.zeros(len(labels))
        with torch.no_grad():  # IoU of the predicted boxes: the quality the logits are sorted by
            scores[pos] = box_iou(pred_boxes[:, None], gt_boxes[pos][:, None]).reshape(-1)
        loss_cls = rs_loss(cls, (labels, scores), weight=weight)
        w = cls.detach().sigmoid().max(1).values[pos]
        loss_box = (w * box).sum() / w.sum().clamp(min=1e-12)
        loss_box = loss_box * (loss_cls.detach() / loss_box.detach().clamp(min=1e-12))
    else:
        loss_cls = focal_loss(cls, labels, weight) / max(len(pos), 1)
        loss_box = box.mean()
    return loss_cls + loss_box


# %%
# Evaluation: COCO-style AP
# -------------------------
# Per class: the 20 best scores, non-maximum suppression at IoU 0.5, greedy matching in score
# order, 101-point interpolated precision, averaged over IoU 0.5:0.95 and the classes.  There is
# no score threshold: a ranking loss orders the scores without calibrating them, and early in
# training the RS head's scores all lie below the usual threshold of 0.05 (see the guide).

THRESHOLDS = torch.arange(0.5, 0.951, 0.05)


def nms(boxes, scores, thr=0.5):
    """Indices kept by non-maximum suppression (``boxes`` sorted by descending score)."""
    iou, keep = box_iou(boxes, boxes), []
    suppressed = torch.zeros(len(boxes), dtype=torch.bool)
    for i in range(len(boxes)):
        if not suppressed[i]:
            keep.append(i)
            suppressed |= iou[i] > thr
    return torch.tensor(keep, dtype=torch.int64)


@torch.no_grad()
def detect(model, imgs):
    """Per image and class: (boxes, scores) after NMS, in descending score order."""
    cls, reg = model(imgs)
    out = []
    for k in range(len(imgs)):
        boxes, probs = decode(ANCHORS, reg[k]), cls[k].sigmoid()
        per_class = []
        for c in range(C):
            keep = probs[:, c].topk(20).indices
            kept = keep[nms(boxes[keep], probs[keep, c])]
            per_class.append((boxes[kept], probs[kept, c]))
        out.append(per_class)
    return out


def coco_ap(dets, gt_boxes, gt_labels, valid):
    aps = []
    for c in range(C):
        scores, hits, num_gt = [], [], 0
        for k, per_class in enumerate(dets):
            boxes, s = per_class[c]
            g = gt_boxes[k][valid[k] & (gt_labels[k] == c)]
            num_gt += len(g)
            hit = torch.zeros(len(boxes), len(THRESHOLDS), dtype=torch.bool)
            if len(g) and len(boxes):
                iou = box_iou(boxes, g)
                # greedy matching in score order, every IoU threshold at once
                free = torch.ones(len(g), len(THRESHOLDS), dtype=torch.bool)
                cols = torch.arange(len(THRESHOLDS))
                for j in range(len(boxes)):
                    best, arg = torch.where(free, iou[j][:, None], -1.0).max(0)
                    hit[j] = best >= THRESHOLDS
                    free[arg[hit[j]], cols[hit[j]]] = False
            scores.append(s)
            hits.append(hit)
        order = torch.cat(scores).argsort(descending=True)
        tp = torch.cat(hits)[order].double().cumsum(0)  # [detections, thresholds]
        precision = tp / torch.arange(1, len(order) + 1, dtype=torch.float64)[:, None]
        recall = tp / max(num_gt, 1)
        precision = precision.flip(0).cummax(0).values.flip(0)  # interpolated
        for t in range(len(THRESHOLDS)):
            i = torch.searchsorted(recall[:, t].contiguous(), torch.linspace(0, 1, 101,
                                                                             dtype=torch.float64))
            padded = torch.cat([precision[:, t], torch.zeros(1, dtype=torch.float64)])
            aps.append(float(padded[i].mean()))
    return float(np.mean(aps))


# %%
# Training
# --------
# The same schedule for both heads: Adam, batches of 8 images, 240 steps.  The tensors are
# tiny, so one thread is the fastest.

def train(kind, steps=240, batch=8, evaluate_every=60):
    torch.manual_seed(0)
    model = Detector()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    curve, order = [], torch.randperm(len(train_imgs))
    for step in range(steps + 1):
        if step % evaluate_every == 0:
            curve.append((step, coco_ap(detect(model, val_imgs), *val_gts)))
        if step == steps:
            break
        start = (step * batch) % len(order)
        loss = losses(model, order[start:start + batch], kind)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model, np.array(curve)


threads = torch.get_num_threads()
torch.set_num_threads(1)
results = {}
for kind in ("RS loss", "focal loss"):
    start = time.perf_counter()
    results[kind] = train(kind)
    print(f"{kind:10s}: COCO AP {results[kind][1][-1, 1]:.3f} on the held-out images "
          f"(trained and evaluated in {time.perf_counter() - start:.1f} s)")
torch.set_num_threads(threads)

# %%
# AP during training, and the RS detector on a held-out image.

fig, (ax, ax_img) = plt.subplots(1, 2, figsize=(10, 4))
for kind, (_, curve) in results.items():
    ax.plot(curve[:, 0], curve[:, 1], marker="o", label=f"{kind} (AP {curve[-1, 1]:.3f})")
ax.set(xlabel="step", ylabel="COCO AP (0.5:0.95)", title="same head, same schedule")
ax.legend()
k = 0
ax_img.imshow(val_imgs[k].permute(1, 2, 0).clamp(0, 1).numpy())
for b in val_gts[0][k][val_gts[2][k]]:
    ax_img.add_patch(plt.Rectangle(b[:2], *(b[2:] - b[:2]), fill=False, ec="white", lw=2))
dets = detect(results["RS loss"][0], val_imgs[k:k + 1])[0]
best = max(float(s.max()) for _, s in dets if len(s))
for c, colour in zip(range(C), ("red", "lime")):
    for b, s in zip(*dets[c]):
        if s > 0.5 * best:
            ax_img.add_patch(plt.Rectangle(b[:2], *(b[2:] - b[:2]), fill=False, ec=colour,
                                           ls="--"))
            ax_img.text(b[0], b[1], f"{s:.2f}", color=colour, fontsize=8)
ax_img.set(title="RS head: best detections (dashed), ground truth (white)")
ax_img.axis("off")
fig.tight_layout()
plt.show()
