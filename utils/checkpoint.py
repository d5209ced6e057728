"""Checkpoints: the architecture spec next to a plain state_dict, written atomically, loaded with
``torch.load(..., weights_only=True)``.

Layout: {arch, depth, dataset, cfg, model (the full spec), state_dict, epoch, best_prec1, optimizer,
scheduler, rng, ...}. Files written by the reference repo ({epoch, state_dict, best_prec1, optimizer[,
cfg]}, with or without BN's num_batches_tracked, with or without a DataParallel ``module.`` prefix) load
too, given the architecture on the command line.
"""
import errno
import fcntl
import hashlib
import json
import os
import re
import tempfile
from contextlib import contextmanager

import torch

from models import ModelSpec, build_from_spec, create_model, resolve_arch
from utils.errors import UserError

TEMP_SUFFIX = ".tmp"                # <name>.<random>.tmp: an atomic write in progress
WRITE_TEST_PREFIX = ".write-test."  # check_writable's probe
LOCK_NAME = ".lock"                 # run_lock's file, present only while a process writes the folder
CHECKSUM_KEY = "checksum"           # sha256 of everything else in a checkpoint (see state_checksum)
_STALE = re.compile(r"^.+\.[a-z0-9_]{8}" + re.escape(TEMP_SUFFIX) + "$")  # mkstemp's 8 random characters
_UMASK = os.umask(0)
os.umask(_UMASK)
LOW_SPACE = 4 << 20  # bytes free below which a failed write is reported as a full disk


def _atomic_write(path, write):
    """Write through a temporary file in the same folder, then rename: readers see the old or the new file,
    never a part. A failure (a full disk, an unwritable folder) is one UserError naming the file."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=os.path.basename(path) + ".", suffix=TEMP_SUFFIX)
    except OSError as exc:
        raise UserError(f"{path}: cannot write ({exc.strerror or exc})") from None
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are as readable as any other file
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        reason = _write_failure(exc, directory)  # before the partial file goes: it may be what fills the disk
        if os.path.exists(tmp):
            os.unlink(tmp)
        if reason is None:
            raise
        raise UserError(f"{path}: cannot write ({reason})") from None


def _write_failure(exc, directory):
    """Why a write failed, in one line, or None for what is not a write failure (an interrupt, a bug)."""
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    if not isinstance(exc, RuntimeError):
        return None
    try:
        stat = os.statvfs(directory)
        full = stat.f_bavail * stat.f_frsize < LOW_SPACE
    except OSError:
        full = False
    if full:  # torch.save reports a short write as an "unexpected pos" enforce failure
        return os.strerror(errno.ENOSPC)
    if "PytorchStreamWriter" in str(exc) or "inline_container" in str(exc):
        return str(exc).strip().splitlines()[0][:200]
    return None


def _feed(h, obj):
    if torch.is_tensor(obj):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(obj, dict):
        h.update(f"D{len(obj)}".encode())
        for k in sorted(obj, key=str):
            h.update(f"K{k!r}".encode())
            _feed(h, obj[k])
    elif isinstance(obj, (list, tuple)):
        h.update(f"L{len(obj)}".encode())
        for v in obj:
            _feed(h, v)
    else:
        h.update(f"V{obj!r}".encode())


def state_checksum(ckpt):
    """sha256 over every tensor's bytes (with dtype and shape) and every other value of a checkpoint dict, its
    own checksum entry left out. torch.load does not check the zip records' CRCs, so this is what notices bytes
    damaged after the write."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in ckpt.items() if k != CHECKSUM_KEY})
    return h.hexdigest()


def save_checkpoint(obj, path):
    obj = {**obj, CHECKSUM_KEY: state_checksum(obj)}
    _atomic_write(path, lambda f: torch.save(obj, f))


def save_json(obj, path):
    _atomic_write(path, lambda f: f.write((json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()))


def _file_kind_error(path):
    """Why ``path`` is not a PyTorch checkpoint at all (a text file, another format), or None."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError as exc:
        return exc.strerror or str(exc)
    if not head:
        return "an empty file"
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":  # torch's zip format, or a legacy pickle
        return None
    try:
        head.decode("utf-8")
        return "a text file, not a PyTorch checkpoint"
    except UnicodeDecodeError:
        return "not a PyTorch checkpoint (neither a zip archive nor a pickle)"


def load_checkpoint(path, flag="--model"):
    if not path:
        raise UserError(f"{flag} is required")
    if not os.path.isfile(path):
        raise UserError(f"{flag} {path}: no such file")
    kind = _file_kind_error(path)
    if kind is not None:
        raise UserError(f"{flag} {path}: {kind}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, not a torch file, or holding pickled objects
        raise UserError(f"{flag} {path}: not a readable checkpoint ({_load_error(exc)})") from None
    if isinstance(ckpt, dict) and "state_dict" not in ckpt and all(torch.is_tensor(v) for v in ckpt.values()):
        ckpt = {"state_dict": ckpt}  # a bare state_dict
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise UserError(f"{flag} {path}: no state_dict in this file")
    if CHECKSUM_KEY in ckpt and state_checksum(ckpt) != ckpt[CHECKSUM_KEY]:
        raise UserError(f"{flag} {path}: corrupt checkpoint (its contents do not match the checksum stored when "
                        f"it was written: the file was damaged since)")
    ckpt.pop(CHECKSUM_KEY, None)
    # DataParallel prefixes: the whole model (module.) or, for the reference's ImageNet VGGs, only the features
    ckpt["state_dict"] = {(k[7:] if k.startswith("module.") else k).replace("features.module.", "features.", 1): v
                          for k, v in ckpt["state_dict"].items()}
    return ckpt


def _load_error(exc):
    """The informative part of torch.load's (long, multi-line) complaint."""
    text = str(exc).strip()
    unpickler = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", text)
    if unpickler:  # torch's advice to pass weights_only=False is not ours to give
        detail = "not a PyTorch checkpoint, or one holding Python objects: " + unpickler.group(1)
    else:
        detail = text.splitlines()[0] if text else type(exc).__name__
    return detail.split(". ")[0].rstrip(".")[:200]


def checkpoint_spec(ckpt):
    return ModelSpec.from_dict(ckpt["model"]) if "model" in ckpt else None


def model_from_checkpoint(ckpt, path, flag="--model", arch=None, depth=None, dataset_info=None,
                          load_weights=True, **options):
    """Build the checkpoint's network (from its spec, or for a reference file from arch/depth/cfg) and
    load its weights. A mismatch with an explicit --arch/--depth is an error naming the file."""
    spec = checkpoint_spec(ckpt)
    if spec is not None:
        if arch is not None and resolve_arch(arch) != spec.arch or depth is not None and int(depth) != spec.depth:
            asked = arch if depth is None else f"{arch or spec.arch}-{depth}"  # only what was asked for
            raise UserError(f"{flag} {path}: checkpoint holds {spec.arch}-{spec.depth}, not {asked} (--arch/--depth)")
        if dataset_info is not None:
            known = getattr(dataset_info, "classes_known", True)  # an ImageFolder tree not read: its own count
            if spec.in_channels != dataset_info.in_channels or (known and spec.num_classes != dataset_info.num_classes):
                if ckpt.get("dataset") == dataset_info.name:
                    raise UserError(f"{flag} {path}: checkpoint has {spec.num_classes} classes, the {dataset_info.name} "
                                    f"data given has {dataset_info.num_classes} (--data)")
                raise UserError(f"{flag} {path}: checkpoint was trained on {ckpt.get('dataset')}, "
                                f"not {dataset_info.name} (--dataset)")
        model = build_from_spec(spec)
    else:
        if arch is None or depth is None:
            raise UserError(f"{flag} {path}: a checkpoint without an architecture spec needs --arch and --depth")
        info = dataset_info
        build = dict(num_classes=info.num_classes, in_channels=info.in_channels, image_size=info.image_size,
                     cfg=ckpt.get("cfg"), **options)
        model = create_model(arch, depth, **build)
        selected = _selected_in_state(model, ckpt["state_dict"])
        if selected is not None and "selected" not in options:
            # a reference pruned.pth.tar carries its channel selections only in the state_dict; they are part
            # of the architecture (a scratch run must keep them), so they go into the spec
            try:
                model = create_model(arch, depth, selected=selected, **build)
            except UserError as exc:
                raise UserError(f"{flag} {path}: selection indexes do not fit the cfg ({exc})") from None
    if load_weights:
        load_state(model, ckpt["state_dict"], path, flag)
    return model


def _selected_in_state(model, state):
    """Per channel-selection layer (module order) the channels ``state`` selects, when that differs from
    what ``model`` was built with; None otherwise (no selection layers, indexes missing, or the same)."""
    from models.layers import ChannelSelection
    names = [n for n, m in model.named_modules() if isinstance(m, ChannelSelection)]
    keys = [f"{n}.indexes" for n in names]
    if not names or not all(k in state and torch.is_tensor(state[k]) for k in keys):
        return None
    selected = [torch.nonzero(state[k].flatten()).flatten().tolist() for k in keys]
    if selected == [model.get_submodule(n).selected() for n in names]:
        return None
    return selected


def load_state(model, state, path, flag):
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        detail = lines[1] if len(lines) > 1 else lines[0]
        raise UserError(f"{flag} {path}: weights do not fit {model.spec.arch}-{model.spec.depth} "
                        f"with cfg {model.spec.cfg if len(str(model.spec.cfg)) < 80 else '...'} ({detail[:200]})") from None


def spec_fields(model, dataset):
    """The architecture part of every checkpoint this project writes."""
    spec = model.spec
    return {"arch": spec.arch, "depth": spec.depth, "dataset": dataset, "cfg": list(spec.cfg),
            "model": spec.to_dict()}


def remove_stale_temporaries(directory):
    """Delete what a process killed mid-write left behind: ``<name>.<random>.tmp`` files of
    ``_atomic_write`` and ``.write-test.*`` probes. The finished files are never touched (os.replace is
    atomic, so they are either the old or the new version). Call only while no other writer uses the folder."""
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        if _STALE.match(name) or name.startswith(WRITE_TEST_PREFIX):
            path = os.path.join(directory, name)
            try:
                if os.path.isfile(path) and not os.path.islink(path):
                    os.unlink(path)
                    removed.append(name)
            except OSError:
                pass
    return removed


@contextmanager
def run_lock(directory, flag="--save"):
    """Hold an exclusive lock on ``directory`` (created if needed) while this process writes it: a second process
    pointed at the same folder stops with a one-line error instead of mixing its files with ours. The lock is an
    flock on DIR/.lock, released (and the file removed) on exit; the kernel drops it if the process dies."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, LOCK_NAME)
    while True:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o666 & ~_UMASK)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise UserError(f"{flag} {directory}: another process (pid {holder}) is writing to this folder; wait "
                            f"for it to finish or choose another {flag}") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:  # not a file that its previous holder unlinked while we opened it
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass
        os.close(fd)


def check_writable(directory, flag="--save"):
    """Create ``directory`` if needed and prove it writable, before any work is done."""
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=WRITE_TEST_PREFIX)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise UserError(f"{flag} {directory}: not writable ({exc.strerror or exc})") from None


def relative_to(path, folder):
    """``path`` as seen from ``folder`` (both resolved, symlinks included): what run records store, so that a run
    tree carries no absolute path of the machine it was made on and can be moved whole. A published network's
    name ("published:NAME") stays as it is."""
    if path is None or str(path).startswith("published:"):
        return path
    return os.path.relpath(os.path.realpath(path), os.path.realpath(folder))
