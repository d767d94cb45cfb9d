"""What a set of runs will cost before any of it starts: which the cache holds, which must train, why, how long.

``plan_runs(specs)`` looks every run up in the cache (``runs.cached_result``, which also reports a
hit on other pixels) and, for each run it lacks, says why (``provenance.explain_miss``) and how
long it should take here: the training time recorded by the cached run of the same
configuration on other data, else the median of the cached runs of the same method on the same
dataset and input size, else of the same method (a run at another input size in proportion to
its pixels: a projection, since the epochs a rule trains need not follow the pixels); scaled by
this machine's speed against the machine that trained the cache (``machine_seconds``: one fixed
convolutional training step, timed here and stored as ``<results>/runs/speed.json`` by the
machine that trained the runs).
``hetero-ae run-profile`` prints the plan before it trains (``--check``: only the plan, exit
status 1 if a run is missing), and so does a notebook about to train.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.identity import data_identity
from ..io import write_json
from .provenance import explain_miss, same_configuration
from .runs import RunResult, cached_result, training_twin
from .specs import RunSpec, run_name, spec_root

SPEED_FILE = "speed.json"


def machine_seconds(device: str = "cpu", repeats: int = 10) -> float:
    """Seconds of one fixed training step (three 3x3 convolutions, batch 16 at 96 px, forward and
    backward) on ``device`` with torch's threads: the fastest of ``repeats`` after three warm-up steps."""
    import torch
    from torch import nn

    gen = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
                        nn.Conv2d(32, 3, 3, padding=1)).to(device)
    x = torch.randn(16, 3, 96, 96, generator=gen).to(device)

    def step() -> None:
        net.zero_grad()
        net(x).square().mean().backward()
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    for _ in range(3):  # warm-up: the allocator and the thread pool
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return min(times)


def reference_speed(results: str | Path) -> dict[str, Any] | None:
    path = Path(results) / "runs" / SPEED_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def record_speed(results: str | Path, device: str, description: str) -> dict[str, Any]:
    """Store this machine's ``machine_seconds`` as the speed of the one that trains ``results``' runs."""
    speed = {"seconds": machine_seconds(device), "device": description}
    write_json(Path(results) / "runs" / SPEED_FILE, speed)
    return speed


@dataclass
class Plan:
    cached: list[RunResult]
    missing: list[tuple[RunSpec, str]]  # (run, why the cache lacks it)
    seconds: dict[int, float | None] = field(default_factory=dict)  # index in missing -> estimated seconds
    speed_ratio: float | None = None  # this machine's step time over the reference machine's

    @property
    def estimate(self) -> float | None:
        """Seconds for the runs whose time could be estimated (None when none could)."""
        known = [s for s in self.seconds.values() if s is not None]
        return sum(known) if known else None

    def lines(self, what: str, *, every_run: bool = False) -> list[str]:
        """The plan in words: the count, the time, why runs miss (grouped), and with ``every_run`` each run."""
        total = len(self.cached) + len(self.missing)
        if not total:
            return []
        if not self.missing:
            return [f"{what}: all {total} run(s) are in the cache; nothing to train"]
        est = self.estimate
        unknown = sum(s is None for s in self.seconds.values())
        when = "time unknown" if est is None else f"about {_duration(est)} on this machine, the runs' recorded times added up"
        if est is not None and unknown:
            when += f" for {len(self.missing) - unknown} of them (no cached run to time the other {unknown} by)"
        if self.speed_ratio is not None and est is not None:
            when += f"; this machine takes {self.speed_ratio:.2f}x the reference machine's time per step"
        rescored = sum(training_twin(spec) is not None for spec, _ in self.missing)
        scored = f", {rescored} of them scored with another run's weights" if rescored else ""
        out = [f"{what}: {len(self.missing)} of {total} run(s) are not in the cache and will train{scored} ({when})"]
        groups: dict[tuple[str, str], list[RunSpec]] = defaultdict(list)
        for spec, why in self.missing:
            groups[(spec.dataset, why)].append(spec)
        for (dataset, why), specs in groups.items():
            out.append(f"  {dataset}: {len(specs)} run(s): {why}")
        if every_run:
            for i, (spec, _) in enumerate(self.missing):
                s = self.seconds.get(i)
                took = "?" if s is None else "its twin's weights" if training_twin(spec) is not None else _duration(s)
                out.append(f"  missing: {run_name(spec, rule=True)} ({took})")
        return out


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 1:
        return f"{max(1, round(seconds))} s"
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def _recorded_seconds(folder: Path) -> float | None:
    try:
        return float(json.loads((folder / "metrics.json").read_text())["train_seconds"])
    except (OSError, KeyError, ValueError, TypeError):
        return None


def _reference_seconds(spec: RunSpec, results: Path) -> float | None:
    """Training seconds recorded by the cached runs most like ``spec`` (module docstring); a run at
    another input size counts in proportion to the pixels (``spec``'s size over its own, squared)."""
    runs = results / "runs" / spec.model.method
    sizes = {c.parent: json.loads(c.read_text())["model"].get("image_size") for c in runs.glob("*/*/config.json")}
    tiers = [[folder for folder, _ in same_configuration(spec, results)],
             [f for f, size in sizes.items() if f.parent.name == spec.dataset and size == spec.model.image_size],
             list(sizes)]
    for folders in tiers:
        seconds = [s * (spec.model.image_size / (sizes.get(f) or spec.model.image_size)) ** 2
                   for f, s in zip(folders, map(_recorded_seconds, folders)) if s is not None]
        if seconds:
            return statistics.median(seconds)
    return None


def plan_runs(specs: list[RunSpec], *, results: str | Path = "results", root: str | Path | None = None,
              device: str = "cpu") -> Plan:
    """Look ``specs`` up in the cache; for those it lacks, why and how long (module docstring)."""
    results = Path(results)
    cached, missing, identities = [], [], {}
    for spec in specs:
        where = (spec.dataset, spec.data_subdir)
        if where not in identities:  # once per dataset and data folder: it stats every file
            identities[where] = data_identity(spec.dataset, spec_root(spec, root))
        identity = identities[where]
        hit = cached_result(spec, results, root, identity=identity)
        if hit is not None:
            cached.append(hit)
        else:
            missing.append((spec, explain_miss(spec, results, identity)))
    plan = Plan(cached, missing)
    if missing:
        ref = reference_speed(results)
        plan.speed_ratio = None if ref is None else machine_seconds(device) / ref["seconds"]
        for i, (spec, _) in enumerate(missing):
            if training_twin(spec) is not None:  # scored with its twin's weights: no training of its own
                plan.seconds[i] = 0.0
                continue
            s = _reference_seconds(spec, results)
            plan.seconds[i] = None if s is None else s * (plan.speed_ratio or 1.0)
    return plan
