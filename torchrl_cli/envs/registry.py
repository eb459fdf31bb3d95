"""Gymnasium ids that another package registers (ALE's, by ale-py), and the fix when it is not
installed."""

import gymnasium as gym

ALE_NAMESPACE = "ALE/"
ATARI_HINT = "pip install 'torchrl-cli[atari]'"


def register_ale() -> bool:
    """Register ALE's ids (ale-py does it on import); False when ale-py is not installed."""
    try:
        import ale_py
    except ImportError:
        return False
    gym.register_envs(ale_py)
    ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)  # no banner on every env made
    return True


def missing_package(env_id: str) -> str | None:
    """For an id that only an uninstalled package would register: what is missing and the fix."""
    if env_id.startswith(ALE_NAMESPACE) and not register_ale():
        return f"Atari envs need ale-py, which is not installed; {ATARI_HINT}"
    return None
