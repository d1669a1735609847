"""The processes of ``accelerate launch``: how medviz makes its ``Accelerator`` and ends a launched run. Shared by
the trainers and the batch counterfactuals (``medviz.augment``)."""

from __future__ import annotations


def launched_accelerator(**kwargs):
    """An ``accelerate.Accelerator`` made with ``cpu=True`` where there is no CUDA: the processes of ``accelerate
    launch --multi_gpu --num_processes N`` (torchrun) then form one gloo group (accelerate's MULTI_CPU) instead of
    N independent runs that each believe they are alone. ``kwargs`` go to ``Accelerator``."""
    import torch
    from accelerate import Accelerator

    return Accelerator(cpu=not torch.cuda.is_available(), **kwargs)


def end_processes() -> None:
    """After the last job of a launched run: a last barrier, then the process group closed, so no process exits
    while another still talks to it (gloo aborts such a process)."""
    import gc

    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        gc.collect()            # DDP wrappers of the finished job go first: freed after the group, they may abort
        dist.barrier()
        dist.destroy_process_group()
