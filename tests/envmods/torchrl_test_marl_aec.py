"""``torchrl_test_marl``'s game behind PettingZoo's AEC API only (no ``parallel_env``)."""

from pettingzoo.utils.conversions import parallel_to_aec_wrapper
from torchrl_test_marl import Pair


def env(**kwargs):
    return parallel_to_aec_wrapper(Pair(**kwargs))
