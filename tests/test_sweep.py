"""utils/sweep.py, one command per paper table: the dry run of Table 1 (every run and its epochs, scratch-B from the
FLOPs ratio of the pruned architecture), GPU packing with fake workers (CUDA_VISIBLE_DEVICES, at most K runs per
GPU, dependencies), Slurm jobs (CIFAR runs grouped per GPU, ImageNet runs as multi-node torchrun-style tasks), a
two-run sweep through submitit's LocalExecutor, and a run killed in its second epoch that the same command resumes
from its checkpoint, then skips once finished."""
import json
import os
import re
import signal
import threading
import time

import pytest

from conftest import ROOT

pytestmark = pytest.mark.usefixtures("one_thread")
ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
# Table 1's CIFAR-10 rows at a tiny scale, on conftest's synthetic CIFAR-10 pickles (quick to load)
TINY = ["--table", "1", "--datasets", "cifar10", "--test-subset", "100", "--width", "0.0625", "--seeds", "1",
        "--stages", "baseline", "--no-tensorboard", "--no-plot"]
PLAN_LINE = re.compile(r"^\[(\d+)/(\d+)\] (\S+) (.+) seed(\d+) (\S+): (no training|(\d+) epochs)")


def plan_lines(text):
    """{(dataset, name, seed, stage): epochs (None for a prune)} of a dry run's output."""
    runs = {}
    for line in text.splitlines():
        m = PLAN_LINE.match(line)
        if m:
            runs[(m[3], m[4], int(m[5]), m[6])] = None if m[7] == "no training" else int(m[8])
    return runs


def test_dry_run_of_table_1_lists_every_run_with_its_epochs(capsys, tmp_path):
    from utils import sweep
    assert sweep.main(["--table", "1", "--dry-run", "--out", str(tmp_path / "t1")]) == 0
    out = capsys.readouterr().out
    assert not (tmp_path / "t1").exists(), "--dry-run must write nothing"
    runs = plan_lines(out)
    # the paper's: 5 seeds on CIFAR, 1 on ImageNet; scratch-B = int(E x FLOPs ratio) (paper_tables.md: 243, 178,
    # 220, 190, 260; ImageNet's cap rule: 106, 118)
    cifar_b = {"VGG-16-A": 243, "ResNet-56-A": 178, "ResNet-56-B": 220, "ResNet-110-A": 190, "ResNet-110-B": 260}
    expected = {}
    for seed in range(1, 6):
        for model in ("VGG-16", "ResNet-56", "ResNet-110"):
            expected[("cifar10", model, seed, "baseline")] = 160
        for name, b in cifar_b.items():
            expected.update({("cifar10", name, seed, "prune"): None, ("cifar10", name, seed, "finetune"): 40,
                             ("cifar10", name, seed, "scratch-E"): 160, ("cifar10", name, seed, "scratch-B"): b})
    expected[("imagenet", "ResNet-34", 1, "baseline")] = 90
    for name, b in (("ResNet-34-A", 106), ("ResNet-34-B", 118)):
        expected.update({("imagenet", name, 1, "prune"): None, ("imagenet", name, 1, "finetune"): 20,
                         ("imagenet", name, 1, "scratch-E"): 90, ("imagenet", name, 1, "scratch-B"): b})
    assert runs == expected
    assert f"{len(expected)} runs" in out
    assert re.search(r"estimated GPU time: [\d.]+ GPU-hours", out) and "assumed, not measured" in out

    # the same epochs from utils.flops on the published cfgs (README's table: Li et al.'s widths), independent of
    # the rule the plan ran
    from models import create_model
    from models.imagenet import create_preset
    from utils.flops import count_flops
    r56b = [6] * 7 + [16, 16] + [32] + [22] * 6 + [32, 22] + [64] + [57] * 7 + [64]
    assert int(160 * count_flops(create_model("resnet", 56)) / count_flops(create_model("resnet", 56, cfg=r56b))) \
        == runs[("cifar10", "ResNet-56-B", 1, "scratch-B")]
    for v in "AB":
        ratio = count_flops(create_preset("resnet34")) / count_flops(create_preset(f"resnet34-{v}"))
        assert int(90 * ratio) == runs[("imagenet", f"ResNet-34-{v}", 1, "scratch-B")]

    # measured epoch times replace the assumed ones, and the output says where they come from
    times = tmp_path / "times.json"
    times.write_text(json.dumps({"gpu": "A100", "seconds_per_epoch": {"resnet-56/cifar": 3600}}))
    sweep.main(["--table", "1", "--dry-run", "--rows", "ResNet-56-A", "--seeds", "1", "--epoch-times", str(times)])
    out = capsys.readouterr().out
    assert "cifar10 ResNet-56-A seed1 scratch-B: 178 epochs  [int(160 x 1.1157)]  ~178.00 GPU-h" in out
    assert f"measured, from {times}" in out and "on one A100" in out


class FakeLauncher:
    """Workers that take a few scheduler ticks and write summary.json; records what each was started with."""
    poll_s = 0.001

    def __init__(self):
        self.started, self.active, self.peak, self.done = [], {}, {}, set()

    def start(self, step, env):
        launcher, gpu = self, env["CUDA_VISIBLE_DEVICES"]
        assert all(f in self.done for _, f in step.needs), f"{step.label} started before its input finished"
        self.started.append((step, dict(env)))
        self.active[gpu] = self.active.get(gpu, 0) + (2 if step.whole_gpu else 1)
        self.peak[gpu] = max(self.peak.get(gpu, 0), self.active[gpu])

        class Handle:
            resumed, ticks = False, 3

            def poll(self):
                self.ticks -= 1
                if self.ticks:
                    return None
                launcher.active[gpu] -= 2 if step.whole_gpu else 1
                os.makedirs(step.save, exist_ok=True)
                with open(os.path.join(step.save, "summary.json"), "w") as f:
                    json.dump({"epochs": 1, "best_prec1": 0.5}, f)
                launcher.done.add(step.save)
                return 0
        return Handle()

    def flush(self):
        pass


def test_a_running_workers_log_shows_each_line_as_it_comes(tmp_path, monkeypatch):
    """A stage's log.txt is its progress while it runs: each line of its output reaches the file at once, not when
    the stage ends (the stage here prints a line, then waits)."""
    import subprocess
    import sys
    from utils import sweep
    popen = subprocess.Popen

    def stage_that_prints_then_waits(args, **kwargs):
        return popen([sys.executable, "-c", "import time; print('epoch 1 done', flush=True); time.sleep(60)"],
                     **kwargs)

    monkeypatch.setattr(sweep.subprocess, "Popen", stage_that_prints_then_waits)
    worker = sweep.Worker(str(tmp_path / "run"), "{}", "python cifar/l1-norm-pruning/train.py", dict(os.environ))
    try:
        log = tmp_path / "run" / "log.txt"
        deadline = time.time() + 30
        while "epoch 1 done" not in log.read_text() and time.time() < deadline:
            time.sleep(0.1)
        assert worker.poll() is None  # still running
        assert log.read_text() == "$ python cifar/l1-norm-pruning/train.py\nepoch 1 done\n"
    finally:
        worker.stop()


def test_packing_gives_each_worker_its_gpu_and_at_most_k_per_gpu(tmp_path, capsys):
    from utils.sweep import Step, execute
    steps = []
    for seed in range(5):  # 5 chains of baseline -> 2 dependents, and one ImageNet run needing a GPU of its own
        base = str(tmp_path / f"s{seed}" / "baseline")
        steps.append(Step(f"s{seed} baseline", "train", base, None))
        steps += [Step(f"s{seed} {n}", "train", str(tmp_path / f"s{seed}" / n), None, needs=[("train", base)])
                  for n in ("finetune", "scratch")]
    steps.insert(3, Step("imagenet", "train", str(tmp_path / "imagenet"), None, whole_gpu=True))
    fake = FakeLauncher()
    ran, skipped, failed, blocked = execute(steps, threads=1, gpus=["0", "1"], runs_per_gpu=2, launcher=fake)
    assert (ran, skipped, failed, blocked) == (16, 0, [], [])
    assert {env["CUDA_VISIBLE_DEVICES"] for _, env in fake.started} == {"0", "1"}
    assert all(env.get("OMP_NUM_THREADS") == (None if step.whole_gpu else "1") for step, env in fake.started)
    assert fake.peak == {"0": 2, "1": 2}, "two runs per GPU at most, and the packing used"
    out = capsys.readouterr().out
    assert re.search(r"\] s0 baseline on GPU [01] \.\.\.", out)

    # a rerun skips everything; the planned stages get --device cuda with --gpus
    assert execute(steps, gpus=["0", "1"], runs_per_gpu=2, launcher=FakeLauncher()) == (0, 16, [], [])
    from utils.sweep import Planner, parse_args
    planned = Planner(parse_args(["--table", "1", "--rows", "ResNet-56-A", "--seeds", "1", "--gpus", "0,1",
                                  "--runs-per-gpu", "2"])).plan()
    assert [s.stage for s in planned] == ["baseline", "prune", "finetune", "scratch-E", "scratch-B"]
    assert all([a for a in s.call.args if hasattr(a, "device")][0].device == "cuda" for s in planned)


def test_slurm_jobs_pack_cifar_runs_and_run_imagenet_over_nodes(tmp_path, monkeypatch):
    """Without a cluster: a stand-in srun lets submitit's Slurm executor write its batch scripts; the job
    environment of a two-task job is checked through the LocalExecutor."""
    from utils import sweep
    fake = tmp_path / "bin" / "srun"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    launcher = sweep.SubmititLauncher("slurm", str(tmp_path / "slurm"), per_job=3, partition="gpu", nodes=2,
                                      gpus_per_node=4)
    submitted = []
    monkeypatch.setattr(launcher.executor, "submit", lambda fn, units: submitted.append(
        (launcher.executor._executor._make_submission_file_text("cmd", "%j"), len(units))) or FakeJob())
    call = FakeCall()
    steps = [sweep.Step(f"r{i}", "train", str(tmp_path / f"r{i}"), call, whole_gpu=i == 2) for i in range(8)]
    handles = [launcher.start(step, {}) for step in steps]
    launcher.flush()
    layout = re.compile(r"#SBATCH --(nodes|ntasks-per-node|gpus-per-node|partition)=")
    sbatch = [(sorted(line for line in text.splitlines() if layout.match(line)), n) for text, n in submitted]
    cifar = ["#SBATCH --gpus-per-node=1", "#SBATCH --nodes=1", "#SBATCH --ntasks-per-node=1", "#SBATCH --partition=gpu"]
    imagenet = ["#SBATCH --gpus-per-node=4", "#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=4",
                "#SBATCH --partition=gpu"]
    assert sbatch == [(imagenet, 1), (cifar, 3), (cifar, 3), (cifar, 1)]  # 7 CIFAR runs in groups of 3 per GPU
    assert [h.index for h in handles] == [0, 1, 0, 2, 0, 1, 2, 0]

    import submitit
    executor = submitit.AutoExecutor(str(tmp_path / "local"), cluster="local")
    executor.update_parameters(timeout_min=2, tasks_per_node=2, gpus_per_node=0)
    results = executor.submit(sweep.job_environment).results()
    assert [r[0] for r in results] == ["log.txt", "log.rank1.txt"]
    ranks = [r[1] for r in results]
    assert [(v["RANK"], v["LOCAL_RANK"], v["WORLD_SIZE"]) for v in ranks] == [("0", "0", "2"), ("1", "1", "2")]
    assert ranks[0]["MASTER_ADDR"] == ranks[1]["MASTER_ADDR"] and ranks[0]["MASTER_PORT"] == ranks[1]["MASTER_PORT"]


class FakeJob:
    def done(self):
        return False


class FakeCall:
    stage = "train"

    def to_json(self):
        return "{}"

    def command(self):
        return ["train.py"]


def test_two_runs_through_submitits_local_executor(tmp_path, capsys, monkeypatch, cifar_dir):
    from utils import sweep
    for k, v in {**ENV, "PYTHONPATH": str(ROOT)}.items():  # the jobs and their workers: one thread each
        monkeypatch.setenv(k, v)
    out = tmp_path / "local"
    sweep.main([*TINY, "--data", cifar_dir, "--rows", "VGG-16-A", "--seeds", "1", "2", "--epochs", "1",
                "--train-subset", "128", "--executor", "local", "--jobs", "2", "--out", str(out)])
    stdout = capsys.readouterr().out
    assert "sweep: 2 run(s) done, 0 skipped" in stdout, stdout
    for seed in (1, 2):
        summary = json.loads((out / "cifar10" / "vgg-16" / f"seed{seed}" / "baseline" / "summary.json").read_text())
        assert summary["epochs"] == 1 and summary["args"]["seed"] == seed
    assert len(list((out / "submitit").glob("*_result.pkl"))) == 2  # each run was a submitit job


def test_a_killed_run_resumes_from_its_checkpoint_and_finished_runs_are_skipped(tmp_path, capsys, monkeypatch,
                                                                               cifar_dir):
    from utils import sweep
    from utils.errors import UserError
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    out = tmp_path / "resume"
    argv = [*TINY, "--data", cifar_dir, "--rows", "VGG-16-A", "--width", "0.25", "--epochs", "2", "--train-subset",
            "500", "--out", str(out)]
    run = out / "cifar10" / "vgg-16" / "seed1" / "baseline"
    workers, start = [], sweep.ProcessLauncher.start
    monkeypatch.setattr(sweep.ProcessLauncher, "start", lambda self, *a: workers.append(start(self, *a)) or workers[-1])

    def kill_in_epoch_2():  # the run is killed (as a job past its time limit) once epoch 1's checkpoint is written
        while not (run / "checkpoint.pth.tar").exists() and time.time() < deadline:
            time.sleep(0.005)
        workers[0].proc.send_signal(signal.SIGKILL)
    deadline = time.time() + 120
    threading.Thread(target=kill_in_epoch_2, daemon=True).start()
    with pytest.raises(UserError, match="1 run"):
        sweep.main(argv)
    assert "cifar10 VGG-16 seed1 baseline: FAILED (exit -9)" in capsys.readouterr().out
    assert (run / "checkpoint.pth.tar").exists() and not (run / "summary.json").exists(), "killed too late"

    sweep.main(argv)  # the same command again: the run continues at epoch 2
    assert "cifar10 VGG-16 seed1 baseline (resuming) ..." in capsys.readouterr().out
    rerun = (run / "log.txt").read_text().split("--resume auto")[-1]  # what the second worker printed
    assert "resumed from" in rerun and "at epoch 1" in rerun
    assert "epoch    2/2" in rerun and "epoch    1/2" not in rerun, "the rerun must continue, not restart"
    assert json.loads((run / "summary.json").read_text())["epochs"] == 2

    mtime = (run / "summary.json").stat().st_mtime_ns
    sweep.main(argv)  # and once more: nothing to run
    stdout = capsys.readouterr().out
    assert "cifar10 VGG-16 seed1 baseline: done, skipped" in stdout and "sweep: 0 run(s) done, 1 skipped" in stdout
    assert (run / "summary.json").stat().st_mtime_ns == mtime
