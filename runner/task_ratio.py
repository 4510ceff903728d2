"""What ``lrun -l`` and ``--show-task-ratio`` print (Locust's habits): user types, their tasks and weights."""

from __future__ import annotations

from typing import Any

from runner.scenario.model import RequestTask, Scenario, User


def _task_names(user: User) -> list[tuple[str, int]]:
    """(name, weight) of each task; a sequence user has one task, its whole sequence."""
    if user.tasks is None:
        return [(f"sequence of {len(user.sequence or [])} steps", 1)]
    found: list[tuple[str, int]] = []
    seen: dict[str, int] = {}
    for task in user.tasks:
        if isinstance(task, RequestTask):
            name = task.name or f"{task.method} {task.url}"
        else:
            name = task.name or f"sequence of {len(task.sequence)} steps"
        seen[name] = seen.get(name, 0) + 1
        found.append((name if seen[name] == 1 else f"{name} #{seen[name]}", task.weight))
    return found


def _share(weights: list[int]) -> list[float]:
    total = sum(weights)
    return [w / total if total else 0.0 for w in weights]


def task_ratio(model: Scenario) -> dict[str, Any]:
    """Locust's ``--show-task-ratio-json`` layout: per user type, and of all tasks; users with a fixed ``count``
    are left out of the weighted shares (they are started first, whatever the number of users)."""
    weighted = {name: user for name, user in model.users.items() if user.count is None}
    shares = dict(zip(weighted, _share([u.weight for u in weighted.values()]), strict=True))
    per_class, total = {}, {}
    for name, user in model.users.items():
        tasks = _task_names(user)
        ratios = _share([w for _, w in tasks])
        per_class[name] = {
            "ratio": shares.get(name, 0.0),
            "tasks": {t: {"ratio": r} for (t, _), r in zip(tasks, ratios, strict=True)},
        }
        if user.count is not None:
            per_class[name]["count"] = user.count
        total[name] = {
            "ratio": shares.get(name, 0.0),
            "tasks": {t: {"ratio": r * shares.get(name, 0.0)} for (t, _), r in zip(tasks, ratios, strict=True)},
        }
    return {"per_class": per_class, "total": total}


def task_ratio_text(model: Scenario) -> str:
    ratio = task_ratio(model)
    lines = ["Task ratio per user type", "-" * 60]
    for name, entry in ratio["per_class"].items():
        share = f"{entry['count']} users" if "count" in entry else f"{entry['ratio']:.1%}"
        lines.append(f"{share:>8}  {name}")
        lines += [f"    {task['ratio']:>8.1%}  {task_name}" for task_name, task in entry["tasks"].items()]
    lines += ["", "Total task ratio", "-" * 60]
    for name, entry in ratio["total"].items():
        lines.append(f"{entry['ratio']:>8.1%}  {name}")
        lines += [f"    {task['ratio']:>8.1%}  {task_name}" for task_name, task in entry["tasks"].items()]
    return "\n".join(lines)


def listing(model: Scenario) -> str:
    """``lrun -l``: each user type with its weight (or count), tags, and its tasks with their weights."""
    lines = []
    for name, user in model.users.items():
        how = f"count {user.count}" if user.count is not None else f"weight {user.weight}"
        tags = f", tags: {', '.join(user.tags)}" if user.tags else ""
        lines.append(f"{name} ({how}{tags})")
        for task_name, weight in _task_names(user):
            lines.append(f"    {task_name}" + (f"  (weight {weight})" if user.tasks is not None else ""))
    return "\n".join(lines)
