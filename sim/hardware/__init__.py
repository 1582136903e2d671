"""Devices: datasheet specs (DeviceSpec), their efficiency, the YAML profiles they load from, and
the measurements a profile carries (:mod:`sim.hardware.calibration`)."""

from sim.hardware.device import DeviceSpec, Efficiency
from sim.hardware.profiles import DEVICE_KINDS, PROFILE_DIR, list_devices, load_device

__all__ = ["DEVICE_KINDS", "PROFILE_DIR", "DeviceSpec", "Efficiency", "list_devices", "load_device"]
