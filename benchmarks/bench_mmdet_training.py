"""Training comparison in real mmdetection: ranking losses against their baselines.

The mmengine ``Runner`` trains each detector on the same small synthetic COCO-format set with
the same schedule, then mmdetection's ``CocoMetric`` (pycocotools) evaluates it on a held-out
synthetic set:

* RS-ATSS (``configs/rs_atss_r50_fpn_1x_coco.py``) against ATSS with focal loss (mmdetection's
  ``atss/atss_r50_fpn_1x_coco.py``);
* RS-GFL (``configs/rs_gfl_r50_fpn_1x_coco.py``) against GFL with QualityFocalLoss
  (``gfl/gfl_r50_fpn_1x_coco.py``).

Every detector is shrunk the same way (ResNet-18 from scratch, 32-channel FPN and heads, 3
classes; ``tests/_mmdet_helpers.tiny``); SGD (lr 0.01, momentum 0.9, weight decay 1e-4) with a
linear warm-up; the test score threshold is 0 for all (AP depends on the order of the scores
only, and ranking losses do not calibrate them).  Printed: COCO AP, AP50, AP75, the seconds per
training iteration (median over the iterations after the first epoch), and each ratio to the
baseline measured in the same run.  Runs on CPU with mmcv-lite (the ``mmcv._ext`` stand-in of
the tests provides a plain-torch NMS).

    python benchmarks/bench_mmdet_training.py [--epochs 12] [--train-images 32] [--size 96]
                                              [--timing-only]
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

import _mmdet_helpers as H  # noqa: E402

PAIRS = [("atss", "rs_atss"), ("gfl", "rs_gfl")]
BASELINES = {"atss": "mmdet::atss/atss_r50_fpn_1x_coco.py",
             "gfl": "mmdet::gfl/gfl_r50_fpn_1x_coco.py"}
LABELS = {"atss": "ATSS + focal", "rs_atss": "RS-ATSS", "gfl": "GFL + QFL", "rs_gfl": "RS-GFL"}


def write_coco(folder, n, size, seed):
    """``n`` synthetic images as PNG files and their COCO annotation file."""
    import cv2

    images, boxes, labels = H.synthetic_images(n, size, seed)
    os.makedirs(os.path.join(folder, "images"), exist_ok=True)
    coco = dict(images=[], annotations=[],
                categories=[dict(id=k + 1, name=f"class{k}") for k in range(H.NUM_CLASSES)])
    for i, (img, b, y) in enumerate(zip(images, boxes, labels)):
        name = f"{i:05d}.png"
        cv2.imwrite(os.path.join(folder, "images", name), img[..., ::-1])
        coco["images"].append(dict(id=i, file_name=name, width=size, height=size))
        for box, label in zip(b, y):
            x0, y0, x1, y1 = (float(v) for v in box)
            coco["annotations"].append(dict(
                id=len(coco["annotations"]) + 1, image_id=i, category_id=int(label) + 1,
                bbox=[x0, y0, x1 - x0, y1 - y0], area=(x1 - x0) * (y1 - y0), iscrowd=0))
    path = os.path.join(folder, "annotations.json")
    with open(path, "w") as f:
        json.dump(coco, f)
    return path


def runner_config(name, data, work_dir, args):
    from mmengine.config import Config

    if name in BASELINES:
        with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
            f.write(f"_base_ = {BASELINES[name]!r}\n")
        cfg = Config.fromfile(f.name)
        os.unlink(f.name)
    else:
        cfg = H.load_config(name)
    H.tiny(cfg)
    cfg.model.test_cfg.score_thr = 0.0
    metainfo = dict(classes=tuple(f"class{k}" for k in range(H.NUM_CLASSES)))
    resize = dict(type="Resize", scale=(args.size, args.size), keep_ratio=True)  # scale 1
    train_pipeline = [dict(type="LoadImageFromFile"), dict(type="LoadAnnotations", with_bbox=True),
                      resize, dict(type="RandomFlip", prob=0.5), dict(type="PackDetInputs")]
    test_pipeline = [dict(type="LoadImageFromFile"), resize,
                     dict(type="LoadAnnotations", with_bbox=True),
                     dict(type="PackDetInputs", meta_keys=("img_id", "img_path", "ori_shape",
                                                           "img_shape", "scale_factor"))]

    def loader(split, pipeline, batch_size, shuffle):
        return dict(batch_size=batch_size, num_workers=0, persistent_workers=False,
                    sampler=dict(type="DefaultSampler", shuffle=shuffle),
                    dataset=dict(type="CocoDataset", data_root=data[split],
                                 ann_file="annotations.json", data_prefix=dict(img="images/"),
                                 metainfo=metainfo, filter_cfg=dict(filter_empty_gt=False),
                                 pipeline=pipeline, test_mode=not shuffle))

    cfg.train_dataloader = loader("train", train_pipeline, args.batch_size, True)
    cfg.val_dataloader = loader("val", test_pipeline, 2, False)
    cfg.test_dataloader = cfg.val_dataloader
    cfg.val_evaluator = dict(type="CocoMetric", ann_file=os.path.join(data["val"],
                                                                      "annotations.json"),
                             metric="bbox", format_only=False)
    cfg.test_evaluator = cfg.val_evaluator
    cfg.train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=args.epochs,
                         val_interval=args.epochs + 1)  # evaluated once, after training
    cfg.optim_wrapper = dict(type="OptimWrapper", optimizer=dict(
        type="SGD", lr=args.lr, momentum=0.9, weight_decay=1e-4))
    iters = args.epochs * -(-args.train_images // args.batch_size)
    cfg.param_scheduler = [dict(type="LinearLR", start_factor=0.1, by_epoch=False, begin=0,
                                end=max(1, min(50, iters // 4)))]
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", interval=args.epochs,
                                        save_last=True)
    cfg.default_hooks.logger = dict(type="LoggerHook", interval=10 ** 6)
    cfg.default_hooks.visualization = dict(type="DetVisualizationHook", draw=False)
    cfg.log_level = "WARNING"
    # the visualizer is a named global instance: one per run, writing into this run's folder
    cfg.visualizer.name = f"rankref_bench_{name}_{os.path.basename(work_dir)}"
    cfg.work_dir = work_dir
    cfg.randomness = dict(seed=args.seed, deterministic=False)
    cfg.load_from = None
    cfg.resume = False
    cfg.env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method="fork"),
                       dist_cfg=dict(backend="gloo"))
    return cfg


ITER_TIMES = []


def register_timer():
    """The hook ``RankRefBenchIterTimes``: seconds of each training iteration in ITER_TIMES."""
    from mmengine.hooks import Hook
    from mmengine.registry import HOOKS

    if "RankRefBenchIterTimes" in HOOKS.module_dict:
        return

    @HOOKS.register_module(name="RankRefBenchIterTimes")
    class IterTimes(Hook):
        def before_train_iter(self, runner, batch_idx, data_batch=None):
            self.t0 = time.perf_counter()

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            ITER_TIMES.append(time.perf_counter() - self.t0)


def detection_scores(runner):
    """The scores of the detections kept on the validation images (top ``max_per_img``)."""
    import torch

    model = runner.model
    model.eval()
    scores = []
    with torch.no_grad():
        for data_batch in runner.val_dataloader:
            for sample in model.val_step(data_batch):
                scores.append(sample.pred_instances.scores.float().numpy())
    return np.concatenate(scores) if scores else np.zeros(0)


def interleaved_step_times(names, args):
    """Seconds per ``train_step`` of each model, measured in turns (A, B, A, B, ...) on the same
    batch, so that a change of the machine's load hits every model alike; medians."""
    from mmengine.config import Config
    from mmengine.optim import OptimWrapper
    import torch
    from mmdet.registry import MODELS

    models, optims = {}, {}
    for name in names:
        if name in BASELINES:
            cfg = Config(dict(model=runner_config(name, {"train": "", "val": ""}, "",
                                                  args).model))
        else:
            cfg = H.tiny(H.load_config(name))
        torch.manual_seed(args.seed)
        models[name] = MODELS.build(cfg.model)
        H.quiet()
        models[name].init_weights()
        models[name].train()
        optims[name] = OptimWrapper(torch.optim.SGD(models[name].parameters(), lr=args.lr,
                                                    momentum=0.9))
    data = H.batch(n=args.batch_size, size=args.size, seed=args.seed)
    times = {name: [] for name in names}
    for k in range(args.timing_iters + 1):
        for name in names:
            t0 = time.perf_counter()
            models[name].train_step(data, optims[name])
            if k:  # the first step of each model is a warm-up
                times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def train_and_evaluate(name, data, args):
    from mmengine.runner import Runner

    register_timer()
    ITER_TIMES.clear()
    times = ITER_TIMES
    with tempfile.TemporaryDirectory() as work_dir:
        cfg = runner_config(name, data, work_dir, args)
        cfg.custom_hooks = [dict(type="RankRefBenchIterTimes")]
        runner = Runner.from_cfg(cfg)
        H.quiet()
        runner.train()
        metrics = {k.split("/")[-1]: float(v) for k, v in runner.val().items()}
        metrics["scores"] = detection_scores(runner)
    per_epoch = -(-args.train_images // args.batch_size)
    steady = list(times[per_epoch:] or times)
    return metrics, statistics.median(steady)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--train-images", type=int, default=32)
    p.add_argument("--val-images", type=int, default=16)
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pairs", default="atss,gfl", help="baselines to run: atss, gfl")
    p.add_argument("--timing-iters", type=int, default=10,
                   help="train_step iterations per model for the interleaved timing")
    p.add_argument("--timing-only", action="store_true", help="skip training and evaluation")
    args = p.parse_args(argv)

    H.import_mmdet()  # registers rankref's heads and losses on mmdetection's MODELS
    from mmdet.utils import register_all_modules
    import mmdet
    import mmengine
    import torch

    register_all_modules()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(f"mmdet {mmdet.__version__}, mmengine {mmengine.__version__}, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads; {args.train_images} train / "
          f"{args.val_images} val images of {args.size}x{args.size}, {H.NUM_CLASSES} classes, "
          f"{args.epochs} epochs, batch {args.batch_size}")
    with tempfile.TemporaryDirectory() as root:
        data = {"train": os.path.join(root, "train"), "val": os.path.join(root, "val")}
        write_coco(data["train"], args.train_images, args.size, args.seed)
        write_coco(data["val"], args.val_images, args.size, args.seed + 1000)
        rows = []
        for base, ranked in [pr for pr in PAIRS if pr[0] in args.pairs.split(",")]:
            step = interleaved_step_times((base, ranked), args)
            results = {}
            for name in (base, ranked):
                if args.timing_only:
                    results[name] = None
                    continue
                t0 = time.perf_counter()
                results[name] = train_and_evaluate(name, data, args)
                print(f"  {LABELS[name]:<14} trained and evaluated in "
                      f"{time.perf_counter() - t0:.0f} s", flush=True)
            for name in (base, ranked):
                rows.append((LABELS[name], results[name], step[name], step[name] / step[base]))
    print(f"\n{'detector':<14} {'AP':>6} {'AP50':>6} {'AP75':>6} {'s/iter':>7} {'vs base':>7} "
          f"{'Runner s/iter':>13}   scores kept: min / median / max, share >= 0.05")
    for label, result, step, ratio in rows:
        if result is None:
            print(f"{label:<14} {'':>6} {'':>6} {'':>6} {step:7.3f} {ratio:6.2f}x")
            continue
        m, runner_step = result
        sc = m["scores"]
        print(f"{label:<14} {m['bbox_mAP']:6.3f} {m['bbox_mAP_50']:6.3f} {m['bbox_mAP_75']:6.3f} "
              f"{step:7.3f} {ratio:6.2f}x {runner_step:13.3f}   {sc.min():.3f} / "
              f"{np.median(sc):.3f} / {sc.max():.3f}, {np.mean(sc >= 0.05):.0%}")
    return rows


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
