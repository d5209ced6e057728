"""What the benchmark scripts share: the machine line every one of them prints first."""
import os
import platform


def machine():
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        model = names[0] if names else model
    except OSError:
        pass
    import torch
    import torchvision
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    line = (f"machine: {model}, {os.cpu_count()} cores ({usable} usable), torch {torch.__version__}, "
            f"torchvision {torchvision.__version__}, python {platform.python_version()}")
    if torch.cuda.is_available():
        line += f", GPU {torch.cuda.get_device_name()}"
    return line
