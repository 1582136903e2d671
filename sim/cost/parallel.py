"""Parallelism across the devices of a replica: node topology, collectives, expert layout.

A replica of ``tp`` devices spans ``nodes = tp / devices_per_node`` nodes. Attention and dense
layers are tensor-parallel over all ``tp`` devices (as in :class:`~sim.cost.model.CostModel`);
their all-reduces are hierarchical across nodes: reduce-scatter inside each node over NVLink,
all-reduce of the 1/devices_per_node shard across nodes over InfiniBand, all-gather inside the
node. With one node this is the ring all-reduce of ``sim.cost.ops``, to the last term.

MoE layers (``expert_parallel``):

- ``tensor`` (ET, "expert tensor parallelism"): every expert is split over the devices of a
  node, the experts are divided among the nodes (expert parallelism across nodes). Every device
  holds all tokens after the attention all-reduce, so the experts' partial outputs are summed by
  the same hierarchical all-reduce. One node: vLLM's default tensor-parallel MoE.
- ``expert`` (EP): each device holds whole experts (E/tp of them; if tp > E, each expert is
  split over tp/E devices). Each device sends its experts' outputs to the tokens' home devices
  (all-to-all) and the tokens are gathered back to every device (all-gather, as all-to-all
  traffic). The busiest device sets the layer's time.

An all-to-all's traffic to devices in the same node rides NVLink, to other nodes InfiniBand,
concurrently; it costs one latency per link class.

``collectives: paper`` uses the Duplex authors' simulator's formulas instead: an all-reduce over
``n`` devices is a ring at NVLink parameters whatever the nodes, ``2(n-1)`` latencies plus
``(S/n) / bandwidth``; a MoE layer moves the tokens bound for experts in other device groups
once (their rows, divided over the attention's ``tp`` devices), over InfiniBand in decode-only
iterations that span nodes and over NVLink otherwise; ET groups add a ring all-reduce.
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.errors import HardwareError


@dataclass(frozen=True)
class Topology:
    devices: int
    per_node: int
    intra_bytes_per_s: float     # NVLink, per device per direction, x efficiency
    intra_latency_s: float
    inter_bytes_per_s: float     # InfiniBand, per device per direction, x efficiency
    inter_latency_s: float
    collectives: str = "hierarchical"     # or "paper" (the module's docstring)

    @classmethod
    def of(cls, devices: int, devices_per_node: int, intra_bytes_per_s: float,
           intra_latency_s: float, inter_bytes_per_s: float,
           inter_latency_s: float, collectives: str = "hierarchical") -> "Topology":
        per_node = min(devices, devices_per_node)
        if devices % per_node:
            raise HardwareError(f"tensor_parallel {devices} is not a whole number of "
                                f"{devices_per_node}-device nodes")
        return cls(devices, per_node, intra_bytes_per_s, intra_latency_s, inter_bytes_per_s,
                   inter_latency_s, collectives)

    @property
    def nodes(self) -> int:
        return self.devices // self.per_node

    def allreduce_s(self, message_bytes: float) -> float:
        """Hierarchical all-reduce of ``message_bytes`` held by every device."""
        p, n = self.per_node, self.nodes
        if self.devices <= 1:
            return 0.0
        if self.collectives == "paper":
            return self.paper_ring_s(message_bytes, self.devices)
        # reduce-scatter + all-gather inside the node: the ring's 2(p-1)/p, 2(p-1) steps
        intra_steps = 2 * (p - 1)
        seconds = intra_steps / p * message_bytes / self.intra_bytes_per_s \
            + intra_steps * self.intra_latency_s
        if n > 1:
            # ring all-reduce of each device's 1/p shard with its peers in the other nodes
            inter_steps = 2 * (n - 1)
            seconds += inter_steps / n * (message_bytes / p) / self.inter_bytes_per_s \
                + inter_steps * self.inter_latency_s
        return seconds

    def paper_ring_s(self, message_bytes: float, devices: int) -> float:
        """The authors' ring all-reduce over ``devices``: 2(n-1) hops of NVLink latency plus
        one shard of the message at NVLink bandwidth."""
        if devices <= 1:
            return 0.0
        return 2 * (devices - 1) * self.intra_latency_s \
            + message_bytes / devices / self.intra_bytes_per_s

    def paper_dispatch_s(self, message_bytes: float, decode_only: bool) -> float:
        """The authors' MoE all-to-all: ``message_bytes`` per device, at InfiniBand rate in a
        decode-only iteration spanning nodes, else at NVLink rate."""
        if message_bytes <= 0:
            return 0.0
        if decode_only and self.nodes > 1:
            return message_bytes / self.inter_bytes_per_s + self.inter_latency_s
        return message_bytes / self.intra_bytes_per_s + self.intra_latency_s

    def alltoall_s(self, bytes_per_device: float) -> float:
        """Each device sends ``bytes_per_device`` spread evenly over all devices (itself too)."""
        d, p = self.devices, self.per_node
        if d <= 1:
            return 0.0
        intra = bytes_per_device * (p - 1) / d
        inter = bytes_per_device * (d - p) / d
        seconds = intra / self.intra_bytes_per_s + self.intra_latency_s if p > 1 else 0.0
        if inter > 0:
            seconds = max(seconds, inter / self.inter_bytes_per_s + self.inter_latency_s)
        return seconds


@dataclass(frozen=True)
class ExpertLayout:
    """Devices form ``groups`` groups holding disjoint experts; each expert is split over the
    ``split`` devices of its group (``groups * split == devices``)."""

    mode: str
    groups: int
    split: int
    experts_per_group: int

    @classmethod
    def of(cls, mode: str, num_experts: int, topo: Topology) -> "ExpertLayout":
        d = topo.devices
        groups = topo.nodes if mode == "tensor" else min(d, num_experts)
        if num_experts % groups or d % groups:
            raise HardwareError(
                f"expert_parallel '{mode}': {num_experts} experts cannot be divided evenly over "
                f"{groups} device groups of {d} devices")
        return cls(mode, groups, d // groups, num_experts // groups)

    def comm_s(self, topo: Topology, num_tokens: int, top_k: int, row_bytes: float,
               decode_only: bool = False) -> float:
        """Collective time of one MoE layer (combine the experts' outputs on every device)."""
        if topo.devices <= 1:
            return 0.0
        if topo.collectives == "paper":
            # rows routed to another group's experts, spread over the attention's devices
            remote = num_tokens * top_k * (self.groups - 1) / self.groups * row_bytes \
                / topo.devices
            return topo.paper_dispatch_s(remote, decode_only) \
                + topo.paper_ring_s(num_tokens * row_bytes, self.split)
        if self.mode == "tensor":
            return topo.allreduce_s(num_tokens * row_bytes)
        d = topo.devices
        combine = topo.alltoall_s(num_tokens * top_k / d * row_bytes)
        gather = topo.alltoall_s(num_tokens / d * row_bytes * d)
        return combine + gather
