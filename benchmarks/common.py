"""Shared by the task benchmarks: training throughput of a task's model on a device."""

from __future__ import annotations

import time

import torch


def training_rate(task, data, model: torch.nn.Module, device: torch.device, steps: int, batch: int) -> float:
    """Samples per second over `steps` optimiser steps (after one warm-up step), AdamW, bf16 on CUDA."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step(i: int) -> None:
        idx = torch.arange(i * batch, (i + 1) * batch) % data.dataset_size
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = task.loss(model, task.batch(data.train, idx, device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step(0)
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for i in range(steps):
        step(i)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - started)
