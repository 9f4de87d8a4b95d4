"""`--executor ray`: a suite's pending runs as Ray tasks, on a local Ray instance started for the invocation or on
an existing cluster (`--ray-address`, `$RAY_ADDRESS`). docs/distributed.md says how to run it on a cluster.

Workers only compute: a task executes its runs and returns their (record, artifact) pairs to the driver, which
writes every file (bench/executor.py), so the records, resume and the folder lock are those of a local run. Ray
retries a task whose worker process dies (MAX_RETRIES); a run's record reaches the driver only once, from the
attempt that finished, so a retried run is neither lost nor recorded twice.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import sys
import time
from typing import Iterator, Sequence

import ray
from ray import cloudpickle

from .provenance import source_fingerprint
from .execution import Execute, ExecutorConfig, Finished, Run, RunsLostError
from .progress import Progress

MAX_RETRIES = 3  # restarts of a task whose worker died (a raised exception is a result, never retried)
POLL_SECONDS = 0.5  # how often the driver refreshes the progress while it waits for results
REPORT_SECONDS = 1.0  # how often a worker reports a fit's step to the progress
PROGRESS_ACTOR = "fitbench-progress"  # name prefix of each call's Running actor (ray.util.list_named_actors)


class RayExecutor:
    """Submits one task per run (a batch group per task for batched fitting) and yields results as they arrive."""

    def __init__(self, config: ExecutorConfig):
        self.config = config
        self.connected = False
        self.owned = False  # whether this executor made the connection, and so ends it

    def results(self, runs: Sequence[Run], execute: Execute, progress: Progress) -> Iterator[Finished]:
        if not runs:
            return
        self._connect()
        config = self.config
        threads = config.threads_per_fit or max(1, int(config.cpus_per_fit))
        remote = execute_runs.options(num_cpus=config.cpus_per_fit, num_gpus=config.gpus_per_fit,
                                      max_retries=MAX_RETRIES, retry_exceptions=False)
        running = RunningView(runs)
        code = source_fingerprint()
        pending = {remote.remote(cloudpickle.dumps((task_execute, task_runs)), config.plugins, threads, code,
                                 running.actor): task_runs for task_execute, task_runs in tasks(runs, execute)}
        lost: list[tuple[Run, str]] = []
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_SECONDS)
                progress.running(running.describe(pending.values()))
                for ref in ready:
                    task_runs = pending.pop(ref)
                    try:
                        where, results = ray.get(ref)
                    except ray.exceptions.RayError as error:
                        lost += [(run, lost_reason(error)) for run in task_runs]
                        continue
                    for run, (record, artifact, seconds) in zip(task_runs, results):
                        yield Finished(run, record, artifact, where, seconds)
            if restarted := running.restarted():
                shown = ", ".join(restarted[:3]) + (f", +{len(restarted) - 3} more" if len(restarted) > 3 else "")
                print(f"note: Ray restarted {len(restarted)} run(s) whose worker died ({shown}); each was recorded "
                      "once, from the attempt that finished", file=sys.stderr)
        finally:
            for ref in pending:  # interrupted: stop the work nobody will record
                with contextlib.suppress(Exception):  # cleaning up must not hide why we stopped
                    ray.cancel(ref, force=True)
            running.close()
        if lost:
            for run, reason in lost:
                print(f"error: {run.label}: not executed on Ray: {reason}", file=sys.stderr)
            raise RunsLostError(f"{len(lost)} run(s) could not execute on Ray (first: {lost[0][1]}); every other "
                                "run is recorded, and the same command runs these again")

    def _connect(self) -> None:
        if self.connected:
            return
        address = self.config.ray_address or os.environ.get("RAY_ADDRESS")
        if ray.is_initialized():
            how = "using this process's connection"  # a notebook's or a test's: theirs to end
        elif address:
            try:
                ray.init(address=address, logging_level=logging.ERROR)
            except (ConnectionError, RuntimeError, ValueError) as error:
                raise ValueError(f"--ray-address {address}: cannot join that Ray cluster ({error}); start one with "
                                 "`ray start --head`, or drop --ray-address and $RAY_ADDRESS for a local "
                                 "instance") from None
            how, self.owned = f"joined the cluster at {address}", True
        else:
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a local instance needs no network
            cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
            ray.init(address="local", num_cpus=cpus, include_dashboard=False, logging_level=logging.ERROR)
            how, self.owned = "started a local instance", True
        self.connected = True
        nodes = [node["Resources"] for node in ray.nodes() if node["Alive"]]
        total = {name: sum(node.get(name, 0) for node in nodes) for name in ("CPU", "GPU")}
        print(f"ray: {how}: {len(nodes)} node(s), {total['CPU']:g} CPUs, {total['GPU']:g} GPUs; each fit "
              f"reserves {self.config.cpus_per_fit:g} CPU and {self.config.gpus_per_fit:g} GPU", file=sys.stderr)
        self._check_resources(nodes, may_grow=bool(address))

    def _check_resources(self, nodes: list[dict[str, float]], may_grow: bool) -> None:
        """A fit that asks for more than any node has would wait for ever: say so now."""
        need = {"CPU": self.config.cpus_per_fit, "GPU": self.config.gpus_per_fit}
        if any(all(node.get(name, 0) >= amount for name, amount in need.items()) for node in nodes):
            return
        have = ", ".join(f"{node.get('CPU', 0):g} CPU / {node.get('GPU', 0):g} GPU" for node in nodes)
        message = (f"each fit asks for {need['CPU']:g} CPU and {need['GPU']:g} GPU (--cpus-per-fit, "
                   f"--gpus-per-fit), more than any Ray node has ({have or 'no nodes'})")
        if not may_grow:
            raise ValueError(message + "; ask for less")
        print(f"warning: {message}; the fits wait until the cluster adds such a node", file=sys.stderr)

    def close(self) -> None:
        if self.owned and ray.is_initialized():
            ray.shutdown()
        self.connected = self.owned = False


def tasks(runs: Sequence[Run], execute: Execute) -> list[tuple[Execute, list[Run]]]:
    """The runs of each task, with the `execute` the task calls: one run per task, unless `execute` keeps some
    together (bench/execution.py TaskSplitter, e.g. batched fitting's batch groups)."""
    split = getattr(execute, "tasks", None)
    return split(runs) if split else [(execute, [run]) for run in runs]


@ray.remote
def execute_runs(payload: bytes, plugins: tuple[str, ...], threads: int, code: str, running) -> tuple[str, list]:
    """On a worker: check that it runs the driver's fitbench (`code`), load the plugins (a run may name their
    representations), then execute the runs with `threads` torch threads; returns where it ran and each run's
    (record, artifact, seconds it took)."""
    from fitbench import representations

    from .hardware import torch_threads

    where = f"{socket.gethostname()} pid {os.getpid()}"
    if (here := source_fingerprint()) != code:
        raise RuntimeError(f"the fitbench on {socket.gethostname()} is not the driver's (sources {here}, driver's "
                           f"{code}); install the same version on every node")
    for spec in plugins:
        representations.load_plugin(spec)
    execute, runs = cloudpickle.loads(payload)
    results = []
    with torch_threads(threads):
        for run in runs:
            running.started.remote(run.key, where)
            started = time.perf_counter()
            record, artifact = execute(run, StepReporter(running, run.key))
            results.append((record, artifact, time.perf_counter() - started))
    return where, results


class StepReporter:
    """A run's on_step on a worker: tells the Running actor the step at most every REPORT_SECONDS."""

    def __init__(self, running, key: str):
        self.running, self.key, self.last = running, key, 0.0

    def __call__(self, step: int, loss: float) -> None:
        now = time.monotonic()
        if now - self.last >= REPORT_SECONDS:
            self.last = now
            self.running.stepped.remote(self.key, step)


@ray.remote(num_cpus=0)
class Running:
    """What runs where, for the driver's progress: each run's worker and step, and how often it was started."""

    def __init__(self):
        self.running: dict[str, tuple[str, int]] = {}  # key -> (where, step)
        self.attempts: dict[str, int] = {}  # key -> times a worker started it (more than 1: restarted)

    def started(self, key: str, where: str) -> None:
        self.running[key] = (where, 0)
        self.attempts[key] = self.attempts.get(key, 0) + 1

    def stepped(self, key: str, step: int) -> None:
        if key in self.running:
            self.running[key] = (self.running[key][0], step)

    def snapshot(self) -> tuple[dict[str, tuple[str, int]], dict[str, int]]:
        return self.running, self.attempts


class RunningView:
    """The driver's side of the Running actor: what runs where, read without ever waiting for the actor (the
    progress is only a view; an actor that is slow or gone never holds up a result)."""

    def __init__(self, runs: Sequence[Run]):
        self.by_key = {run.key: run for run in runs}
        self.actor = Running.options(name=f"{PROGRESS_ACTOR}-{secrets.token_hex(4)}").remote()
        self.asked = self.actor.snapshot.remote()
        self.running: dict[str, tuple[str, int]] = {}
        self.attempts: dict[str, int] = {}

    def _update(self, timeout: float = 0) -> None:
        with contextlib.suppress(ray.exceptions.RayError):
            if ray.wait([self.asked], timeout=timeout)[0]:
                self.running, self.attempts = ray.get(self.asked)
                self.asked = self.actor.snapshot.remote()

    def describe(self, pending) -> str:
        """'2 running: siren on camera (seed 0) @ host pid 12 step 40/300, ...' for the runs still in flight."""
        self._update()
        waiting = {run.key for task_runs in pending for run in task_runs}
        now = [(self.by_key[key], where, step) for key, (where, step) in self.running.items() if key in waiting]
        shown = [f"{run.label} @ {where} step {step}/{run.steps}" for run, where, step in now[:2]]
        more = f", +{len(now) - 2} more" if len(now) > 2 else ""
        return f"{len(now)} running: {', '.join(shown)}{more}" if now else "waiting for workers"

    def restarted(self) -> list[str]:
        """The runs that a worker started more than once (Ray retried their task)."""
        self.asked = self.actor.snapshot.remote()  # one last look, after every worker reported
        self._update(timeout=10)
        return sorted(self.by_key[key].label for key, count in self.attempts.items() if count > 1)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            ray.kill(self.actor)


def lost_reason(error: Exception) -> str:
    """One line for a task that did not finish."""
    if isinstance(error, ray.exceptions.RayTaskError) and error.cause is not None:
        return f"{type(error.cause).__name__}: {error.cause}".splitlines()[0]  # e.g. a plugin a worker cannot load
    if isinstance(error, ray.exceptions.WorkerCrashedError):
        return f"its worker died {MAX_RETRIES + 1} times (killed, or out of memory)"
    return f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
