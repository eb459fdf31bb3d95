"""A trained policy as one ONNX model (``torchrl export <run> format=onnx``): the observation
encoding, the frozen normalization, the policy network and the greedy action (masked, clipped)
in one graph, checked against the torch policy with onnxruntime before it is written.

The model's inputs, batch dimension ``batch`` free: ``obs`` for an array observation, else one
input per entry of a Dict or Tuple observation, named by its key path (``grid``,
``outer.0``; a PettingZoo mask entry is ``action_mask``), and ``action_mask`` for an env that
gives its legal actions in the info; the dtypes are the env's (a plain Box as float32; int8
masks). Its output is ``action``, as the torch policy gives it. A policy with a memory is one
step with its state explicit (``run.policy.RecurrentStep``): a ``state`` input after the
observation (zeros at an episode start) and a ``next_state`` output after ``action``."""

import logging
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from torchrl_cli.errors import ConfigError, FaultError, first_line
from torchrl_cli.run.policy import (
    RECURRENT_CHECK_STEPS,
    Policy,
    RecurrentStep,
    example_inputs,
    tree_map,
)

INSTALL = "pip install 'torchrl-cli[onnx]'"
OUTPUT = "action"
NEXT_STATE = "next_state"  # a recurrent policy's second output
CHECK_BATCHES = (1, 64)  # random observations the model is checked on, per batch
TOLERANCE = 1e-5  # float actions: relative, and absolute on the scale of the actions
_OP = re.compile(r"OpOverload\(op='(\w+)\.([\w.]+)', overload='(\w+)'\)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_EXPORTER_LOGGERS = ("torch", "torch.__trace", "onnxscript", "onnx_ir")


def require_onnx() -> None:
    """The packages an ONNX export needs, or a one-line ConfigError saying how to get them."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as err:
        raise ConfigError(f"format=onnx needs onnx, onnxruntime and onnxscript ({err}); "
                          f"{INSTALL}") from None


def export_onnx(policy: Policy, out: Path) -> Path:
    """Write ``policy`` to ``out`` as an ONNX model, once onnxruntime acts as the torch policy
    does on random observations (``check_onnx``); nothing is written otherwise."""
    require_onnx()
    inputs = onnx_inputs(policy, 2)
    batch = torch.export.Dim("batch", min=1)
    with _quiet_exporter(), torch.no_grad():
        try:
            program = torch.onnx.export(
                onnx_module(policy),
                (),
                kwargs=inputs,
                dynamic_shapes=tree_map(lambda _: {0: batch}, inputs),
                input_names=input_names(inputs),
                output_names=[OUTPUT, NEXT_STATE] if policy.recurrent else [OUTPUT],
                dynamo=True,
                verbose=False,
            )
        except torch.onnx.OnnxExporterError as err:
            raise ConfigError(exporter_problem(err)) from None
    partial = out.with_name(f".{out.name}.tmp")
    try:
        program.save(partial, external_data=False)
        check_onnx(policy, partial)
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
    return out


def onnx_module(policy: Policy) -> torch.nn.Module:
    """What the model computes: the greedy policy, or one step of it with its state."""
    return RecurrentStep(policy.module).eval() if policy.recurrent else policy.module


def onnx_inputs(
    policy: Policy,
    batch: int,
    rng: np.random.Generator | None = None,
    state: torch.Tensor | None = None,
) -> dict:
    """``example_inputs``, with a recurrent policy's ``state`` after the observation (fresh
    zeros unless given), in ``RecurrentStep``'s order."""
    inputs = example_inputs(policy, batch, rng)
    if not policy.recurrent:
        return inputs
    ordered = {"obs": inputs.pop("obs")}
    ordered["state"] = policy.initial_state(batch) if state is None else state
    return ordered | inputs


def input_names(inputs: dict) -> list[str]:
    """The model's input names, in the order of its inputs: ``obs`` for an array, the key
    paths of a Dict or Tuple observation (dotted), ``action_mask``."""
    names = []
    for name, value in inputs.items():
        if isinstance(value, torch.Tensor):
            names.append(name)
        else:
            names.extend(".".join(path) for path in _paths(value))
    return names


def _paths(tree, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    if isinstance(tree, dict | tuple):
        items = tree.items() if isinstance(tree, dict) else enumerate(tree)
        for key, value in items:
            yield from _paths(value, (*prefix, str(key)))
    else:
        yield prefix


def _leaves(tree) -> Iterator[torch.Tensor]:
    if isinstance(tree, dict | tuple):
        for value in tree.values() if isinstance(tree, dict) else tree:
            yield from _leaves(value)
    else:
        yield tree


def model_signature(policy: Policy) -> str:
    """``name dtype [batch, ...]`` of each input and of the output, for the user."""
    inputs = onnx_inputs(policy, 1)
    leaves = list(_leaves(inputs))
    with torch.no_grad():
        out = onnx_module(policy)(**inputs)

    def describe(name: str, tensor: torch.Tensor) -> str:
        dims = ", ".join(["batch", *(str(d) for d in tensor.shape[1:])])
        return f"{name} {str(tensor.dtype).removeprefix('torch.')} [{dims}]"

    described = [describe(n, t) for n, t in zip(input_names(inputs), leaves, strict=True)]
    if not policy.recurrent:
        return f"inputs {', '.join(described)}; output {describe(OUTPUT, out)}"
    outputs = f"{describe(OUTPUT, out[0])}, {describe(NEXT_STATE, out[1])}"
    return (f"inputs {', '.join(described)}; outputs {outputs} (state: zeros at an episode "
            f"start, then the last {NEXT_STATE})")  # fmt: skip


def check_onnx(policy: Policy, path: Path) -> None:
    """onnxruntime runs the model at ``path`` on random observations of each of
    ``CHECK_BATCHES`` sizes and gives the torch policy's actions: integer actions equal, float
    ones within ``TOLERANCE``; else a FaultError. A recurrent model steps
    ``RECURRENT_CHECK_STEPS`` times, each side's state fed back to it, the states within
    ``TOLERANCE`` too."""
    import onnxruntime

    rng = np.random.default_rng(0)
    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime's errors derive from Exception alone
        raise FaultError(f"onnxruntime cannot load the exported model ({_message(err)}); "
                         "export format=torch instead") from None
    module = onnx_module(policy)
    for batch in CHECK_BATCHES:
        want_state = got_state = None
        for _ in range(RECURRENT_CHECK_STEPS if policy.recurrent else 1):
            inputs = onnx_inputs(policy, batch, rng, want_state)
            names = input_names(inputs)
            feed = {n: t.numpy() for n, t in zip(names, _leaves(inputs), strict=True)}
            if got_state is not None:
                feed["state"] = got_state
            with torch.no_grad():
                want = module(**inputs)
            if policy.recurrent:
                want, want_state = want
            try:
                got, *rest = session.run(None, feed)
            except Exception as err:
                raise FaultError(f"onnxruntime cannot run the exported model ({_message(err)})"
                                 "; export format=torch instead") from None
            compare_actions(got, want.numpy(), batch)
            if policy.recurrent:
                got_state = rest[0]
                if not np.allclose(got_state, want_state.numpy(), rtol=TOLERANCE,
                                   atol=TOLERANCE):  # fmt: skip
                    raise FaultError("the ONNX model's next state differs from the torch "
                                     "policy's; nothing written: export format=torch instead")


def compare_actions(got: np.ndarray, want: np.ndarray, batch: int) -> None:
    """A FaultError unless the ONNX model's actions are the torch policy's (integers equal,
    floats within ``TOLERANCE``)."""
    if got.shape != want.shape or got.dtype != want.dtype:
        wrong = f"{got.dtype} {list(got.shape)} actions, not {want.dtype} {list(want.shape)}"
        raise FaultError(f"the ONNX model gives {wrong}; export format=torch instead")
    if want.dtype.kind == "f":
        scale = TOLERANCE * max(1.0, float(np.abs(want).max()))
        off = ~np.isclose(got, want, rtol=TOLERANCE, atol=scale)
    else:
        off = got != want
    if off.any():
        differ = off.reshape(batch, -1).any(axis=1).sum()
        largest = float(np.abs(got.astype(np.float64) - want).max())
        raise FaultError(
            f"the ONNX model's actions differ from the torch policy's on {differ} of "
            f"{batch} random observations (largest difference {largest:.3g}); nothing "
            "written: export format=torch instead"
        )


def exporter_problem(err: Exception) -> str:
    """The one line for an exporter failure: the op ONNX has no function for, when it is
    one (``aten::rrelu_with_noise_functional``), else the exporter's own summary."""
    texts, seen = [], err
    while seen is not None:
        texts.append(_ANSI.sub("", str(seen)))
        seen = seen.__cause__ or seen.__context__
    for text in texts:
        match = _OP.search(text)
        if match:
            namespace, name, overload = match.groups()
            op = f"{namespace}::{name}" + ("" if overload == "default" else f".{overload}")
            return (f"ONNX has no export for op {op}, which the policy uses; export "
                    "format=torch instead, or build the net of layers ONNX supports")
    return (f"the ONNX exporter failed ({_summary(texts[0])}); export format=torch instead, "
            "or set TORCHRL_DEBUG=1 for the exporter's traceback")


def _summary(text: str) -> str:
    """The first line of the exporter's 'Exception summary', or of its message."""
    _, found, rest = text.partition("## Exception summary")
    return _message(rest if found else text)


def _message(err: Exception | str) -> str:
    return first_line(err, limit=None, empty="no message")


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter without its warnings and log records (torchvision ops it skips, axis
    names, deprecations, its passes' debug lines): the command prints its own lines."""
    loggers = [logging.getLogger(name) for name in _EXPORTER_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
