"""Benchmark: the study runner's per-step overhead against a bare PyTorch loop, and the FLOP counter
against the analytic 6 N (samples x tokens) estimate for a small transformer.

    .venv/bin/python benchmarks/bench_runner.py [--steps 600] [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from scalinglab.study.config import parse_config
from scalinglab.study.train import RunSpec, measure_step_flops, train_run
from scalinglab.tasks.toy import ToyTask


def bare_loop(task: ToyTask, model_scale: float, steps: int, batch_size: int, lr: float) -> float:
    """The same model, data, batch size and optimiser, trained by the plainest loop: seconds per step."""
    torch.manual_seed(0)
    data = task.build_data(1.0, 0)
    model = task.build_model(model_scale, "width")
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    x, y = data.train
    perm = torch.randperm(data.dataset_size)
    t0 = time.perf_counter()
    for step in range(steps):
        start = (step * batch_size) % data.dataset_size
        idx = perm[start : start + batch_size]
        loss = nn.functional.mse_loss(model(x[idx]), y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return (time.perf_counter() - t0) / steps


def runner_loop(config_dict: dict, model_scale: float, steps: int) -> float:
    config = parse_config(config_dict)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        train_run(config, RunSpec("bench", model_scale, 1.0, 0), Path(tmp) / "run", lambda *a: None)
        return (time.perf_counter() - t0) / steps


def transformer_flops(d_model: int = 128, layers: int = 4, seq: int = 128, batch: int = 8, vocab: int = 512):
    """(measured FLOPs per step, 6 N tokens, N without embeddings) for a small causal transformer LM."""
    layer = nn.TransformerEncoderLayer(d_model, nhead=4, dim_feedforward=4 * d_model, batch_first=True)
    body = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
    embed, head = nn.Embedding(vocab, d_model), nn.Linear(d_model, vocab)
    tokens = torch.randint(0, vocab, (batch, seq))
    mask = nn.Transformer.generate_square_subsequent_mask(seq)

    class LM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed, self.body, self.head = embed, body, head

        def forward(self, t):
            return self.head(self.body(self.embed(t), mask=mask, is_causal=True))

    class Task:
        def loss(self, model, batch):
            logits = model(batch)
            return nn.functional.cross_entropy(logits.reshape(-1, vocab), batch.reshape(-1))

    model = LM()
    n_nonembed = sum(p.numel() for p in model.parameters()) - embed.weight.numel()
    measured = measure_step_flops(Task(), model, tokens)
    return (
        measured,
        6 * n_nonembed * batch * seq,
        n_nonembed,
        dict(d_model=d_model, layers=layers, seq=seq, batch=batch),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scale", type=float, default=16.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    batch, lr = 64, 1e-3
    config = {
        "task": "toy",
        "task_options": {"base_samples": 4096},
        "model_scales": [args.scale],
        "data_scales": [1],
        "budget": {"steps": args.steps},
        "batch_size": batch,
        "optimizer": {"lr": lr},
        "schedule": {"kind": "constant"},
        "eval_every": args.steps,
    }
    task = ToyTask({"base_samples": 4096})
    bare, runner = [], []
    for _ in range(args.repeats):  # interleaved, so drift in the machine hits both alike
        bare.append(bare_loop(task, args.scale, args.steps, batch, lr))
        runner.append(runner_loop(config, args.scale, args.steps))
    b, r = min(bare), min(runner)
    params = sum(p.numel() for p in task.build_model(args.scale, "width").parameters())
    print(f"toy MLP at scale {args.scale:g} ({params:,} params), batch {batch}, {args.steps} steps, 1 thread")
    print(
        f"bare PyTorch loop: {b * 1e3:.3f} ms/step   "
        f"runner (incl. FLOP count, 1 eval, 1 checkpoint): {r * 1e3:.3f} ms/step"
    )
    print(f"runner overhead: {100 * (r / b - 1):+.1f}%")
    measured, analytic, n, shape = transformer_flops()
    print(f"transformer {shape}, N (non-embedding) = {n:,}")
    print(f"FLOP counter: {measured:.4e} per step; 6 N tokens: {analytic:.4e}; ratio {measured / analytic:.3f}")
    tokens = shape["batch"] * shape["seq"]
    attention = 12 * shape["layers"] * shape["seq"] * shape["d_model"] * tokens  # QK^T and AV, fwd + bwd
    print(
        f"6 N tokens + attention (12 layers seq d per token): {analytic + attention:.4e}; "
        f"ratio {measured / (analytic + attention):.3f}"
    )


if __name__ == "__main__":
    main()
