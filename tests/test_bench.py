"""bench/loader.py runs end to end at tiny sizes and prints its figures in the documented format
(no timing thresholds here: those depend on the machine)."""
import re

import torch

from conftest import ROOT, run

BENCH = ROOT / "bench" / "loader.py"
FIGURE = r"([0-9][0-9,]*(?:\.[0-9]+)?) img/s"


def _figures(out):
    lines = out.strip().splitlines()
    ref = [line for line in lines if line.startswith("reference")]
    cpu = [line for line in lines if line.startswith("device loader (cpu")]
    assert len(ref) == 1 and len(cpu) == 1, out
    values = [float(re.search(FIGURE, line[0]).group(1).replace(",", "")) for line in (ref, cpu)]
    assert all(v > 0 for v in values), out
    m = re.fullmatch(r"ratio: ([0-9]+\.[0-9]+)", lines[-1])
    assert m, f"last line is not `ratio: X`: {lines[-1]!r}"
    ratio = float(m.group(1))
    assert ratio > 0
    # the ratio is the quotient of the two printed figures (up to their rounding)
    assert abs(ratio - values[1] / values[0]) <= 0.06 * ratio + 0.051, (ratio, values)
    return lines, values, ratio


def test_bench_synthetic_tiny():
    proc = run([BENCH, "--images", 300, "--epochs", 1, "--workers", 1, "--min-seconds", 0])
    lines, _, _ = _figures(proc.stdout)
    assert lines[0].startswith("machine: ") and "torch " in lines[0] and "cores" in lines[0]
    assert any(line.startswith("data: synthetic") and "300 training images" in line for line in lines)
    cuda = [line for line in lines if line.startswith("device loader (cuda")]
    assert len(cuda) == (1 if torch.cuda.is_available() else 0)
    if cuda:
        assert float(re.search(FIGURE, cuda[0]).group(1).replace(",", "")) > 0
        assert lines.index(cuda[0]) < len(lines) - 1


def test_bench_with_data_folder(cifar_dir):
    proc = run([BENCH, "--data", cifar_dir, "--images", 200, "--workers", 0, "--min-seconds", 0, "--no-cuda",
                "--batch-size", 32])
    lines, _, _ = _figures(proc.stdout)
    assert any(line.startswith(f"data: --data {cifar_dir}") and "200 training images" in line for line in lines)
    assert not any("cuda" in line for line in lines)


def test_bench_errors_and_help(tmp_path):
    proc = run([BENCH, "--data", tmp_path / "none"], check=False)
    assert proc.returncode == 2 and "error:" in proc.stderr and str(tmp_path / "none") in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    proc = run([BENCH, "--images", 0], check=False)
    assert proc.returncode == 2 and "--images" in proc.stderr
    helptext = run([BENCH, "--help"]).stdout
    for flag in ("--data", "--images", "--epochs", "--workers", "--threads", "ratio"):
        assert flag in helptext


LATENCY = ROOT / "bench" / "latency.py"
TRAIN_STEP = ROOT / "bench" / "train_step.py"


def test_latency_bench_prints_rows_with_the_flops_ratio_and_a_ratio_line():
    proc = run([LATENCY, "--models", "resnet56-B", "--batch-sizes", 1, 2, "--min-seconds", 0, "--min-reps", 1,
                "--no-cuda", "--threads", 1])
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("machine: ")
    rows = [line for line in lines if line.startswith("| resnet56-B |")]
    assert len(rows) == 2
    quotients = []
    for row, batch in zip(rows, (1, 2)):
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1] == "cpu" and cells[2] == str(batch)
        assert cells[3] == "1.379"  # FLOPs(ResNet-56) / FLOPs(ResNet-56-B) in the reference convention
        base, pruned, speedup, q = map(float, cells[4:8])
        assert base > 0 and pruned > 0
        assert abs(speedup - base / pruned) <= 0.01 * speedup + 0.002
        assert abs(q - speedup / 1.379) <= 0.01
        assert cells[8] in ("NCHW", "NHWC")  # both networks in the layout the pruned one runs fastest in
        quotients.append(q)
    m = re.fullmatch(r"ratio: ([0-9.]+)", lines[-1])
    assert m and abs(float(m.group(1)) - (quotients[0] * quotients[1]) ** 0.5) <= 0.02


def test_the_deployed_form_computes_what_the_pruned_network_computes():
    """bench/latency.py times networks with BN folded into convs and channel selections compacted: the same
    function as the pruned network of the reference layout (eval mode)."""
    import torch
    from utils.methods import import_path
    latency = import_path(str(LATENCY), "latency_bench_under_test")
    base, pruned = latency.build_pair("slim-densenet40-40%", 0)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for net in (base, pruned):
            want, got = net(x), latency.deployed(net)(x)
            assert torch.allclose(want, got, rtol=1e-4, atol=1e-4 * want.abs().max().item())
    folded = latency.deployed(latency.build_pair("resnet56-A", 0)[1])
    assert not [m for m in folded.modules() if isinstance(m, torch.nn.BatchNorm2d)]  # every conv-BN pair folded


def test_prune_cost_bench_times_every_layer():
    proc = run([ROOT / "bench" / "prune_cost.py", "--images", 20, "--holdout-images", 0, "--batch-size", 10,
                "--threads", 1, "--reps", 1])
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("machine: ")
    split = next(i for i, line in enumerate(lines) if line.startswith("regression pruning"))
    names = [f"conv{b}_{i}" for b, n in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3)) for i in range(1, n + 1)]
    # ThiNet's table, then regression pruning's (LASSO + least squares) from the same pass
    for table, (before_col, after_col) in ((lines[:split], (8, 9)), (lines[split:], (10, 11))):
        rows = [line for line in table if line.startswith("| conv")]
        assert [r.split("|")[1].strip() for r in rows] == names
        for row in rows:
            cells = [c.strip() for c in row.strip("|").split("|")]
            before, after = float(cells[before_col]), float(cells[after_col])
            assert 0 <= after <= before + 1e-9
    assert lines[-1].startswith("regression: slowest layer's selection + least squares")


def test_train_step_bench_prints_both_loops_and_their_ratio():
    proc = run([TRAIN_STEP, "--arch", "resnet", "--depth", 20, "--images", 64, "--batch-size", 32,
                "--workers", 0, "--device", "cpu", "--threads", 1])
    lines = proc.stdout.strip().splitlines()
    ref = float(re.search(FIGURE, next(x for x in lines if x.startswith("reference loop"))).group(1).replace(",", ""))
    ours = float(re.search(FIGURE, next(x for x in lines if x.startswith("engine"))).group(1).replace(",", ""))
    m = re.fullmatch(r"ratio: ([0-9.]+)", lines[-1])
    assert m and abs(float(m.group(1)) - ours / ref) <= 0.01 * ours / ref + 0.006


def test_new_benches_reject_bad_input():
    for script, flag in ((LATENCY, "--batch-sizes"), (TRAIN_STEP, "--images")):
        proc = run([script, flag, 0], check=False)
        assert proc.returncode == 2 and flag in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


IMAGENET = ROOT / "bench" / "imagenet_loader.py"


def _imagenet_rows(out):
    """{(pipeline, device): img/s} of bench/imagenet_loader.py's table, checked against its `ratio: X` line."""
    lines = out.strip().splitlines()
    assert lines[0].startswith("machine: ") and "cores" in lines[0], out
    assert "| pipeline | device | decode | img/s | images | seconds |" in lines, out
    rates = {}
    for line in lines:
        if line.startswith("| reference |") or line.startswith("| fast |"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rate, images, secs = float(cells[3].replace(",", "")), int(cells[4]), float(cells[5])
            assert rate > 0 and images > 0 and secs > 0
            assert abs(images / rate - secs) <= 0.01 * secs + 0.0051, line  # img/s is images / seconds (rounded)
            rates[cells[0], cells[1]] = rate
    m = re.fullmatch(r"ratio: ([0-9]+\.[0-9]+)", lines[-1])
    assert m, f"last line is not `ratio: X`: {lines[-1]!r}"
    ratio = float(m.group(1))
    assert ratio > 0
    fast, ref = rates["fast", "cpu"], rates["reference", "cpu"]
    assert abs(ratio - fast / ref) <= 0.01 * ratio + 0.006, (ratio, rates)
    return lines, rates


def test_imagenet_loader_bench_synthetic_tiny():
    proc = run([IMAGENET, "--images", 40, "--batch-size", 8, "--workers", 1, "--long-side", 64, "--crop", 32,
                "--classes", 2])
    lines, rates = _imagenet_rows(proc.stdout)
    data = next(line for line in lines if line.startswith("data: synthetic JPEG tree"))
    assert "40 training images in 2 classes" in data and re.search(r"mean file [0-9.]+ kB", data)
    cuda = torch.cuda.is_available()
    assert set(rates) == {("reference", "cpu"), ("fast", "cpu")} | ({("fast", "cuda")} if cuda else set())
    assert any(line.startswith("note: CUDA not available") for line in lines) != cuda


def test_imagenet_loader_bench_with_data_folder_and_errors(tmp_path):
    from conftest import write_jpeg_tree
    root = write_jpeg_tree(tmp_path / "tree", classes=3, train_per_class=6)
    proc = run([IMAGENET, "--data", root, "--images", 12, "--batch-size", 4, "--workers", 0, "--crop", 32,
                "--no-cuda"])
    lines, rates = _imagenet_rows(proc.stdout)
    assert any(line.startswith(f"data: --data {root}, 12 training images") for line in lines)
    assert set(rates) == {("reference", "cpu"), ("fast", "cpu")}
    assert any(line.startswith("note: CUDA skipped") for line in lines)
    for argv, needle in (([IMAGENET, "--data", tmp_path / "none"], str(tmp_path / "none")),
                         ([IMAGENET, "--batch-size", 0], "--batch-size")):
        proc = run(argv, check=False)
        assert proc.returncode == 2 and needle in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    helptext = run([IMAGENET, "--help"]).stdout
    for flag in ("--data", "--images", "--epochs", "--workers", "--batch-size", "--no-cuda", "ratio"):
        assert flag in helptext


def test_ekg_search_bench_times_steps_and_the_bank():
    proc = run([ROOT / "bench" / "ekg_search.py", "--depth", 20, "--val-images", 24, "--batch-size", 12, "--steps", 2,
                "--bank-images", 24, "--teachers", 2, "--threads", 1])
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("machine: ")
    steps = [line for line in lines if re.match(r"\s+step +\d+:", line)]
    assert len(steps) == 2
    kept = [float(re.search(r"FLOPs kept ([0-9.]+)", s).group(1)) for s in steps]
    assert 1 > kept[0] > kept[1] > 0  # each step removes FLOPs
    assert re.match(r"search: [0-9.]+ s per step \(mean of 2\)", next(x for x in lines if x.startswith("search:")))
    assert re.match(r"memory bank: 2 teachers x 24 images in one pass: [0-9.]+ s .*\(24, 10, 2\) float16",
                    lines[-1])
    bad = run([ROOT / "bench" / "ekg_search.py", "--depth", 9], check=False)
    assert bad.returncode == 2 and "--depth 9" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
