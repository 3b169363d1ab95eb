"""The built-in toy task: an MLP regressing a fixed random teacher network on synthetic inputs.

Small and fast, so the runner is tested on its own; bigger students and more data help, as in a
real study, because the teacher is wider than the smallest student.
"""

from __future__ import annotations

import math

import torch
from pydantic import Field
from torch import nn

from scalinglab.tasks.base import Task, TaskData, TaskOptions


class ToyOptions(TaskOptions):
    input_dim: int = Field(16, gt=0)
    base_width: int = Field(16, gt=0)
    base_depth: int = Field(2, gt=0)
    base_samples: int = Field(512, gt=0)  # D at data scale 1
    eval_samples: int = Field(512, gt=0)
    teacher_width: int = Field(64, gt=0)
    noise: float = Field(0.05, ge=0)


def family(model_scale: float, scale_by: str, base_width: int, base_depth: int) -> tuple[int, int]:
    """(width, depth) of the model at a scale: parameters grow about linearly with the scale.

    width: hidden width times sqrt(scale) (parameters ~ width^2); depth: hidden layers times scale;
    both: width times scale^(1/4) and depth times sqrt(scale).
    """
    if scale_by == "width":
        return max(1, round(base_width * math.sqrt(model_scale))), base_depth
    if scale_by == "depth":
        return base_width, max(1, round(base_depth * model_scale))
    return max(1, round(base_width * model_scale**0.25)), max(1, round(base_depth * math.sqrt(model_scale)))


def mlp(input_dim: int, width: int, depth: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    size = input_dim
    for _ in range(depth):
        layers += [nn.Linear(size, width), nn.GELU()]
        size = width
    layers.append(nn.Linear(size, 1))
    return nn.Sequential(*layers)


class ToyTask(Task):
    name = "toy"
    Options = ToyOptions
    metrics = {"loss": False, "mae": False, "r2": True}

    def _teacher_data(self, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        opts = self.options
        gen = torch.Generator().manual_seed(seed)
        teacher = mlp(opts.input_dim, opts.teacher_width, 2)
        with torch.no_grad():
            for p in teacher.parameters():  # a fixed teacher, independent of the data seed
                p.copy_(
                    torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())) / math.sqrt(p.shape[-1])
                )
            x = torch.randn(n, opts.input_dim, generator=gen)
            y = teacher(x) + opts.noise * torch.randn(n, 1, generator=gen)
        return x, y

    def build_data(self, data_scale: float, seed: int) -> TaskData:
        size = max(1, round(self.options.base_samples * data_scale))
        train = self._teacher_data(size, 1000 + seed)
        evaluation = self._teacher_data(self.options.eval_samples, 999_999)
        return TaskData(train=train, eval=evaluation, dataset_size=size)

    def build_model(self, model_scale: float, scale_by: str) -> nn.Module:
        width, depth = family(model_scale, scale_by, self.options.base_width, self.options.base_depth)
        return mlp(self.options.input_dim, width, depth)

    def batch(self, data, indices, device):
        x, y = data
        return x[indices].to(device), y[indices].to(device)

    def loss(self, model, batch):
        x, y = batch
        return nn.functional.mse_loss(model(x), y)

    @torch.no_grad()
    def evaluate(self, model, data, device):
        x, y = (t.to(device) for t in data)
        pred = model(x)
        mse = nn.functional.mse_loss(pred, y).item()
        return {"loss": mse, "mae": (pred - y).abs().mean().item(), "r2": 1.0 - mse / y.var(unbiased=False).item()}
