"""Beyond one machine: Ray Data batch inference and ``torchrun``-sharded predict.

* :mod:`.ray_data`: ``metricdepth predict ... --ray [--ray-address ADDR] [--num-actors N]`` (the
  ``[ray]`` extra): a Ray Dataset of the collected inputs mapped by :class:`~.ray_data.DepthPredictor`
  actors (one GPU each, or CPU actors), outputs through the same writers, a Parquet results manifest.
* :mod:`.sharding`: ``torchrun --nproc_per_node N -m metricdepth predict ...``: each rank predicts a
  disjoint share of the same items (:func:`~.sharding.shard`), the reports merged on rank 0.

Exports are lazy: importing this package imports neither torch nor Ray.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

_EXPORTS = {
    "MANIFEST_COLUMNS": "metricdepth.distributed.ray_data",
    "MANIFEST_NAME": "metricdepth.distributed.ray_data",
    "DepthPredictor": "metricdepth.distributed.ray_data",
    "RayReport": "metricdepth.distributed.ray_data",
    "RaySetupError": "metricdepth.distributed.ray_data",
    "load_depth_pro": "metricdepth.distributed.ray_data",
    "predict_with_ray": "metricdepth.distributed.ray_data",
    "LaunchEnv": "metricdepth.distributed.sharding",
    "RankShard": "metricdepth.distributed.sharding",
    "launch_env": "metricdepth.distributed.sharding",
    "protect_inputs": "metricdepth.distributed.sharding",
    "rank_device": "metricdepth.distributed.sharding",
    "shard": "metricdepth.distributed.sharding",
}

__all__ = [
    "MANIFEST_COLUMNS",
    "MANIFEST_NAME",
    "DepthPredictor",
    "LaunchEnv",
    "RankShard",
    "RayReport",
    "RaySetupError",
    "launch_env",
    "load_depth_pro",
    "predict_with_ray",
    "protect_inputs",
    "rank_device",
    "shard",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())

if TYPE_CHECKING:
    from .ray_data import (
        MANIFEST_COLUMNS,
        MANIFEST_NAME,
        DepthPredictor,
        RayReport,
        RaySetupError,
        load_depth_pro,
        predict_with_ray,
    )
    from .sharding import LaunchEnv, RankShard, launch_env, protect_inputs, rank_device, shard
