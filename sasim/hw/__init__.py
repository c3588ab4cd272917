"""Hardware configuration: schema, YAML loading, validation, and the shipped configs."""

from sasim.hw.config import HardwareConfig, load_hw_config, shipped_configs

__all__ = ["HardwareConfig", "load_hw_config", "shipped_configs"]
