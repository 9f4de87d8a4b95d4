"""`--executor ray` on a real local Ray instance (issue 12): the same records as a local run, faults, resume.

One Ray instance serves the whole module (the `ray_cluster` fixture); the CLI joins it in-process, and a second
driver process joins it by address. The Ray tests skip where Ray is not installed; CI installs the extra.
"""

import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from fitbench.executor import ExecutorConfig
from fitbench.interpolation import INTERPOLATIONS

REPO = Path(__file__).resolve().parents[1]
needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason='needs Ray: pip install -e ".[distributed]" (CI installs it)')
SMOKE = ("--preset", "smoke", "--max-images", "1")
TIMING = {"seconds", "step_seconds", "warmup_seconds", "gflops", "peak_fraction", "batch_seconds", "created",
          "train_seconds", "encode_seconds", "decode_seconds"}  # what differs between any two runs


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray instance for the module (2 CPUs); yields its address for other drivers to join."""
    import logging

    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.ERROR)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def records(out: Path, suite: str = "fitting", name: str = "runs.jsonl") -> list[dict]:
    return [json.loads(line) for line in (out / suite / name).read_text().splitlines() if line.strip()]


def without_timing(value):
    """A record with every wall-clock field removed, at any depth (compression points carry their own)."""
    if isinstance(value, dict):
        return {k: without_timing(v) for k, v in value.items() if k not in TIMING and k != "eval"}
    if isinstance(value, list):
        return [without_timing(v) for v in value]
    return value


def assert_same_records(local: list[dict], distributed: list[dict]) -> None:
    by_key = lambda rows: {row["key"]: without_timing(row) for row in rows}
    assert len(distributed) == len({row["key"] for row in distributed})  # each run recorded once
    here, there = by_key(local), by_key(distributed)
    assert here.keys() == there.keys()
    differing = {(row.get("representation") or row.get("method"), name) for key, row in here.items()
                 for name in row if row[name] != there[key][name]}
    assert not differing, f"records differ in (run, field): {sorted(differing)}"


# --- without Ray: the option's errors -----------------------------------------------------------------------------

def test_executor_ray_without_ray_installed_is_one_line_with_the_install_command(run_cli, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as on a machine without the extra: `import ray` fails
    code, _, err = run_cli("--suite", "fitting", *SMOKE, "--executor", "ray", "--out", tmp_path)
    assert code == 2
    assert err.strip() == ('error: --executor ray needs Ray, which is not installed; install it with: '
                           'pip install -e ".[distributed]"')
    assert not (tmp_path / "fitting" / "runs.jsonl").exists()


@pytest.mark.parametrize("args, message", [
    (("--cpus-per-fit", "2"), "--cpus-per-fit only apply to --executor ray"),
    (("--executor", "ray", "--gpus-per-fit", "1.5"), "--gpus-per-fit 1.5: give a fraction of one GPU"),
    (("--executor", "ray", "--cpus-per-fit", "0"), "--cpus-per-fit must be positive"),
    (("--threads-per-fit", "0"), "--threads-per-fit must be at least 1"),
    (("--executor", "ray", "--device", "cuda", "--gpus-per-fit", "0"), "--gpus-per-fit 0: the fits run on CUDA"),
])
def test_bad_executor_options_are_one_line_errors(run_cli, tmp_path, args, message):
    if "ray" in args and importlib.util.find_spec("ray") is None:
        pytest.skip("the Ray checks come after the check that Ray is installed")
    code, _, err = run_cli("--suite", "fitting", *SMOKE, *args, "--out", tmp_path)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


@needs_ray
def test_suites_whose_runs_must_run_here_do_not_take_an_executor(run_cli, tmp_path):
    """The generative suite's runs share one in-memory scoring context and speed measures this machine: neither
    takes --executor, so asking for Ray there is a one-line error rather than a note and a local run."""
    for suite in ("generative", "speed"):
        code, _, err = run_cli(suite, "--preset", "smoke", "--executor", "ray", "--out", tmp_path)
        assert code == 2 and err.startswith("error: unrecognized arguments: --executor ray")
    assert not any(tmp_path.iterdir())


# --- on a local Ray instance ------------------------------------------------------------------------------------

@needs_ray
def test_fitting_through_ray_equals_a_local_run(run_cli, tmp_path, ray_cluster):
    args = ("--suite", "fitting", *SMOKE, "--reps", "siren,rbf", "--steps", "30", "--threads-per-fit", "1")
    assert run_cli(*args, "--out", tmp_path / "local")[0] == 0
    code, _, err = run_cli(*args, "--executor", "ray", "--out", tmp_path / "ray")
    assert code == 0
    local, distributed = records(tmp_path / "local"), records(tmp_path / "ray")
    assert len(local) == 2 + len(INTERPOLATIONS)  # 2 representations and the interpolation references
    assert_same_records(local, distributed)
    for row in distributed:  # the driver wrote every artifact, identical to the local run's
        assert (tmp_path / "ray/fitting" / row["reconstruction"]).read_bytes() == \
            (tmp_path / "local/fitting" / row["reconstruction"]).read_bytes()
    assert " pid " in err  # each finished line says where it ran
    total = len(local)
    assert f"progress: {total}/{total} done" in err  # the same progress as a local run, timed by the workers


@needs_ray
def test_batched_fitting_through_ray_keeps_each_batch_in_one_task(run_cli, tmp_path, ray_cluster):
    args = ("--suite", "fitting", *SMOKE, "--reps", "siren", "--seeds", "2", "--steps", "30", "--batch", "on",
            "--threads-per-fit", "1")
    assert run_cli(*args, "--out", tmp_path / "local")[0] == 0
    assert run_cli(*args, "--executor", "ray", "--out", tmp_path / "ray")[0] == 0
    local, distributed = records(tmp_path / "local"), records(tmp_path / "ray")
    assert [r["batch"] for r in distributed if r["kind"] == "representation"] == [2, 2]
    assert_same_records(local, distributed)


@needs_ray
def test_compression_through_ray_equals_a_local_run(run_cli, tmp_path, ray_cluster):
    args = ("--suite", "compression", *SMOKE, "--reps", "rbf", "--threads-per-fit", "1")
    assert run_cli(*args, "--out", tmp_path / "local")[0] == 0
    assert run_cli(*args, "--executor", "ray", "--out", tmp_path / "ray")[0] == 0
    local = records(tmp_path / "local", "compression", "points.jsonl")
    distributed = records(tmp_path / "ray", "compression", "points.jsonl")
    assert {r["kind"] for r in local} == {"representation", "codec"}
    assert_same_records(local, distributed)
    streams = sorted(p.relative_to(tmp_path / "local") for p in (tmp_path / "local").rglob("*.fbi"))
    assert streams and streams == sorted(p.relative_to(tmp_path / "ray") for p in (tmp_path / "ray").rglob("*.fbi"))
    assert all((tmp_path / "local" / p).read_bytes() == (tmp_path / "ray" / p).read_bytes() for p in streams)


PLUGIN = '''
from dataclasses import dataclass

import torch

from fitbench.representations import RepresentationConfig, register


@dataclass
class PlaneConfig(RepresentationConfig):
    lr: float = 1e-2


@register("ray_test_plane", PlaneConfig)
def plane(config, out_features):
    """A linear map of (x, y): its config class lives in this plugin, so a worker must load it to read the run."""
    return torch.nn.Linear(2, out_features)


@register("ray_test_raises", RepresentationConfig)
def raises(config, out_features):
    """Fails to build."""
    raise RuntimeError("out of coffee on a worker")
'''


@needs_ray
def test_plugins_load_on_workers_and_a_run_that_raises_is_an_error_record(run_cli, tmp_path, ray_cluster):
    plugin = tmp_path / "ray_plugin.py"
    plugin.write_text(PLUGIN)
    code, _, err = run_cli("--plugin", plugin, "--suite", "fitting", *SMOKE, "--reps", "ray_test_plane,ray_test_raises",
                           "--steps", "5", "--executor", "ray", "--out", tmp_path / "out")
    assert code == 1  # as locally: the failed run fails the suite, the others are recorded
    rows = {r["representation"]: r for r in records(tmp_path / "out")}
    assert rows["ray_test_plane"]["status"] == "ok" and rows["ray_test_plane"]["config"]["lr"] == 1e-2
    assert rows["ray_test_raises"]["status"] == "error"
    assert rows["ray_test_raises"]["error"] == "RuntimeError: out of coffee on a worker"
    assert "error: ray_test_raises on camera: RuntimeError: out of coffee on a worker" in err


@needs_ray
def test_a_fit_that_asks_for_more_than_any_node_has_is_refused_at_once(run_cli, tmp_path, ray_cluster):
    code, _, err = run_cli("--suite", "fitting", *SMOKE, "--reps", "rbf", "--executor", "ray", "--cpus-per-fit", "64",
                           "--out", tmp_path)
    assert code == 2 and "each fit asks for 64 CPU and 0 GPU" in err and "more than any Ray node has" in err


@needs_ray
def test_runs_that_cannot_execute_are_reported_after_every_other_run_is_recorded(tmp_path, ray_cluster, capsys):
    from fitbench.distributed import RayExecutor
    from fitbench.executor import RunsLostError, execute_pending
    from fitbench.records import RecordLog

    @dataclass(frozen=True)
    class Job:  # defined in the test, so Ray pickles it by value: workers cannot import this module
        key: str
        steps: int = 1

        @property
        def label(self) -> str:
            return f"job {self.key}"

    def execute(run, on_step):
        if run.key == "b":
            raise OSError("the data root is not mounted on this node")
        return {"key": run.key, "status": "ok"}, None

    log = RecordLog(tmp_path / "runs.jsonl")
    with pytest.raises(RunsLostError, match=r"1 run\(s\) could not execute on Ray \(first: OSError: the data root"):
        execute_pending([Job("a"), Job("b"), Job("c")], log, execute, executor=RayExecutor(ExecutorConfig("ray")))
    assert sorted(log.finished_keys()) == ["a", "c"]
    assert "error: job b: not executed on Ray: OSError: the data root is not mounted" in capsys.readouterr().err


@needs_ray
def test_a_worker_whose_fitbench_differs_from_the_drivers_refuses_to_run(ray_cluster):
    import ray

    from fitbench.distributed import Running, execute_runs

    running = Running.remote()
    with pytest.raises(ray.exceptions.RayTaskError, match="is not the driver's .* install the same version"):
        ray.get(execute_runs.remote(b"", (), 1, "another-code", running))
    ray.kill(running)


def kill_a_worker_mid_fit(stop: threading.Event, killed: list[int]) -> None:
    """SIGKILL the worker of the first run that the executor's Running actor shows past its first step."""
    import ray

    from fitbench.distributed import PROGRESS_ACTOR

    while not stop.is_set() and not killed:
        for name in ray.util.list_named_actors():
            if name.startswith(PROGRESS_ACTOR):
                with contextlib.suppress(ray.exceptions.RayError, ValueError):  # gone, or not started yet
                    running, _ = ray.get(ray.get_actor(name).snapshot.remote(), timeout=5)
                    for where, step in running.values():
                        if step >= 1:
                            pid = int(where.rsplit(" ", 1)[1])
                            os.kill(pid, signal.SIGKILL)
                            killed.append(pid)
                            return
        time.sleep(0.1)


@needs_ray
def test_a_worker_killed_mid_fit_is_retried_and_every_run_is_recorded_once(run_cli, tmp_path, ray_cluster):
    stop, killed = threading.Event(), []
    killer = threading.Thread(target=kill_a_worker_mid_fit, args=(stop, killed))
    killer.start()
    try:
        code, _, err = run_cli("--suite", "fitting", *SMOKE, "--reps", "siren", "--steps", "1000",
                               "--executor", "ray", "--out", tmp_path)
    finally:
        stop.set()
        killer.join()
    assert killed, "no fit ran long enough to be killed"
    assert code == 0
    rows = records(tmp_path)
    assert sorted(r["representation"] for r in rows) == sorted([*INTERPOLATIONS, "siren"])  # none lost, none twice
    assert all(r["status"] == "ok" for r in rows)
    assert "note: Ray restarted 1 run(s) whose worker died (siren on camera (seed 0))" in err


@needs_ray
def test_a_killed_driver_keeps_its_records_and_the_rerun_completes_only_the_rest(run_cli, tmp_path, ray_cluster):
    args = ["--suite", "fitting", *SMOKE, "--reps", "rbf,siren", "--steps", "300", "--executor", "ray",
            "--out", str(tmp_path)]
    log = tmp_path / "fitting" / "runs.jsonl"
    output = tmp_path / "driver.log"
    with output.open("w") as stream:
        driver = subprocess.Popen([sys.executable, str(REPO / "run_bench.py"), *args, "--ray-address", ray_cluster],
                                  cwd=tmp_path, stdout=stream, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while not (log.exists() and log.read_text().count("\n") >= 1) and time.monotonic() < deadline:
            assert driver.poll() is None, output.read_text()
            time.sleep(0.05)
        # A second driver on the same folder stops at once, before joining Ray.
        code, _, err = run_cli(*args)
        assert code == 2 and "is being written by another fitbench run" in err
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    finally:
        if driver.poll() is None:
            driver.kill()
    before = {r["key"]: r for r in records(tmp_path)}  # every line a whole record (fsynced as it came)
    total = 2 + len(INTERPOLATIONS)
    assert 1 <= len(before) < total
    code, _, err = run_cli(*args)
    assert code == 0
    assert f"resuming: {len(before)} of {total} runs already finished" in err
    after = records(tmp_path)
    assert len(after) == len({r["key"] for r in after}) == total  # the rest, each once
    assert all(row == before[row["key"]] for row in after if row["key"] in before)  # kept as they were
