"""Env snapshots: the state of an env and its wrappers as JSON, so that a resumed run continues
the very episodes it was in (same observations, same random stream).

A snapshot holds, for each layer of the wrapper chain, its plain-data attributes (numbers,
strings, arrays) and its random generator's state; MuJoCo envs add their integration state.
JSON, not pickle: restoring a snapshot can never run code from a checkpoint. Simulators whose
state lives in native objects out of reach (Box2D worlds, the ALE) are not restorable:
``EXACT_SIMULATORS`` lists those that are.
"""

import json

import gymnasium as gym
import numpy as np

EXACT_SIMULATORS = ("classic_control", "toy_text", "mujoco")
_SKIPPED = {"env", "spec", "metadata", "render_mode"}


class Snapshot(gym.Wrapper):
    """The outermost wrapper of each sub-env, reached through ``VectorEnv.call`` and
    ``set_attr`` in this process (sync) or in its subprocess (async)."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.pending_snapshot: str | None = None  # set per copy by VectorEnv.set_attr

    def get_snapshot(self) -> str:
        return snapshot(self.env)

    def restore_pending_snapshot(self) -> None:
        restore(self.env, self.pending_snapshot)
        self.pending_snapshot = None


def snapshot(env: gym.Env | gym.vector.VectorEnv) -> str:
    """The state of ``env`` and every wrapper under it, as JSON."""
    return json.dumps([_layer_state(layer) for layer in _layers(env)])


def restore(env: gym.Env | gym.vector.VectorEnv, text: str) -> None:
    """Put ``snapshot``'s state back into an env built the same way."""
    for layer, state in zip(_layers(env), json.loads(text), strict=True):
        _set_layer_state(layer, state)


def _layers(env) -> list:
    layers = [env]
    while isinstance(layers[-1], gym.Wrapper | gym.vector.VectorWrapper):
        layers.append(layers[-1].env)
    return layers


def _layer_state(layer) -> dict:
    state = {
        "attrs": {
            name: _encode(value)
            for name, value in vars(layer).items()
            if name not in _SKIPPED and _is_plain(value)
        }
    }
    rng = vars(layer).get("_np_random")
    if isinstance(rng, np.random.Generator):
        state["rng"] = _encode_ints(rng.bit_generator.state)
    if _is_mujoco(layer):
        import mujoco

        # everything the next step depends on, warm-start accelerations and controls included
        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        physics = np.empty(mujoco.mj_stateSize(layer.model, spec))
        mujoco.mj_getState(layer.model, layer.data, physics, spec)
        state["physics"] = physics.tolist()
    return state


def _set_layer_state(layer, state: dict) -> None:
    for name, value in state["attrs"].items():
        setattr(layer, name, _decode(value))
    if "rng" in state:
        layer._np_random.bit_generator.state = _decode_ints(state["rng"])
    if "physics" in state:
        import mujoco

        physics = np.asarray(state["physics"])
        mujoco.mj_setState(layer.model, layer.data, physics, mujoco.mjtState.mjSTATE_INTEGRATION)
        mujoco.mj_forward(layer.model, layer.data)


def _is_mujoco(layer) -> bool:
    return type(vars(layer).get("data")).__name__ == "MjData"


def _is_plain(value) -> bool:
    if value is None or isinstance(value, bool | int | float | str | np.generic):
        return True
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "biuf"
    if isinstance(value, list | tuple):
        return all(_is_plain(v) for v in value)
    return False


def _encode(value):
    if isinstance(value, np.ndarray | np.generic):
        return {
            "ndarray": np.asarray(value).tolist(),
            "dtype": str(value.dtype),
            "scalar": isinstance(value, np.generic),
        }
    if isinstance(value, tuple):
        return {"tuple": [_encode(v) for v in value]}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    return value


def _decode(value):
    if isinstance(value, dict):
        if "ndarray" in value:
            array = np.asarray(value["ndarray"], dtype=value["dtype"])
            return array[()] if value["scalar"] else array
        if "tuple" in value:
            return tuple(_decode(v) for v in value["tuple"])
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _encode_ints(state):
    """Bit-generator states hold 128-bit integers: kept as strings, exact."""
    if isinstance(state, dict):
        return {k: _encode_ints(v) for k, v in state.items()}
    if isinstance(state, int) and not isinstance(state, bool):
        return {"int": str(state)}
    if isinstance(state, np.ndarray):
        return {"uint_array": state.tolist(), "dtype": str(state.dtype)}
    return state


def _decode_ints(state):
    if isinstance(state, dict):
        if "int" in state and len(state) == 1:
            return int(state["int"])
        if "uint_array" in state:
            return np.asarray(state["uint_array"], dtype=state["dtype"])
        return {k: _decode_ints(v) for k, v in state.items()}
    return state
