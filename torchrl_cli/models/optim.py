"""A model's optimizer: made fused where torch has a fused kernel, and made, saved, zeroed and
stepped without importing TorchDynamo.

torch wraps the optimizer's methods for TorchDynamo: some (``zero_grad``, ``state_dict``, ...)
import it on their first call to mark themselves as never traced, and ``step`` imports it on
every call to place graph breaks around the update, under a profiler hook. Importing
TorchDynamo takes about as long as importing torch itself (0.7-1 s on an idle 2-core machine,
several seconds under load), and this tool never traces an optimizer: each of those methods
is marked as handled up front, and ``step_optimizer`` calls the update itself, under ``no_grad``
as torch's wrapper would. Only wrappers of torch's own exact form are touched; anything else
(another torch, a differentiable optimizer, step hooks) takes torch's ``step``.
"""

import functools
import inspect
import sys
from collections.abc import Callable

import torch
from torch.optim.optimizer import _global_optimizer_post_hooks, _global_optimizer_pre_hooks

# torch.optim.Optimizer methods that torch wraps with torch._disable_dynamo
UNTRACED_OPTIMIZER_METHODS = ("add_param_group", "state_dict", "load_state_dict", "zero_grad")


def skip_dynamo_import() -> None:
    """Mark the optimizer methods torch wraps with ``torch._disable_dynamo`` as handled, with
    themselves, so that their first call imports nothing."""
    for name in UNTRACED_OPTIMIZER_METHODS:
        method = getattr(torch.optim.Optimizer, name)
        wrapped = getattr(method, "__wrapped__", None)
        if wrapped is not None and method.__code__.co_filename.endswith("torch/_compile.py"):
            wrapped.__dynamo_disable = wrapped


def make_optimizer(
    optimizer: Callable[..., torch.optim.Optimizer], params
) -> torch.optim.Optimizer:
    """Call the partial optimizer constructor, with ``fused=True`` where the optimizer has a
    fused implementation and the config does not say otherwise: the same update in one kernel
    per step (Adam on a 64x64 MLP: ~35 instead of ~90 us per step, docs/performance.md)."""
    skip_dynamo_import()
    func = getattr(optimizer, "func", optimizer)
    given = getattr(optimizer, "keywords", {})
    if "fused" in inspect.signature(func).parameters and "fused" not in given:
        return optimizer(params, fused=True)
    return optimizer(params)


def _torch_wrapper(func: Callable) -> bool:
    return getattr(func, "__wrapped__", None) is not None and func.__code__.co_filename.endswith(
        "torch/optim/optimizer.py"
    )


@functools.cache
def _update_of(cls: type) -> Callable | None:
    """``cls.step``'s own update function beneath torch's wrappers (None where they are not
    the expected ones); the functional update it calls (``torch.optim.adam.adam``, ...) is
    marked as handled, as ``skip_dynamo_import`` marks the methods."""
    update = cls.step
    while _torch_wrapper(update):
        update = update.__wrapped__
    if update is cls.step:
        return None
    for value in list(vars(sys.modules[cls.__module__]).values()):
        if callable(value) and _torch_wrapper(value):
            inner = value.__wrapped__
            if getattr(inner, "__dynamo_disable", None) is None:
                inner.__dynamo_disable = inner
    return update


def step_optimizer(optimizer: torch.optim.Optimizer) -> None:
    """``optimizer.step()`` as a call of the optimizer's own update under ``no_grad``: the same
    arithmetic, without the profiler hook and the TorchDynamo graph breaks torch wraps it in.
    torch's ``step`` where its wrappers would do something here (a differentiable optimizer,
    step hooks) or are not the expected ones."""
    update = _update_of(type(optimizer))
    hooked = (
        _global_optimizer_pre_hooks
        or _global_optimizer_post_hooks
        or optimizer._optimizer_step_pre_hooks
        or optimizer._optimizer_step_post_hooks
    )
    if update is None or hooked or optimizer.defaults.get("differentiable"):
        optimizer.step()
        return
    with torch.no_grad():
        update(optimizer)
