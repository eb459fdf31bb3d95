"""Env snapshots: the state of an env and its wrappers as JSON, so that a resumed run continues
the very episodes it was in (same observations, same random stream).

A snapshot holds, for each layer of the wrapper chain, its plain-data attributes (numbers,
strings, arrays) and its random generator's state; MuJoCo envs add their integration state.
JSON, not pickle: restoring a snapshot can never run code from a checkpoint. Simulators whose
state lives in native objects out of reach (Box2D worlds, the ALE) are not restorable:
``EXACT_SIMULATORS`` lists those that are.

Envs that are plain Python objects all the way down (PettingZoo's MPE in ``mpe2``) snapshot as
a tree (``object_snapshot``): the plain data of the env, and of every object under it whose
class comes from the env's own packages, lists of them included.
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
    return to_json([_layer_state(layer) for layer in _layers(env)])


def restore(env: gym.Env | gym.vector.VectorEnv, text: str) -> None:
    """Put ``snapshot``'s state back into an env built the same way."""
    for layer, state in zip(_layers(env), from_json(text), strict=True):
        _set_layer_state(layer, state)


def object_snapshot(obj, packages: tuple[str, ...]) -> str:
    """The state of ``obj`` and of the objects under it whose classes come from ``packages``
    (top-level package names), as JSON."""
    return to_json(_tree(obj, packages, _places(obj, packages)))


def restore_object(obj, text: str) -> None:
    """Put ``object_snapshot``'s state back into an object built the same way; ValueError where
    its objects do not match the snapshot's (another env, or other keyword arguments)."""
    _set_tree(obj, from_json(text), obj)


def to_json(value) -> str:
    """JSON of plain data that may hold numpy arrays, numpy scalars and tuples (kept as such by
    ``from_json``); Python ints of any size stay exact (bit-generator states hold 128-bit ones)."""
    return json.dumps(_encode(value))


def from_json(text: str):
    return _decode(json.loads(text))


def _layers(env) -> list:
    layers = [env]
    while isinstance(layers[-1], gym.Wrapper | gym.vector.VectorWrapper):
        layers.append(layers[-1].env)
    return layers


def _layer_state(layer) -> dict:
    attrs = vars(layer)
    state = {"attrs": {k: v for k, v in attrs.items() if k not in _SKIPPED and _is_plain(v)}}
    if isinstance(attrs.get("_np_random"), np.random.Generator):
        state["rng"] = attrs["_np_random"].bit_generator.state
    # lists of generators (a native vector env's per-copy streams)
    state["rng_lists"] = {
        name: [rng.bit_generator.state for rng in value]
        for name, value in attrs.items()
        if isinstance(value, list) and value and isinstance(value[0], np.random.Generator)
    }
    if _is_mujoco(layer):
        import mujoco

        # everything the next step depends on, warm-start accelerations and controls included
        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        physics = np.empty(mujoco.mj_stateSize(layer.model, spec))
        mujoco.mj_getState(layer.model, layer.data, physics, spec)
        state["physics"] = physics
    return state


def _set_layer_state(layer, state: dict) -> None:
    for name, value in state["attrs"].items():
        setattr(layer, name, value)
    if "rng" in state:
        layer._np_random.bit_generator.state = state["rng"]
    for name, states in state.get("rng_lists", {}).items():
        rngs = [np.random.Generator(np.random.PCG64()) for _ in states]
        for rng, rng_state in zip(rngs, states, strict=True):
            rng.bit_generator.state = rng_state
        setattr(layer, name, rngs)
    if "physics" in state:
        import mujoco

        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        mujoco.mj_setState(layer.model, layer.data, state["physics"], spec)
        mujoco.mj_forward(layer.model, layer.data)


def _owned(value, packages: tuple[str, ...]) -> bool:
    return hasattr(value, "__dict__") and type(value).__module__.split(".")[0] in packages


def _children(obj, packages: tuple[str, ...]) -> list[tuple[tuple, object]]:
    """``obj``'s owned objects with their steps from it: ``(name,)`` for an attribute,
    ``(name, i)`` for item ``i`` of a list attribute that holds owned objects only."""
    found = []
    for name, value in vars(obj).items():
        if _owned(value, packages):
            found.append(((name,), value))
        elif isinstance(value, list) and value and all(_owned(v, packages) for v in value):
            found += [((name, i), v) for i, v in enumerate(value)]
    return found


def _places(root, packages: tuple[str, ...]) -> dict[int, tuple]:
    """Each owned object's place: its path from ``root`` (names and list indices), the first
    met breadth first, so the shortest. An episode's random pick (mpe2's ``agent.goal_a =
    world.landmarks[k]``) is a longer path to an object that has its place in the list."""
    places, queue = {id(root): ()}, [root]
    for obj in queue:  # grows as it goes
        for step, child in _children(obj, packages):
            if id(child) not in places:
                places[id(child)] = places[id(obj)] + step
                queue.append(child)
    return places


def _tree(obj, packages: tuple[str, ...], places: dict[int, tuple]) -> dict:
    """``obj``'s plain attributes (dicts of them too), its generators' states and the trees of
    the owned objects that have their place under it; an owned object placed elsewhere is a
    reference (``refs``: its path from the root), so the restored env points at the same
    object the snapshot's did (``places``: ``_places`` of the root)."""
    here = places[id(obj)]
    state = {"attrs": {}, "rngs": {}, "children": {}, "refs": {}}
    for name, value in vars(obj).items():
        if isinstance(value, np.random.Generator):
            state["rngs"][name] = value.bit_generator.state
        elif _is_plain(value, dicts=True):
            state["attrs"][name] = value
    for step, child in _children(obj, packages):
        name = step[0]
        if places[id(child)] == here + step:
            entry = _tree(child, packages, places)
        else:
            entry = {"ref": list(places[id(child)])}
        if len(step) == 1:
            state[("refs" if "ref" in entry else "children")][name] = entry
        else:
            state["children"].setdefault(name, []).append(entry)
    return state


def _at(root, path: list) -> object:
    """The object at ``path`` under ``root``; ValueError where the env has none there."""
    obj = root
    try:
        for step in path:
            obj = obj[step] if isinstance(step, int) else getattr(obj, step)
    except (AttributeError, IndexError, TypeError, KeyError):
        raise ValueError(f"{type(root).__name__} has no object at {path}") from None
    return obj


def _set_tree(obj, state: dict, root) -> None:
    """``_tree``'s state back into ``obj``; references resolve from ``root``."""
    for name, value in state["attrs"].items():
        setattr(obj, name, value)
    for name, rng_state in state["rngs"].items():
        rng = getattr(obj, name, None)
        if not isinstance(rng, np.random.Generator):  # made by reset(), not yet called
            rng = np.random.Generator(getattr(np.random, rng_state["bit_generator"])())
            setattr(obj, name, rng)
        rng.bit_generator.state = rng_state
    for name, ref in state["refs"].items():
        setattr(obj, name, _at(root, ref["ref"]))
    for name, child in state["children"].items():
        value = getattr(obj, name, None)
        if isinstance(child, dict):
            if value is None:
                raise ValueError(f"{type(obj).__name__}.{name} is missing")
            _set_tree(value, child, root)
            continue
        if not isinstance(value, list) or len(value) != len(child):
            raise ValueError(f"{type(obj).__name__}.{name} holds other objects than the snapshot")
        for i, item_state in enumerate(child):
            if "ref" in item_state:
                value[i] = _at(root, item_state["ref"])
            else:
                _set_tree(value[i], item_state, root)


def _is_mujoco(layer) -> bool:
    return type(vars(layer).get("data")).__name__ == "MjData"


def _is_plain(value, dicts: bool = False) -> bool:
    """Numbers, strings, numeric arrays, and lists and tuples of them (``dicts``: and dicts of
    them by string keys)."""
    if value is None or isinstance(value, bool | int | float | str | np.generic):
        return True
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "biuf"
    if isinstance(value, list | tuple):
        return all(_is_plain(v, dicts) for v in value)
    if dicts and isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v, dicts) for k, v in value.items())
    return False


def _encode(value):
    if isinstance(value, np.ndarray | np.generic):
        scalar = isinstance(value, np.generic)
        return {
            "__ndarray__": np.asarray(value).tolist(),
            "dtype": str(value.dtype),
            "scalar": scalar,
        }
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v) for v in value]}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    return value


def _decode(value):
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "__ndarray__" in value:
        array = np.asarray(value["__ndarray__"], dtype=value["dtype"])
        return array[()] if value["scalar"] else array
    if "__tuple__" in value:
        return tuple(_decode(v) for v in value["__tuple__"])
    return {k: _decode(v) for k, v in value.items()}
