"""Global batch size invariance: one optimiser step sees the same number of sequences on 1 CPU,
8 GPUs or 4 nodes.

``data.global_batch_size`` (null = off: ``data.batch_size`` is then the per-device batch, Lightning's
default meaning) is split as

    global_batch = per_device_batch * devices * num_nodes * accumulate_grad_batches

with ``per_device_batch <= data.batch_size`` (the memory cap of one device). ``per_device_batch``
picks the smallest accumulation that fits the cap and divides exactly, so the effective batch is
never rounded: learning rates tuned at one scale stay valid at another.
"""

from __future__ import annotations

from lightning.pytorch.accelerators import CPUAccelerator, CUDAAccelerator

from diffusion_lab.errors import ConfigError


def per_device_batch(global_batch: int, devices: int, num_nodes: int = 1,
                     max_per_device: int | None = None) -> tuple[int, int]:
    """Split ``global_batch`` into ``(per_device_batch, accumulate_grad_batches)``.

    Args:
        global_batch: sequences per optimiser step, summed over all processes and accumulation steps.
        devices: processes per node (``trainer.devices`` as a count).
        num_nodes: ``trainer.num_nodes``.
        max_per_device: the largest micro-batch one device holds (``data.batch_size``); None = no cap.

    Raises ``ConfigError`` (naming the keys) when the global batch cannot be split exactly.
    """
    for name, value in {"data.global_batch_size": global_batch, "trainer.devices": devices,
                        "trainer.num_nodes": num_nodes}.items():
        if not isinstance(value, int) or value <= 0:
            raise ConfigError(f"{name}={value!r}: must be a positive integer")
    if max_per_device is not None and max_per_device <= 0:
        raise ConfigError(f"data.batch_size={max_per_device!r}: must be a positive integer")
    world = devices * num_nodes
    if global_batch % world:
        raise ConfigError(
            f"data.global_batch_size={global_batch} is not divisible by devices*num_nodes="
            f"{devices}*{num_nodes}={world}; use a multiple of {world} (e.g. {max(world, global_batch // world * world)})"
        )
    per_rank = global_batch // world
    cap = per_rank if max_per_device is None else min(max_per_device, per_rank)
    # smallest accumulation whose micro-batch fits the cap and divides per_rank exactly (k = per_rank
    # always does: micro-batch 1), so the global batch is exact, never rounded
    accumulate = -(-per_rank // cap)
    while per_rank % accumulate:
        accumulate += 1
    return per_rank // accumulate, accumulate


def device_count(devices, accelerator: str = "auto") -> int:
    """``trainer.devices`` (int, list of ids, "2", "0,1", "auto" or -1) as a number of processes per node."""
    if isinstance(devices, str):
        text = devices.strip()
        if text.lstrip("-").isdigit():
            devices = int(text)
        elif "," in text:
            return len([d for d in text.split(",") if d.strip()])
    if isinstance(devices, int) and devices > 0:
        return devices
    if isinstance(devices, list | tuple):
        return len(devices)
    if devices in ("auto", -1):
        # Lightning's own answer for "all devices of this accelerator"

        if accelerator in ("gpu", "cuda") or (accelerator == "auto" and CUDAAccelerator.is_available()):
            return CUDAAccelerator.auto_device_count()
        return CPUAccelerator.auto_device_count()
    raise ConfigError(f"trainer.devices={devices!r}: expected a positive int, a list of ids, 'auto' or -1")


def batch_plan(cfg) -> tuple[int, int] | None:
    """``(per_device_batch, accumulate_grad_batches)`` for a run config, or None when
    ``data.global_batch_size`` is null (then ``data.batch_size`` and ``trainer.accumulate_grad_batches`` apply as given).
    """
    data, trainer = cfg.data, cfg.trainer
    global_batch = data.get("global_batch_size")
    if global_batch is None:
        return None
    if trainer.get("accumulate_grad_batches", 1) not in (1, None):
        raise ConfigError(
            f"data.global_batch_size={global_batch} derives trainer.accumulate_grad_batches; leave that at 1 "
            f"(it is {trainer.accumulate_grad_batches})"
        )
    devices = device_count(trainer.get("devices", 1), str(trainer.get("accelerator", "auto")))
    return per_device_batch(int(global_batch), devices, int(trainer.get("num_nodes", 1) or 1), data.batch_size)
