"""Registration of the loss modules in mmdetection's (or any mmengine) registry."""
from .losses import APLoss, BalancedL1Loss, GAPLoss, LGRCrossEntropyLoss, RankSortLoss

__all__ = ["register_mmdet"]

LOSSES = (RankSortLoss, APLoss, GAPLoss, BalancedL1Loss, LGRCrossEntropyLoss)


def register_mmdet(registry=None, prefix="RankRef"):
    """Register rankref's loss modules in mmdetection's ``MODELS`` registry (or ``registry``).

    The names are ``prefix`` + the class name: ``RankRefRankSortLoss``, ``RankRefAPLoss``,
    ``RankRefGAPLoss``, ``RankRefBalancedL1Loss`` and ``RankRefLGRCrossEntropyLoss`` by default
    (the prefix keeps them apart from mmdetection's own ``BalancedL1Loss``).  Calling it again is
    harmless.  Then a config selects a loss by name, e.g.
    ``loss_cls=dict(type="RankRefRankSortLoss", use_sigmoid=True, loss_weight=1.0)``.

    Parameters
    ----------
    registry : mmengine Registry, optional
        Default: ``mmdet.registry.MODELS`` (mmdetection 3.x must then be installed).
    prefix : str, default "RankRef"

    Returns
    -------
    dict
        The registered names and classes.

    Raises
    ------
    ValueError
        When a name is already taken by another class in ``registry`` (choose another
        ``prefix``).

    Examples
    --------
    With mmengine installed (``pip install ".[test]"`` has it; the doctest is skipped without):

    >>> import pytest; _ = pytest.importorskip("mmengine")
    >>> from mmengine.registry import Registry
    >>> import rankref.torch as rt
    >>> MODELS = Registry("model", scope="demo")
    >>> sorted(rt.register_mmdet(MODELS))
    ['RankRefAPLoss', 'RankRefBalancedL1Loss', 'RankRefGAPLoss', 'RankRefLGRCrossEntropyLoss', 'RankRefRankSortLoss']
    >>> MODELS.build(dict(type="RankRefRankSortLoss", loss_weight=1.0))
    RankSortLoss(delta=0.5, method='bucketed', loss_weight=1.0, gather=False)
    """
    if not isinstance(prefix, str) or not (prefix == "" or prefix.isidentifier()):
        raise ValueError(f"prefix must be a string usable in a class name, got {prefix!r}.")
    if registry is None:
        try:
            from mmdet.registry import MODELS as registry
        except ImportError as exc:
            raise ImportError(
                "register_mmdet() without a registry needs mmdetection 3.x (mmdet.registry."
                f"MODELS); pass an mmengine Registry instead ({exc})."
            ) from exc
    for attr in ("get", "register_module"):
        if not callable(getattr(registry, attr, None)):
            raise TypeError(f"registry must be an mmengine Registry, got "
                            f"{type(registry).__name__}.")
    out = {}
    for cls in LOSSES:
        name = prefix + cls.__name__
        current = registry.module_dict.get(name) if hasattr(registry, "module_dict") else None
        if current is not None and current is not cls:
            raise ValueError(
                f"{name} is already registered in {registry!r} as {current!r}; pass another "
                f"prefix to register_mmdet."
            )
        if current is None:
            registry.register_module(name=name, module=cls)
        out[name] = cls
    return out
