"""Hydra config: schema registration, the config folder, and loading presets by name."""

from torchrl_cli.config.store import CONFIG_NAME, config_dir, load_default, register_configs

__all__ = ["CONFIG_NAME", "config_dir", "load_default", "register_configs"]
