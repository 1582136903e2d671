"""Devices: datasheet specs (DeviceSpec), their efficiency, and the YAML profiles they load from."""

from sim.hardware.device import DeviceSpec, Efficiency
from sim.hardware.profiles import DEVICE_KINDS, PROFILE_DIR, list_devices, load_device

__all__ = ["DEVICE_KINDS", "PROFILE_DIR", "DeviceSpec", "Efficiency", "list_devices", "load_device"]
