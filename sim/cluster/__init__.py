"""The SimPy layer: replicas as processes, routers, and the cluster that runs a scenario."""

from sim.cluster.cluster import (Cluster, Deployment, deployment_cost_model, rejection_reason,
                                 resolve, simulate)
from sim.cluster.replica import Replica
from sim.cluster.router import ROUTERS, Router

__all__ = ["Cluster", "Deployment", "deployment_cost_model", "Replica", "ROUTERS", "Router",
           "resolve", "simulate", "rejection_reason"]
