"""One command per paper table: every row's baseline, prune, fine-tune, scratch-E and scratch-B for N seeds, with the
recipes of the method folders' run scripts, packed onto GPUs or submitted to a scheduler; then the results
collector's table and plots.

    python -m utils.sweep --table 1 --dry-run                           # the plan: every run, its epochs, GPU-hours
    python -m utils.sweep --table 1 --gpus 0,1,2,3 --runs-per-gpu 3 --imagenet /data/imagenet
    python -m utils.sweep --table 4 --executor slurm --partition gpu --runs-per-gpu 3
    python -m utils.sweep --table 1 --datasets cifar10 --dataset fashionmnist --epochs 2 --train-subset 512 \\
        --width 0.125 --seeds 1                                          # a CPU-scale check of the same plan

Tables: 1 (L1-norm: VGG-16-A, ResNet-56-A/B, ResNet-110-A/B on CIFAR-10, ResNet-34-A/B on ImageNet), 2 (ThiNet),
3 (regression pruning), 4 (network slimming), 5 (Sparse Structure Selection), 6 (weight level), lottery-l1 and
lottery-weight (winning ticket vs random init). Every stage is the library call of the method's script with the
arguments its run_*.sh gives it (utils/cli.py's Call), run in a worker process of its own; --dry-run --commands
shows the equivalent command lines. CIFAR rows: 5 seeds, ImageNet rows: 1 (the paper's), unless --seeds.

Layout: OUT/<dataset>/<model>/seed<k>/{baseline,sparse} (the trunk, shared by the rows of that model), and
OUT/<dataset>/<model>/seed<k>/<pruned model>/{pruned,finetune,scratch-E,scratch-B}; the lottery tables use
lottery_ticket/iterate.py's layout under OUT/<dataset>/<model>/lr<LR>/seed<k>. Finished runs (summary.json, or
prune.json + pruned.pth.tar) are skipped, interrupted ones continue (--resume auto): run the same command again
after a crash, a kill or a job's time limit. At the end: OUT/results/results.md, results.csv and plots
(utils/results.py), lottery.md for the lottery tables (lottery_ticket/collect.py).

Packing: with --gpus 0,1 --runs-per-gpu K each worker gets CUDA_VISIBLE_DEVICES=<its GPU> and --device cuda, and
at most K CIFAR runs share a GPU at once; an ImageNet run takes a GPU of its own. --executor local|slurm submits
through submitit instead: with slurm, one job per group of up to K ready CIFAR runs (one GPU, the runs side by side)
and one job per ImageNet run over --nodes x --gpus-per-node GPUs, one task per GPU with torchrun's environment
(RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT, read by utils/dist.py). The driver waits for the jobs and
submits each run once its input is finished; keep it running (tmux) or run it again: what finished is skipped.
"""
import dataclasses
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from utils.hparams import hp  # noqa: E402  (light: the job processes of submitit import this module)


# ============================================================================================ running steps
@dataclass
class Step:
    label: str                 # "cifar10 ResNet-56-B seed1 scratch-B"
    kind: str                  # train / prune: what marks it finished
    save: str
    call: Any                  # utils.cli.Call: the stage and its typed arguments (its --save is ``save``)
    needs: list = field(default_factory=list)   # (kind, folder) that must hold a finished step first
    link: tuple = None         # (symlink, real folder) of a shared trunk
    stage: str = ""            # baseline / sparse / prune / finetune / scratch-E / scratch-B / ticket / random
    epochs: Any = None         # int, or a note saying when it is known
    note: str = ""             # how the epochs were found
    timing: str = ""           # the row of the epoch-time table: "resnet-56/cifar"
    images: float = 1.0        # fraction of the training set (--train-subset), for the estimate
    whole_gpu: bool = False    # an ImageNet run: a GPU (or, with slurm, nodes) of its own


def finished(step_kind, folder):
    if step_kind == "prune":
        return all(os.path.isfile(os.path.join(folder, f)) for f in ("prune.json", "pruned.pth.tar"))
    return os.path.isfile(os.path.join(folder, "summary.json"))


def resumable(step):
    """The step's call, continuing its interrupted run (--resume auto) when a checkpoint is there."""
    if step.kind == "train" and os.path.isfile(os.path.join(step.save, "checkpoint.pth.tar")):
        i = next(i for i, a in enumerate(step.call.args) if hasattr(a, "resume"))
        train = replace(step.call.args[i], resume="auto")
        train._given = getattr(step.call.args[i], "_given", frozenset()) | {"resume"}
        return replace(step.call, args=step.call.args[:i] + (train,) + step.call.args[i + 1:])
    return step.call


def command(step):
    """The command line that runs the same stage through its script (shown in logs and by --dry-run)."""
    return [sys.executable] + resumable(step).command()


def make_link(link, target):
    """A relative symlink from a ratio's trunk folder to the shared one (for browsing; nothing reads it)."""
    if os.path.lexists(link):
        return
    os.makedirs(os.path.dirname(link), exist_ok=True)
    try:
        os.symlink(os.path.relpath(target, os.path.dirname(link)), link, target_is_directory=True)
    except OSError:
        pass  # a file system without symlinks: prune.json's source still names the real folder


class Worker:
    """One stage in a process of its own (``python -m utils.cli`` reads its Call as JSON on stdin); a thread copies
    its output to SAVE/<log_name> (and, given ``echo``, to stdout with that prefix)."""

    def __init__(self, save, call_json, shown_command, env, echo=None, log_name="log.txt"):
        self.start = time.time()
        os.makedirs(save, exist_ok=True)
        # line-buffered: a running stage's log shows its epochs as they end (`tail -f` on a long study)
        self.log = open(os.path.join(save, log_name), "a", buffering=1)
        self.log.write(f"$ {shown_command}\n")
        self.proc = subprocess.Popen([sys.executable, "-m", "utils.cli"], cwd=ROOT, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.proc.stdin.write(call_json)
        self.proc.stdin.close()
        self.copier = threading.Thread(target=self._copy, args=(echo,), daemon=True)
        self.copier.start()

    def _copy(self, echo):
        for line in self.proc.stdout:
            self.log.write(line)
            if echo:
                print(f"    {echo}: {line}", end="", flush=True)

    def poll(self):
        rc = self.proc.poll()
        if rc is not None and not self.log.closed:
            self.copier.join()
            self.log.close()
        return rc

    def wait(self):
        self.proc.wait()
        return self.poll()

    def stop(self):
        # a Ctrl-C at a terminal reached the stage too, a kill of the study alone did not (and a study started in
        # the background has SIGINT ignored, its stages too): SIGTERM makes it stop at once, keeping its last
        # checkpoint (written atomically), and it has 30 s to do so
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class ProcessLauncher:
    """Each step in a worker process on this machine."""
    poll_s = 0.2

    def __init__(self, verbose=False):
        self.verbose = verbose

    def start(self, step, env):
        call = resumable(step)
        worker = Worker(step.save, call.to_json(), "python " + shown(call.command()), {**os.environ, **env},
                        echo=step.label if self.verbose else None)
        worker.resumed = call is not step.call
        return worker

    def flush(self):
        pass

    def stop(self, handles):
        for h in handles:
            h.stop()


def run_job(units):
    """The body of a submitit job: each unit (folder, Call as JSON, command line, extra environment) in a worker
    process, side by side (the runs of a group share the job's GPU). A job of several tasks (an ImageNet run over
    nodes) runs the same units in every task as the ranks of one torchrun-style group. Returns the exit codes."""
    log_name, _ = job_environment()
    workers = [Worker(save, call, shown, {**os.environ, **env}, log_name=log_name) for save, call, shown, env in units]
    return [w.wait() for w in workers]


TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def job_environment():
    """In a job of several tasks, export torchrun's variables for this task. Returns (its log file name: log.txt
    for rank 0, log.rank<R>.txt for the others; the variables). utils/dist.py reads them and picks cuda:LOCAL_RANK
    itself, so every GPU of the node stays visible to every task."""
    import submitit
    job = submitit.JobEnvironment()
    if job.num_tasks == 1:
        return "log.txt", {}
    submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
    return (f"log.rank{job.global_rank}.txt" if job.global_rank else "log.txt",
            {k: os.environ[k] for k in TORCHRUN_VARIABLES})


class JobHandle:
    """One step of a submitted job (a job may hold a group of steps)."""

    def __init__(self, save, resumed):
        self.save, self.resumed, self.job, self.index = save, resumed, None, 0

    def poll(self):
        if self.job is None or not self.job.done():
            return None
        try:
            return self.job.results()[0][self.index]  # rank 0's exit codes
        except Exception as exc:  # the job itself failed: cancelled, out of time, out of memory
            with open(os.path.join(self.save, "log.txt"), "a") as f:
                f.write(f"submitit job {self.job.job_id} failed: {str(exc).strip()[-2000:]}\n")
            return 1


class SubmititLauncher:
    """Steps as submitit jobs (``cluster`` 'slurm', or 'local' for this machine): slurm packs up to ``per_job``
    ready CIFAR steps into one single-GPU job; an ImageNet step is a job of ``nodes`` x ``gpus_per_node`` tasks."""

    def __init__(self, cluster, folder, per_job=1, timeout_min=4320, partition=None, nodes=1, gpus_per_node=8,
                 cpus_per_gpu=8):
        import submitit
        paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        if ROOT not in paths:  # the jobs unpickle run_job from utils.sweep, wherever they start
            os.environ["PYTHONPATH"] = os.pathsep.join([ROOT] + paths)
        self.executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
        self.cluster, self.per_job, self.buffer = cluster, per_job if cluster == "slurm" else 1, []
        self.poll_s = 0.5 if cluster == "local" else 15.0  # slurm: every done() may ask sacct
        common = {"timeout_min": timeout_min, **({"slurm_partition": partition} if partition else {})}
        gpu = 1 if cluster == "slurm" else 0  # local: the scheduler's CUDA_VISIBLE_DEVICES picks the GPU
        self.params = {"cifar": {**common, "nodes": 1, "tasks_per_node": 1, "gpus_per_node": gpu,
                                 "cpus_per_task": max(2, per_job)},
                       "imagenet": {**common, "nodes": nodes if cluster == "slurm" else 1,
                                    "tasks_per_node": gpus_per_node if cluster == "slurm" else 1,
                                    "gpus_per_node": gpus_per_node if cluster == "slurm" else 0,
                                    "cpus_per_task": cpus_per_gpu}}
        self.jobs = []

    def start(self, step, env):
        call = resumable(step)
        handle = JobHandle(step.save, call is not step.call)
        self.buffer.append((step, (step.save, call.to_json(), "python " + shown(call.command()), env), handle))
        return handle

    def flush(self):
        cifar = [b for b in self.buffer if not b[0].whole_gpu]
        groups = [[b] for b in self.buffer if b[0].whole_gpu]
        groups += [cifar[i:i + self.per_job] for i in range(0, len(cifar), self.per_job)]
        for group in groups:
            self.executor.update_parameters(name=group[0][0].label.replace(" ", "_")[:60],
                                            **self.params["imagenet" if group[0][0].whole_gpu else "cifar"])
            job = self.executor.submit(run_job, [unit for _, unit, _ in group])
            self.jobs.append(job)
            for i, (_, _, handle) in enumerate(group):
                handle.job, handle.index = job, i
        self.buffer = []

    def stop(self, handles):
        for job in {id(h.job): h.job for h in handles if h.job is not None}.values():
            job.cancel(check=False)


class Slots:
    """Where runs may start: at most ``per_device`` at once on each device (a GPU, or None: this machine's CPUs);
    a whole-GPU run takes ``whole`` places (default: all of a device's)."""

    def __init__(self, devices, per_device, whole=None):
        self.free = {d: per_device for d in devices}
        self.whole = per_device if whole is None else whole

    def take(self, whole_gpu):
        need = self.whole if whole_gpu else 1
        for device, n in self.free.items():
            if n >= need:
                self.free[device] -= need
                return device, need
        return None

    def give(self, place):
        self.free[place[0]] += place[1]


@dataclass
class Run:
    step: Step
    index: int
    place: tuple               # (device, places taken)
    handle: Any                # a launcher's: poll() -> exit code or None, .resumed
    start: float


def execute(steps, jobs=2, threads=1, verbose=False, keep_going=False, *, gpus=(), runs_per_gpu=1, launcher=None,
            slots=None, on_step=None):
    """Run the steps in order, each once its inputs are finished: at most ``jobs`` at a time, or with ``gpus`` at
    most ``runs_per_gpu`` per GPU (each worker gets CUDA_VISIBLE_DEVICES=its GPU). A step whose input failed is
    blocked; after a failure nothing new starts unless ``keep_going``. ``on_step(ran)`` is called after each step
    that ends (a study keeps its record of time spent current). Returns (ran, skipped, failed, blocked)."""
    launcher = launcher or ProcessLauncher(verbose)
    slots = slots or Slots(list(gpus) or [None], runs_per_gpu if gpus else jobs)
    base = {"PYTHONUNBUFFERED": "1"}
    limit = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)} if threads else {}
    pending, running, failed, blocked = list(enumerate(steps, 1)), [], [], []
    bad, ran, skipped = set(), 0, 0
    label = (lambda i, step: f"[{i}/{len(steps)}] {step.label}")  # noqa: E731
    try:
        while pending or running:
            for run in list(running):  # report what ended before starting what it unblocks
                rc = run.handle.poll()
                if rc is None:
                    continue
                running.remove(run)
                slots.give(run.place)
                ran += 1
                took = time.time() - run.start
                if on_step:
                    on_step(ran)
                if rc == 0:
                    print(f"{label(run.index, run.step)}: {result_note(run.step)} in {took:.0f}s", flush=True)
                    continue
                failed.append(run.step.label)
                bad.add(run.step.save)
                log = os.path.join(run.step.save, "log.txt")
                print(f"{label(run.index, run.step)}: FAILED (exit {rc}) after {took:.0f}s; last lines of {log}:",
                      flush=True)
                for line in tail(log):
                    print(f"    {line}")
            k = 0
            while k < len(pending) and not (failed and not keep_going):
                i, step = pending[k]
                if step.link:
                    make_link(*step.link)
                if finished(step.kind, step.save):
                    skipped += 1
                    print(f"{label(i, step)}: done, skipped", flush=True)
                    pending.pop(k)
                    continue
                waiting = [f for kind, f in step.needs if not finished(kind, f)]
                if any(f in bad for f in waiting):
                    blocked.append(step.label)
                    bad.add(step.save)
                    print(f"{label(i, step)}: blocked ({', '.join(f for f in waiting if f in bad)} did not finish)",
                          flush=True)
                    pending.pop(k)
                    continue
                place = None if waiting else slots.take(step.whole_gpu)
                if place is None:  # its input is still to come, or no room for it now: try the next step
                    k += 1
                    continue
                env = dict(base, **({} if step.whole_gpu else limit),  # an ImageNet run keeps torch's threads
                           **({"CUDA_VISIBLE_DEVICES": str(place[0])} if place[0] is not None else {}))
                run = Run(step, i, place, launcher.start(step, env), time.time())
                running.append(run)
                where = f" on GPU {place[0]}" if place[0] is not None else ""
                print(f"{label(i, step)}{' (resuming)' if run.handle.resumed else ''}{where} ...", flush=True)
                pending.pop(k)
            launcher.flush()
            if not running:
                if failed and not keep_going:
                    break
                for i, step in pending:  # each waits for a step that will not run
                    blocked.append(step.label)
                    print(f"{label(i, step)}: blocked", flush=True)
                break
            time.sleep(launcher.poll_s)
    except KeyboardInterrupt:
        launcher.stop([run.handle for run in running])
        raise
    return ran, skipped, failed, blocked


def result_note(step):
    name = "prune.json" if step.kind == "prune" else "summary.json"
    try:
        with open(os.path.join(step.save, name)) as f:
            r = json.load(f)
    except (OSError, ValueError):
        return "done"
    if step.kind == "prune":
        acc = r.get("acc_after")
        return (f"FLOPs x{r.get('flops_ratio', float('nan')):.3f} smaller"
                + (f", accuracy before retraining {100 * acc:.2f}%" if acc is not None else ""))
    return f"{r.get('epochs')} epochs, best {100 * r.get('best_prec1', 0):.2f}%"


def shown(args):
    """A command line as the user would type it from the current folder."""
    here = os.getcwd() + os.sep
    return shlex.join(os.path.relpath(a) if os.path.isabs(a) and a.startswith(here) else a for a in args)


def tail(path, n=5):
    try:
        with open(path) as f:
            return [line.rstrip() for line in f.readlines()[-n:]]
    except OSError:
        return []


def from_root(path):
    """``path`` as the stages (run in the repository root) see it: relative to the root when it lies inside it, so
    that the run records of a study in the repository name no path of the machine; absolute otherwise."""
    rel = os.path.relpath(os.path.abspath(path), ROOT)
    return os.path.abspath(path) if rel == ".." or rel.startswith(".." + os.sep) else rel


def write_table(out, header, metric, plot=True, footer=None, results=None):
    """The collector's table (and plots) of the runs under ``out`` into ``results`` (default OUT/results),
    results.md headed by ``header`` (a study's scale and wall time), then the scratch vs fine-tuned comparison and
    ``footer(rows)`` if given; printed too. The rows, or None before any pruned model exists."""
    from utils.results import collect as collect_rows, comparison, markdown, write_outputs
    rows = collect_rows([out], metric)
    if not rows:
        print("no pruned model finished yet: no table")
        return None
    after = footer(rows) if footer else ""
    table = markdown(rows, metric) + "\n" + comparison(rows) + (f"\n{after}" if after else "")
    written = write_outputs(rows, results or os.path.join(out, "results"), metric, plot,
                            document=header + "\n" + table)
    print("\n" + table)
    for path in written:
        print(f"wrote {path}")
    return rows


RECORDS = ("summary.json", "prune.json", "log.txt")  # what a published study keeps of each run (no checkpoints)


def records_of(folder):
    """The records under ``folder`` (relative path -> bytes) and its shared trunks' links (relative path ->
    ('link', target))."""
    found = {}
    for here, dirs, files in os.walk(folder):
        rel = os.path.relpath(here, folder)
        for d in dirs:
            if os.path.islink(os.path.join(here, d)):  # os.walk does not follow it
                found[os.path.normpath(os.path.join(rel, d))] = ("link", os.readlink(os.path.join(here, d)))
        for name in files:
            if name in RECORDS and rel != ".":
                with open(os.path.join(here, name), "rb") as f:
                    found[os.path.normpath(os.path.join(rel, name))] = f.read()
    return found


def copy_records(records, dest):
    """Write ``records`` (records_of's) as the new folder ``dest``, whole or not at all: into a temporary folder
    beside it, renamed into place once complete."""
    import shutil
    import tempfile
    parent = os.path.dirname(os.path.abspath(dest))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix="." + os.path.basename(dest) + ".")
    try:
        for rel, value in sorted(records.items()):
            path = os.path.join(tmp, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if isinstance(value, tuple):
                os.symlink(value[1], path, target_is_directory=True)
            else:
                with open(path, "wb") as f:
                    f.write(value)
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def duration(seconds):
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.2f} h"


# ============================================================================================ the tables
@dataclass(frozen=True)
class Row:
    """One row of a paper table: a model pruned one way, with the recipe of its method folder's run script."""
    dataset: str
    model: str                 # the unpruned model, as the paper names it ("ResNet-56")
    pruned: str                # the pruned model / ratio ("ResNet-56-A", "70%"): what --rows selects
    key: str                   # the method folder
    arch: str
    depth: int
    prune: Optional[dict] = None       # the rule's options; None: no prune step (a published network only)
    options: dict = field(default_factory=dict)        # architecture options of every network of the row
    trunk: str = "baseline"            # the trained model prune.py reads: baseline, or sparse (with trunk_hparams)
    trunk_hparams: dict = field(default_factory=dict)  # the method's training options of the trunk
    baseline_hparams: Optional[dict] = None            # a separate unpruned baseline (slimming), its options
    train: dict = field(default_factory=dict)          # TrainArgs of the trunk and the scratch runs (VGG lr 0.01)
    published: Optional[str] = None    # scratch trains this published network (scratch.py --model NAME)
    flops: Any = "rule"                # scratch-B's FLOPs ratio: 'rule' (the rule on a fresh network: fixed widths),
    #                                    (preset, base preset) of models.imagenet, or None (known after pruning)
    budget: str = "linear"             # scratch-B epochs: linear int(E r); cap (r >= 2: 2E); sss (int(E r))
    pretrained: Optional[str] = None   # torchvision's file the reference prunes (used with --pretrained-dir)
    finetune: Optional[int] = None     # fine-tuning epochs where the folder's default is not the recipe

    @property
    def name(self):
        """The run's name in labels: a ratio goes with its model ("VGG-19 70%")."""
        return f"{self.model} {self.pruned}" if self.pruned.endswith("%") else self.pruned


@dataclass(frozen=True)
class LotteryRow:
    """One lottery-ticket setting: dense -> rounds of (prune, winning ticket, random init), iterate.py's protocol."""
    dataset: str
    model: str
    method: str                # weight-level / l1-norm (lottery_ticket/iterate.py's --method)
    arch: str
    depth: int
    variants: tuple = (None,)  # l1-norm: A / B, sharing one dense run
    rounds: int = 1
    percent: float = 0.2
    lrs: tuple = (0.1, 0.01)

    @property
    def key(self):
        return f"lottery_ticket/{'weight-level' if self.method == 'weight-level' else 'l1-norm-pruning'}"


C10, C100, IN = "cifar10", "cifar100", "imagenet"
L1C, L1I = "cifar/l1-norm-pruning", "imagenet/l1-norm-pruning"
SLIM, WL, WLI = "cifar/network-slimming", "cifar/weight-level", "imagenet/weight-level"
VGG_LR = {"lr": 0.01}  # ImageNet VGG-16 without BN trains at lr 0.01 (the reference's README; paper_tables.md)


def _l1(name, arch, depth, variant):
    return Row(C10, name, f"{name}-{variant}", L1C, arch, depth, {"variant": variant})


def _slimming(dataset, name, arch, depth, s, percents):
    return [Row(dataset, name, f"{int(p * 100)}%", SLIM, arch, depth, {"percent": p}, trunk="sparse",
                trunk_hparams={"sparsity_regularization": True, "s": s}, baseline_hparams={}, flops=None)
            for p in percents]


def _weight_level(dataset, name, arch, depth, percents, key=WL, **kw):
    return [Row(dataset, name, f"{int(p * 100)}%", key, arch, depth, {"percent": p}, flops=None, **kw)
            for p in percents]


def _published(dataset, key, model, arch, depth, pruned, preset, base, prune=None, **kw):
    """A row of Tables 2, 3, 5: the reference trains the published network from scratch (--model NAME); where the
    rule reproduces it from our baseline (a fixed fraction or width file), the row also prunes and fine-tunes (10
    epochs at lr 0.001, as the regression folder's README; the paper's fine-tuned column is the original authors'
    models), and its scratch runs start from that pruned model."""
    return Row(dataset, model, pruned, key, arch, depth, prune, published=None if prune else preset[1],
               flops=(preset[0], base), **({"finetune": 10} if prune else {}), **kw)


THINET, REG, SSS = "imagenet/thinet", "imagenet/regression-pruning", "imagenet/sparse-structure-selection"
REG_DIR = os.path.join(ROOT, "imagenet", "regression-pruning")

TABLES = {
    "1": [_l1("VGG-16", "vgg", 16, "A"), _l1("ResNet-56", "resnet", 56, "A"), _l1("ResNet-56", "resnet", 56, "B"),
          _l1("ResNet-110", "resnet", 110, "A"), _l1("ResNet-110", "resnet", 110, "B"),
          *(Row(IN, "ResNet-34", f"ResNet-34-{v}", L1I, "imagenet_resnet", 34, {"variant": v}, budget="cap",
                pretrained="resnet34-333f7ec4.pth") for v in "AB")],
    "2": [_published(IN, THINET, "VGG-16", "imagenet_vgg", 16, "VGG-Conv", ("thinet-conv", "thinet-conv"),
                     "vgg_official", {"percent": 0.5}, train=VGG_LR, budget="cap"),
          *(_published(IN, THINET, "VGG-16", "imagenet_vgg", 16, f"VGG-{n.upper()}", (f"thinet-{n}", f"thinet-{n}"),
                       "vgg_official", train=VGG_LR, budget="cap") for n in ("gap", "tiny")),
          *(_published(IN, THINET, "ResNet-50", "imagenet_resnet", 50, f"ResNet50-{k}%", (f"thinet-{k}", f"thinet-{k}"),
                       "resnet50_official", {"percent": round(1 - k / 100, 2)}, budget="cap") for k in (30, 50, 70))],
    "3": [_published(IN, REG, "VGG-16", "imagenet_vgg", 16, "VGG-16-5x", ("vgg-5x", "vgg-5x"), "vgg_official",
                     {"widths": os.path.join(REG_DIR, "vgg16_5x.widths")}, train=VGG_LR, budget="cap"),
          _published(IN, REG, "ResNet-50", "imagenet_resnet", 50, "ResNet-50-2x", ("resnet50-2x", "resnet-2x"),
                     "resnet50_official", {"widths": os.path.join(REG_DIR, "resnet50_2x.widths")}, budget="cap")],
    "4": [*_slimming(C10, "VGG-19", "vgg_slim", 19, 1e-4, (0.7,)),
          *_slimming(C10, "PreResNet-164", "preresnet", 164, 1e-5, (0.4, 0.6)),
          *_slimming(C10, "DenseNet-40", "densenet", 40, 1e-5, (0.4, 0.6)),
          *_slimming(C100, "VGG-19", "vgg_slim", 19, 1e-4, (0.5,)),
          *_slimming(C100, "PreResNet-164", "preresnet", 164, 1e-5, (0.4, 0.6)),
          *_slimming(C100, "DenseNet-40", "densenet", 40, 1e-5, (0.4, 0.6)),
          Row(IN, "VGG-11", "50%", "imagenet/network-slimming", "imagenet_vgg_slim", 11, {"percent": 0.5},
              trunk="sparse", trunk_hparams={"sparsity_regularization": True, "s": 1e-5},
              baseline_hparams={"sparsity_regularization": False}, flops=None, budget="linear")],
    "5": [_published(IN, SSS, "ResNet-50", "imagenet_preresnet", 50, f"ResNet-{d}", (f"sss-resnet{d}", f"resnet-{d}"),
                     "sss-resnet50", budget="sss", options={"block_lambda": False}) for d in (41, 32, 26)],
    "6": [*_weight_level(C10, "VGG-19", "vgg19_bn", 19, (0.3, 0.8)),
          *_weight_level(C10, "PreResNet-110", "preresnet_wl", 110, (0.3, 0.8)),
          *_weight_level(C10, "DenseNet-BC-100", "densenet_bc", 100, (0.3, 0.8)),
          *_weight_level(C100, "VGG-19", "vgg19_bn", 19, (0.3, 0.5)),
          *_weight_level(C100, "PreResNet-110", "preresnet_wl", 110, (0.3, 0.5)),
          *_weight_level(C100, "DenseNet-BC-100", "densenet_bc", 100, (0.3, 0.5)),
          *_weight_level(IN, "VGG-16-BN", "imagenet_vgg", 16, (0.3, 0.6), key=WLI, options={"batch_norm": True},
                         pretrained="vgg16_bn-6c64b313.pth"),
          *_weight_level(IN, "ResNet-50", "imagenet_resnet", 50, (0.3, 0.6), key=WLI,
                         pretrained="resnet50-0676ba61.pth")],
    "lottery-weight": [LotteryRow(C10, "VGG-16", "weight-level", "vgg16_bn", 16, rounds=5),
                       LotteryRow(C10, "ResNet-50", "weight-level", "resnet_wl", 50, rounds=5)],
    "lottery-l1": [LotteryRow(C10, "VGG-16", "l1-norm", "vgg", 16, ("A",)),
                   LotteryRow(C10, "ResNet-56", "l1-norm", "resnet", 56, ("A", "B")),
                   LotteryRow(C10, "ResNet-110", "l1-norm", "resnet", 110, ("A", "B"))],
}
TITLES = {"1": "Table 1, L1-norm filter pruning", "2": "Table 2, ThiNet", "3": "Table 3, regression pruning",
          "4": "Table 4, network slimming", "5": "Table 5, Sparse Structure Selection",
          "6": "Table 6, weight-level pruning", "lottery-weight": "lottery ticket vs random init, weight level",
          "lottery-l1": "lottery ticket vs random init, L1-norm filters"}
STAGES = ("baseline", "prune", "finetune", "scratch-E", "scratch-B", "ticket", "random")
CIFAR_FINETUNE = 40  # of the 160 epochs: experiment_lib.sh's branches
TRAIN_SIZES = {C10: 50000, C100: 50000, IN: 1281167, "fashionmnist": 60000}


def slug(name):
    return name.lower().replace("%", "pct").replace(" ", "-")


# seconds per epoch, one run alone on one GPU, the whole training set; ASSUMED, see EPOCH_TIMES["source"]
EPOCH_TIMES = {
    "gpu": "H100 (assumed)",
    "source": "assumed, not measured: rough figures for one run alone with --amp (bf16), eager PyTorch and this "
              "repo's GPU-resident CIFAR loader, from published anchors (DenseNet-40 about 60 s/epoch on a 1080 Ti; "
              "ResNet-50 about 2,500 img/s on an A100) and per-model compute / memory floors; no GPU was available "
              "to measure them. Give measured ones with --epoch-times FILE.json",
    "seconds_per_epoch": {
        "vgg-16/cifar": 2.5, "vgg16_bn-16/cifar": 2.5, "vgg_slim-19/cifar": 3.0, "vgg19_bn-19/cifar": 3.0,
        "resnet-56/cifar": 4.0, "resnet-110/cifar": 7.5, "resnet_wl-50/cifar": 5.0, "preresnet-164/cifar": 12.5,
        "preresnet_wl-110/cifar": 9.0, "densenet-40/cifar": 10.0, "densenet_bc-100/cifar": 12.0,
        "imagenet_resnet-34/imagenet": 200.0, "imagenet_resnet-50/imagenet": 260.0,
        "imagenet_vgg-16/imagenet": 320.0, "imagenet_vgg_slim-11/imagenet": 200.0,
        "imagenet_preresnet-50/imagenet": 260.0},
}


# ============================================================================================ the plan
@dataclass
class SweepArgs:
    table: Optional[str] = hp(None, "the paper table to run", choices=sorted(TABLES))
    out: Optional[str] = hp(None, "output folder; none: sweeps/table<T> (with --dataset: sweeps/table<T>-<D>)")
    seeds: list[int] = hp([], "seeds; none: 1 2 3 4 5 for CIFAR rows, 1 for ImageNet rows, as the paper")
    rows: list[str] = hp([], "only these rows: pruned model or ratio names (ResNet-56-A, 70%), or model names "
                             "(ResNet-56, VGG-19), case-insensitive; none: all")
    datasets: list[str] = hp([], "only the rows on these datasets (cifar10, cifar100, imagenet); none: all")
    stages: list[str] = hp([], f"only these stages ({', '.join(STAGES)}); none: all. A stage whose input is not "
                               "there is reported blocked", choices=list(STAGES))
    data: Optional[str] = hp(None, "CIFAR dataset folder; none: the scripts' lookup (./data)")
    imagenet: Optional[str] = hp(None, "ImageNet folder (train/ and val/), needed to run ImageNet rows")
    pretrained_dir: Optional[str] = hp(None, "folder of torchvision's weights (resnet34-333f7ec4.pth, ...): the "
                                             "rows the reference prunes from them do, instead of a baseline trained "
                                             "here")
    dataset: Optional[str] = hp(None, "CPU-scale check: train the CIFAR-10 rows on this dataset instead (e.g. "
                                      "fashionmnist); the other rows are left out")
    epochs: int = hp(0, "CIFAR rows: E, the baseline's epochs (0 = the recipe's 160); fine-tuning gets E x 40/160")
    train_subset: int = hp(0, "train on the first N images only (0 = all)")
    test_subset: int = hp(0, "evaluate on the first N test images only (0 = all)")
    width: float = hp(1.0, "VGG width factor of the CIFAR rows (smaller networks for a CPU-scale check)")
    gpus: str = hp("", "GPUs of this machine to pack runs onto, e.g. 0,1,2,3; empty: --jobs workers on the CPU")
    runs_per_gpu: int = hp(1, "CIFAR runs sharing one GPU at once (an ImageNet run takes a GPU of its own)")
    jobs: int = hp(2, "without --gpus: runs at the same time on the CPU")
    threads: int = hp(1, "torch threads per CIFAR run (OMP_NUM_THREADS; 0 = torch's default)")
    device: Optional[str] = hp(None, "--device of every stage; none: cuda with --gpus or --executor slurm, else "
                                     "the scripts' auto")
    amp: bool = hp(False, "bf16 autocast in every training stage (CUDA)")
    channels_last: bool = hp(False, "channels_last in every training stage (CUDA)")
    tensorboard: bool = hp(True, "tensorboard logs per run")
    executor: str = hp("process", "process: worker processes here; local / slurm: submitit jobs (its "
                                  "LocalExecutor, or Slurm)", choices=["process", "local", "slurm"])
    partition: Optional[str] = hp(None, "slurm: partition")
    timeout_min: int = hp(4320, "slurm / local: a job's time limit in minutes (a job that hits it resumes when the "
                                "sweep runs again)")
    max_jobs: int = hp(64, "slurm: jobs submitted at once")
    nodes: int = hp(1, "slurm: nodes of an ImageNet job")
    gpus_per_node: int = hp(8, "slurm: GPUs (= torchrun ranks) per node of an ImageNet job")
    cpus_per_gpu: int = hp(8, "slurm: CPUs per ImageNet rank (data loader workers)")
    epoch_times: Optional[str] = hp(None, "JSON file {\"gpu\": NAME, \"seconds_per_epoch\": {\"resnet-56/cifar\": "
                                          "S, ...}} of measured epoch times for the estimates (\"merge\": true keeps "
                                          "the built-in ones it does not name); none: the built-in, assumed ones")
    metric: str = hp("best", "table accuracy: best over epochs (the paper's) or the last epoch's",
                     choices=["best", "final"])
    plot: bool = hp(True, "PNG plots (matplotlib)")
    keep_going: bool = hp(False, "after a failed run, go on with the runs that do not depend on it")
    verbose: bool = hp(False, "show every run's output (always in its log.txt)")
    dry_run: bool = hp(False, "print the plan (every run, its epochs, the estimated GPU-hours); run nothing")
    commands: bool = hp(False, "with --dry-run: also the command line of every run")


@dataclass
class Context:
    """What the plan needs beyond the table: the options, checked and completed."""
    args: SweepArgs
    gpus: list
    device: dict
    seeds_cifar: list
    seeds_imagenet: list


def _cifar(dataset):
    return dataset != IN


def selected_rows(args):
    rows = []
    wanted = {r.lower() for r in args.rows}
    for row in TABLES[args.table]:
        if args.datasets and row.dataset not in args.datasets:
            continue
        if args.dataset and row.dataset != C10:
            continue
        names = {row.model, getattr(row, "pruned", row.model), getattr(row, "name", row.model)}
        if wanted and not wanted & {n.lower() for n in names}:
            continue
        rows.append(replace(row, dataset=args.dataset) if args.dataset else row)
    return rows


def _options(arch, values):
    from models import model_entry
    from utils.cli import given
    cls = model_entry(arch).options
    values = {k: v for k, v in values.items() if cls is not None and k in cls.__dataclass_fields__}
    return given(cls, **values) if values else None


class Planner:
    """Builds the Steps of a table (the typed calls of every stage) and their epochs."""

    def __init__(self, ctx):
        self.ctx, self.args = ctx, ctx.args
        self.out = os.path.abspath(self.args.out)
        self.steps = []
        self.lottery = []          # (sweep folder, settings, rounds) of the lottery tables, for results.json
        self._ratios = {}

    # -------------------------------------------------------------- the arguments of one stage
    def data(self, method, stage, row):
        from utils.cli import args_for, stage_classes
        cls = stage_classes(method, stage)[1]
        a = self.args
        values = {"dataset": row.dataset}
        folder = a.imagenet if row.dataset == IN else a.data
        if folder:
            values["data"] = os.path.abspath(folder)
        values.update({k: v for k, v in (("train_subset", a.train_subset), ("test_subset", a.test_subset))
                       if v and k in cls.__dataclass_fields__})
        return args_for(cls, method, stage, **values)

    def train(self, method, stage, save, seed, **values):
        from utils import stages
        from utils.cli import args_for
        a = self.args
        flags = {"amp": a.amp, "channels_last": a.channels_last}
        return args_for(stages.TrainArgs, method, stage, seed=seed, save=save, progress=False, **self.ctx.device,
                        **{k: v for k, v in flags.items() if v}, **({} if a.tensorboard else {"tensorboard": False}),
                        **values)

    def epochs(self, row):
        """(E, fine-tuning epochs) of a row: CIFAR's 160 / 40 (or --epochs and its 40/160), ImageNet's recipes."""
        from utils.cli import args_for
        from utils import stages
        from utils.methods import get_method
        method = get_method(row.key)
        if _cifar(row.dataset):
            e = self.args.epochs or 160
            return e, max(1, round(e * CIFAR_FINETUNE / 160))
        return (args_for(stages.TrainArgs, method, "train").epochs,
                row.finetune or args_for(stages.TrainArgs, method, "finetune").epochs)

    def add(self, step, row, seed):
        if self.args.stages and (step.stage if step.stage != "sparse" else "baseline") not in self.args.stages:
            return
        family = {IN: "imagenet", C10: "cifar", C100: "cifar"}.get(row.dataset, row.dataset)
        step.timing = f"{row.arch}-{row.depth}/{family}"
        step.whole_gpu = row.dataset == IN
        if self.args.train_subset and row.dataset in TRAIN_SIZES:
            step.images = min(1.0, self.args.train_subset / TRAIN_SIZES[row.dataset])
        step.label = f"{row.dataset} {step.label} seed{seed} {step.stage}"
        self.steps.append(step)

    # -------------------------------------------------------------- the rows
    def plan(self):
        rows = selected_rows(self.args)
        seeds = sorted({s for r in rows for s in self.seeds(r)})
        for seed in seeds:  # seeds outermost: the first seed of every row finishes first
            trunks = {}
            for row in rows:
                if seed not in self.seeds(row):
                    continue
                if isinstance(row, LotteryRow):
                    self.plan_lottery(row, seed)
                else:
                    self.plan_row(row, seed, trunks)
        return self.steps

    def seeds(self, row):
        return self.ctx.seeds_cifar if _cifar(row.dataset) else self.ctx.seeds_imagenet

    def plan_row(self, row, seed, trunks):
        from utils import stages
        from utils.cli import Call, given
        from utils.methods import get_method
        method = get_method(row.key)
        e, ft_epochs = self.epochs(row)
        width = {"width": self.args.width} if self.args.width != 1.0 and _cifar(row.dataset) else {}
        options = _options(row.arch, {**row.options, **width})
        model_dir = os.path.join(self.out, row.dataset, slug(row.model), f"seed{seed}")
        run = os.path.join(model_dir, slug(row.pruned))
        model_args = given(stages.ModelArgs, arch=row.arch, depth=row.depth)
        use_pretrained = row.pretrained and self.args.pretrained_dir
        # the unpruned baseline (the paper's "unpruned" column), and the trunk prune.py reads when it differs
        trunk_runs = [("baseline", row.baseline_hparams if row.baseline_hparams is not None else
                       (row.trunk_hparams if row.trunk == "baseline" else {}))]
        if row.trunk != "baseline":
            trunk_runs.append((row.trunk, row.trunk_hparams))
        for name, hparams in trunk_runs:
            save = os.path.join(model_dir, name)
            if save in trunks or (use_pretrained and name == "baseline"):
                continue
            trunks[save] = True
            call = Call("train", row.key, (model_args, self.data(method, "train", row),
                                           self.train(method, "train", save, seed, epochs=e, **row.train)),
                        given(method.TrainHparams, **hparams), options)
            note = (f"the reference prunes torchvision's {row.pretrained} instead: give --pretrained-dir"
                    if row.pretrained and name == "baseline" else "")
            self.add(Step(row.model, "train", save, call, stage=name, epochs=e, note=note), row, seed)
        trunk = os.path.join(model_dir, row.trunk)
        ckpt = os.path.join(run, "pruned", "pruned.pth.tar")
        if row.prune is not None:
            source = (os.path.join(os.path.abspath(self.args.pretrained_dir), row.pretrained) if use_pretrained
                      else os.path.join(trunk, "checkpoint.pth.tar"))
            where = ({"arch": row.arch, "depth": row.depth} if use_pretrained else {})
            prune_args = given(stages.PruneArgs, model=source, save=os.path.join(run, "pruned"), **where,
                               **self.ctx.device)
            call = Call("prune", row.key, (prune_args, self.data(method, "prune", row)),
                        given(method.Hparams, **row.prune), options if use_pretrained else None)
            self.add(Step(row.name, "prune", os.path.join(run, "pruned"), call,
                          needs=[] if use_pretrained else [("train", trunk)], stage="prune", epochs=0), row, seed)
            save = os.path.join(run, "finetune")
            call = Call("finetune", row.key, (given(stages.FinetuneArgs, refine=ckpt),
                                              self.data(method, "finetune", row),
                                              self.train(method, "finetune", save, seed, epochs=ft_epochs)),
                        method.FinetuneHparams())
            self.add(Step(row.name, "train", save, call, needs=[("prune", os.path.dirname(ckpt))],
                          stage="finetune", epochs=ft_epochs), row, seed)
        wanted = not self.args.stages or "scratch-B" in self.args.stages  # the ratio costs a network or two
        ratio = self.flops_ratio(row, options) if wanted else None
        for budget in ("E", "B"):
            save = os.path.join(run, f"scratch-{budget}")
            scratch = given(stages.ScratchArgs, budget=budget, **({"scratch": ckpt} if row.prune is not None else {}))
            hparams = given(method.ScratchHparams, **({"model": row.published} if row.prune is None else {}))
            call = Call("scratch", row.key, (scratch, self.data(method, "scratch", row),
                                             self.train(method, "scratch", save, seed, epochs=e, **row.train)), hparams)
            epochs, note = (e, "") if budget == "E" else budget_epochs(row, e, ratio)
            self.add(Step(row.name, "train", save, call, needs=[("prune", os.path.dirname(ckpt))]
                          if row.prune is not None else [], stage=f"scratch-{budget}", epochs=epochs, note=note),
                     row, seed)

    def flops_ratio(self, row, options):
        """FLOPs(base) / FLOPs(pruned) where the pruned network is known before pruning (utils.flops.count_flops,
        the scratch stage's own convention), else None."""
        if row.flops is None:
            return None
        key = (id(row), options and dataclasses.astuple(options))
        if key not in self._ratios:
            from models import create_model, option_kwargs
            from models.imagenet import create_preset
            from utils.data import dataset_info
            from utils.flops import count_flops
            from utils.methods import choose
            from utils.surgery import prune_channels
            info = dataset_info(row.dataset)
            size = dict(num_classes=info.num_classes, in_channels=info.in_channels, image_size=info.image_size)
            if row.flops == "rule":  # the rule's widths do not depend on the weights: run it on a fresh network
                base = create_model(row.arch, row.depth, **size, **option_kwargs(row.arch, row.depth, options))
                pruned = prune_channels(base, choose(row.key, base, **row.prune))
            else:
                pruned, base = (create_preset(name, **size) for name in row.flops)
            self._ratios[key] = count_flops(base) / count_flops(pruned)
        return self._ratios[key]

    # -------------------------------------------------------------- the lottery tables
    def plan_lottery(self, row, seed):
        from utils import stages
        from utils.cli import Call, given
        from utils.lottery import RewindArgs, TicketArgs
        from utils.masks import iterative_ratios
        from utils.methods import get_method
        method = get_method(row.key)
        e = self.args.epochs or 160
        width = {"width": self.args.width} if self.args.width != 1.0 else {}
        options = _options(row.arch, width)
        step_row = Row(row.dataset, row.model, row.model, row.key, row.arch, row.depth)
        ratios = iterative_ratios(row.percent, row.rounds) if row.method == "weight-level" else [None]
        for lr in row.lrs:
            top = os.path.join(self.out, row.dataset, slug(row.model), f"lr{lr}", f"seed{seed}")
            dense = os.path.join(top, "round_0" if row.method == "weight-level" else "dense")
            train = (lambda stage, save: self.train(method, stage, save, seed, epochs=e, lr=lr))  # noqa: E731
            call = Call("train", row.key, (given(stages.ModelArgs, arch=row.arch, depth=row.depth),
                                           self.data(method, "train", row), train("train", dense)),
                        RewindArgs(0), options)
            self.add(Step(f"{row.model} lr{lr}", "train", dense, call, stage="baseline", epochs=e), step_row, seed)
            for variant in row.variants:
                sweep = top if variant is None else os.path.join(top, variant)
                name = row.model + (f"-{variant}" if variant else "")
                source = os.path.join(dense, "checkpoint.pth.tar")
                for k in range(1, row.rounds + 1):
                    rd = os.path.join(sweep, f"round_{k}")
                    pruned = os.path.join(rd, "pruned.pth.tar")
                    rule = ({"percent": ratios[k - 1], "layerwise": False} if variant is None
                            else {"variant": variant, "prune": "large", "seed": seed})
                    call = Call("prune", row.key, (given(stages.PruneArgs, model=source, save=rd, **self.ctx.device),
                                                   self.data(method, "prune", row)), given(method.Hparams, **rule))
                    needs = [("train", os.path.dirname(source))]
                    self.add(Step(f"{name} lr{lr} round{k}", "prune", rd, call, needs=needs, stage="prune", epochs=0),
                             step_row, seed)
                    for stage, save, args in (
                            ("ticket", os.path.join(rd, "ticket"),
                             given(TicketArgs, pruned=pruned, init=os.path.join(dense, "init.pth.tar"))),
                            ("random", os.path.join(rd, "scratch"),
                             given(stages.ScratchArgs, scratch=pruned, budget="E"))):
                        kind = "ticket" if stage == "ticket" else "scratch"
                        call = Call(kind, row.key, (args, self.data(method, kind, row), train(kind, save)),
                                    method.ScratchHparams() if kind == "scratch" else None)
                        self.add(Step(f"{name} lr{lr} round{k}", "train", save, call, needs=[("prune", rd)],
                                      stage=stage, epochs=e), step_row, seed)
                    source = os.path.join(rd, "ticket", "checkpoint.pth.tar")
                a = self.args
                settings = {"method": row.method, "arch": row.arch, "depth": row.depth, "width": a.width,
                            "dataset": row.dataset, "percent": row.percent, "layerwise": False,
                            "schedule": "iterative", "variant": variant or "A", "prune": "large", "rewind_epoch": 0,
                            "epochs": e, "lr": lr, "seed": seed, "train_subset": a.train_subset,
                            "test_subset": a.test_subset, "extra": [], "rounds": row.rounds}
                self.lottery.append((sweep, settings, row.rounds, dense))


def budget_epochs(row, e, ratio):
    """(scratch-B epochs, how) by the row's rule, or (text, how) where the FLOPs ratio is known after pruning."""
    from utils.recipes import budget_epochs as capped
    rule = {"linear": f"int({e} x FLOPs ratio)", "cap": f"int({e} x FLOPs ratio), {2 * e} if the ratio is >= 2",
            "sss": f"int({e} x FLOPs ratio), LR x0.1 every 30%"}[row.budget]
    if ratio is None:
        return "known after pruning", rule
    epochs = capped(e, ratio, cap=2.0)[0] if row.budget == "cap" else int(e * ratio)
    return epochs, f"{rule.replace('FLOPs ratio', f'{ratio:.4f}')}" + (
        f" ({row.flops[0]} vs {row.flops[1]})" if isinstance(row.flops, tuple) else "")


# ============================================================================================ estimates, output
def load_epoch_times(path):
    if path is None:
        return EPOCH_TIMES
    from utils.errors import UserError
    try:
        with open(path) as f:
            table = json.load(f)
        times = {str(k): float(v) for k, v in table["seconds_per_epoch"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UserError(f"--epoch-times {path}: not a JSON file with a 'seconds_per_epoch' object of numbers "
                        f"({exc})") from None
    return {"gpu": str(table.get("gpu", "the GPU of the file")), "source": f"measured, from {path}",
            "seconds_per_epoch": {**EPOCH_TIMES["seconds_per_epoch"], **times} if table.get("merge") else times}


def estimate_hours(step, times):
    """GPU-hours of a step at the table's epoch time (pruned networks at their unpruned network's time: an upper
    bound), or None where the table has no entry or the epochs are known only after pruning."""
    per = times["seconds_per_epoch"].get(step.timing)
    if per is None or not isinstance(step.epochs, int):
        return None
    return step.epochs * per * step.images / 3600


def print_plan(steps, ctx, times):
    args = ctx.args
    print(f"# {TITLES[args.table]}: {len(steps)} runs -> {args.out}; seeds {' '.join(map(str, ctx.seeds_cifar))} "
          f"(CIFAR), {' '.join(map(str, ctx.seeds_imagenet))} (ImageNet); the method folders' recipes"
          + (f", CIFAR E = {args.epochs}" if args.epochs else ""))
    total, unknown, missing = 0.0, 0, set()
    for i, step in enumerate(steps, 1):
        state = " (done)" if finished(step.kind, step.save) else ""
        hours = estimate_hours(step, times)
        if hours is None and step.stage != "prune":
            unknown += 1
            if step.timing not in times["seconds_per_epoch"]:
                missing.add(step.timing)
        total += hours or 0.0
        note = f"  [{step.note}]" if step.note else ""
        est = f"  ~{hours:.2f} GPU-h" if hours is not None and step.stage != "prune" else ""
        what = ("no training" if step.stage == "prune" else f"{step.epochs} epochs" if isinstance(step.epochs, int)
                else f"epochs {step.epochs}")
        print(f"[{i}/{len(steps)}] {step.label}: {what}{note}{est}{state}")
        if args.commands:
            print("    python " + shown(command(step)[1:]))
    print(f"# estimated GPU time: {total:.1f} GPU-hours on one {times['gpu']}, one run per GPU"
          + (f", not counting {unknown} run(s) whose epochs are known after pruning or whose model has no epoch "
             f"time{(' (' + ', '.join(sorted(missing)) + ')') if missing else ''}" if unknown else ""))
    print(f"# epoch times: {times['source']}. Pruned networks are costed at their unpruned network's epoch time "
          f"(an upper bound); packing several runs per GPU (--runs-per-gpu) shortens the wall time by a factor "
          f"that was not measured either.")


def write_lottery_results(sweeps):
    """results.json of every finished lottery sweep, in lottery_ticket/iterate.py's format (its collect.py reads
    them): one row per round from prune.json and the two runs' summary.json."""
    from utils.checkpoint import save_json

    def load(path):
        try:
            with open(path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None
    written = []
    for sweep, settings, rounds, dense in sweeps:
        d = load(os.path.join(dense, "summary.json"))
        if d is None:
            continue
        rows = [{"round": 0, "density": 1.0, "target_density": 1.0,
                 "ticket": {k: d.get(k) for k in ("final_prec1", "best_prec1")}}]
        for k in range(1, rounds + 1):
            rd = os.path.join(sweep, f"round_{k}")
            p, t, s = (load(os.path.join(rd, *f)) for f in (("prune.json",), ("ticket", "summary.json"),
                                                            ("scratch", "summary.json")))
            if p is None or t is None or s is None:
                break
            keep = ("final_prec1", "best_prec1", "epochs")
            target = (1 - settings["percent"]) ** k if settings["method"] == "weight-level" else p["density"]
            rows.append({"round": k, "density": p["density"], "target_density": target,
                         "masked_weights": p["masked_weights"],
                         "masked_weights_kept": p["masked_weights"] - p["masked_weights_pruned"],
                         "acc_before": p.get("acc_before"), "acc_after": p.get("acc_after"),
                         "ticket": {x: t.get(x) for x in keep}, "scratch": {x: s.get(x) for x in keep}})
        if len(rows) == rounds + 1:
            save_json({"settings": settings, "rounds": rows}, os.path.join(sweep, "results.json"))
            written.append(sweep)
    return written


def published_table(steps, metric):
    """Rows without a prune step (the published networks of Tables 2, 3, 5 trained from scratch) and their
    baselines: the collector keys on prune.json, so they are listed here, mean ± std over the seeds that finished
    ('-': no such run in the row)."""
    from utils.results import fmt_acc
    cells = {}
    for step in steps:
        name = " ".join(step.label.split(" ")[:-2])  # without "seed<k> <stage>"
        accs = cells.setdefault(name, {}).setdefault(step.stage, [])
        try:
            with open(os.path.join(step.save, "summary.json")) as f:
                accs.append(json.load(f)[f"{metric}_prec1"])
        except (OSError, ValueError, KeyError):
            pass
    stages = ("baseline", "scratch-E", "scratch-B")
    lines = ["| run | " + " | ".join(stages) + " |", "|---|---|---|---|"]
    lines += [f"| {n} | " + " | ".join(fmt_acc(c[s]) if s in c else "-" for s in stages) + " |"
              for n, c in sorted(cells.items())]
    return "\n".join(lines) + "\n"


def collect(args, steps, sweeps):
    """The collector's table and plots (utils/results.py), lottery.md (lottery_ticket/collect.py), and the runs of
    published networks, under OUT/results."""
    from utils.checkpoint import _atomic_write
    from utils.results import collect as collect_rows, markdown, write_outputs
    results = os.path.join(args.out, "results")
    rows = {} if args.table.startswith("lottery") else collect_rows([args.out], args.metric)
    if rows:
        print("\n" + markdown(rows, args.metric))
        for path in write_outputs(rows, results, args.metric, args.plot):
            print(f"wrote {path}")
    if write_lottery_results(sweeps):
        from utils.methods import import_path
        lottery = import_path(os.path.join(ROOT, "lottery_ticket", "collect.py"), "rnp_lottery_collect")
        lottery.main([args.out, "--out", os.path.join(results, "lottery.md"), "--metric", args.metric])
        print(f"wrote {os.path.join(results, 'lottery.md')}")
    runs = [s for s in steps if s.call.stage == "scratch" and getattr(s.call.hparams, "model", None)]
    models = {os.path.dirname(os.path.dirname(s.save)) for s in runs}  # OUT/dataset/model/seedK
    published = runs and published_table([s for s in steps if s.stage == "baseline" and
                                          os.path.dirname(s.save) in models] + runs, args.metric)
    if published:
        os.makedirs(results, exist_ok=True)
        path = os.path.join(results, "published.md")
        _atomic_write(path, lambda f: f.write(published.encode()))
        print("\n" + published + f"wrote {path}")
    if not rows and not published and not os.path.isfile(os.path.join(results, "lottery.md")):
        print("no pruned model finished yet: no table")


# ============================================================================================ CLI
def parse_args(argv):
    from utils.data import dataset_names
    from utils.errors import UserError
    from utils.hparams import build_parser, parse
    (args,) = parse(build_parser(__doc__, SweepArgs), (SweepArgs,), argv)
    if args.table is None:
        tables = "; ".join(f"{k}: {v}" for k, v in TITLES.items())
        raise UserError(f"--table: choose one of {', '.join(TABLES)} ({tables})")
    if args.dataset and args.dataset not in dataset_names():
        raise UserError(f"--dataset {args.dataset}: not a dataset (choose from {', '.join(dataset_names())})")
    for name in ("epochs", "train_subset", "test_subset", "threads"):
        if getattr(args, name) < 0:
            raise UserError(f"--{name.replace('_', '-')} {getattr(args, name)}: must not be negative")
    if min(args.jobs, args.runs_per_gpu, args.max_jobs, args.nodes, args.gpus_per_node) < 1 or not args.width > 0:
        raise UserError("--jobs, --runs-per-gpu, --max-jobs, --nodes, --gpus-per-node must be at least 1 and --width "
                        "positive")
    try:
        gpus = [str(int(g)) for g in args.gpus.split(",") if g.strip()]
    except ValueError:
        raise UserError(f"--gpus {args.gpus}: a comma-separated list of GPU numbers, e.g. 0,1,2,3") from None
    if len(set(gpus)) != len(gpus):
        raise UserError(f"--gpus {args.gpus}: a GPU is named twice")
    if gpus and args.executor == "slurm":
        raise UserError("--gpus: with --executor slurm, Slurm gives each job its GPU")
    if any(s < 0 for s in args.seeds) or len(set(args.seeds)) != len(args.seeds):
        raise UserError(f"--seeds {' '.join(map(str, args.seeds))}: distinct non-negative whole numbers")
    for folder in ("data", "imagenet", "pretrained_dir"):
        if getattr(args, folder) and not os.path.isdir(getattr(args, folder)):
            raise UserError(f"--{folder.replace('_', '-')} {getattr(args, folder)}: no such folder")
    name = f"table{args.table}" if args.table.isdigit() else args.table
    args.out = args.out or os.path.join("sweeps", name + (f"-{args.dataset}" if args.dataset else ""))
    rows = selected_rows(args)
    if not rows:
        names = sorted({n for r in TABLES[args.table] for n in (r.model, getattr(r, "pruned", r.model))})
        raise UserError(f"no row of table {args.table} matches --rows / --datasets / --dataset (rows: "
                        f"{', '.join(names)}; datasets: {', '.join(sorted({r.dataset for r in TABLES[args.table]}))})")
    on_gpu = bool(gpus) or args.executor == "slurm"
    device = {"device": args.device or "cuda"} if (args.device or on_gpu) else {}
    return Context(args, gpus, device, args.seeds or [1, 2, 3, 4, 5], args.seeds or [1])


def check_scale(args):
    """OUT/sweep.json keeps the scale of the runs in OUT: skipping finished runs of another scale would mix them."""
    from utils.checkpoint import check_writable, save_json
    from utils.errors import UserError
    path = os.path.join(args.out, "sweep.json")
    scale = {k: getattr(args, k) for k in ("dataset", "epochs", "train_subset", "test_subset", "width")}
    if os.path.isfile(path):
        with open(path) as f:
            old = json.load(f).get("scale", {})
        diff = [f"--{k.replace('_', '-')} {old.get(k)} there, {v} here" for k, v in scale.items() if old.get(k) != v]
        if diff:
            raise UserError(f"--out {args.out} holds runs at another scale ({'; '.join(diff)}): choose another --out")
        return
    check_writable(args.out, "--out")
    save_json({"scale": scale, "created": time.strftime("%Y-%m-%d %H:%M:%S")}, path)


def main(argv=None):
    from utils.errors import UserError
    argv = sys.argv[1:] if argv is None else list(argv)
    ctx = parse_args(argv)
    args = ctx.args
    planner = Planner(ctx)
    steps = planner.plan()
    if args.dry_run:
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `--dry-run | head` ends quietly
        print_plan(steps, ctx, load_epoch_times(args.epoch_times))
        return 0
    if any(s.whole_gpu for s in steps) and not args.imagenet:
        raise UserError("the plan has ImageNet rows: give --imagenet DIR, or --datasets cifar10 cifar100")
    for row in selected_rows(args):
        path = os.path.join(args.pretrained_dir or "", getattr(row, "pretrained", None) or "")
        if args.pretrained_dir and row.pretrained and not os.path.isfile(path):
            raise UserError(f"--pretrained-dir {args.pretrained_dir}: no {row.pretrained} (torchvision's {row.model})")
    if args.plot:
        import importlib.util
        if importlib.util.find_spec("matplotlib") is None:
            raise UserError("--plot needs matplotlib (pip install matplotlib), or pass --no-plot") from None
    check_scale(args)
    launcher, slots = None, None
    if args.executor != "process":
        # submitit pickles run_job by reference: take it from the importable module, not from __main__
        import importlib
        sweep = importlib.import_module("utils.sweep")
        launcher = sweep.SubmititLauncher(args.executor, os.path.join(args.out, "submitit"), args.runs_per_gpu,
                                          args.timeout_min, args.partition, args.nodes, args.gpus_per_node,
                                          args.cpus_per_gpu)
        if args.executor == "slurm":  # places: --max-jobs jobs of up to --runs-per-gpu runs
            slots = Slots([None], args.max_jobs * args.runs_per_gpu, whole=args.runs_per_gpu)
    start = time.time()
    try:
        ran, skipped, failed, blocked = execute(steps, args.jobs, args.threads, args.verbose, args.keep_going,
                                                gpus=ctx.gpus, runs_per_gpu=args.runs_per_gpu, launcher=launcher,
                                                slots=slots)
    except KeyboardInterrupt:
        print(f"\nsweep: interrupted after {duration(time.time() - start)}; run the same command again to continue",
              file=sys.stderr)
        sys.exit(130)
    wall = time.time() - start
    collect(args, steps, planner.lottery)
    print(f"sweep: {ran} run(s) done, {skipped} skipped (done before), {len(failed)} failed, {len(blocked)} blocked; "
          f"wall time {duration(wall)}")
    if failed or blocked:
        raise UserError(f"{len(failed)} run(s) failed ({'; '.join(failed[:5])}), {len(steps) - ran - skipped} not "
                        f"run; see their log.txt, fix, and run the same command again")
    return 0


if __name__ == "__main__":
    from utils.errors import run_main
    run_main(main)
