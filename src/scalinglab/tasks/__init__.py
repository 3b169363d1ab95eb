"""The task registry: the runner finds a task by its config name."""

from __future__ import annotations

from scalinglab.errors import UserError
from scalinglab.tasks.base import Task, TaskData, TaskOptions


def _registry() -> dict[str, type[Task]]:
    from scalinglab.tasks.behavior import BehaviorTask
    from scalinglab.tasks.perception import PerceptionTask
    from scalinglab.tasks.toy import ToyTask

    return {task.name: task for task in (ToyTask, BehaviorTask, PerceptionTask)}


def get_task_class(name: str, source: str = "config") -> type[Task]:
    tasks = _registry()
    if name not in tasks:
        raise UserError(f"{source}: key 'task': unknown task '{name}'; choose one of: {', '.join(tasks)}")
    return tasks[name]


def build_task(name: str, options: dict) -> Task:
    return get_task_class(name)(options)


__all__ = ["Task", "TaskData", "TaskOptions", "build_task", "get_task_class"]
