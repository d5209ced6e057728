"""Make Fashion-MNIST available, so that `make demo` and `make test` need nothing installed beforehand.

    python -m utils.get_data             # find it, else install it, else a one-line error (exit 2)
    python -m utils.get_data --optional  # the same, but a failure is a one-line note and exit 0 (make test:
                                         # the real-data tests then skip)

Order: already there (./data, or Debian's /usr/share/datasets/fashion-mnist) -> Debian's dataset-fashion-mnist
through apt-get where apt is usable (root, or passwordless sudo; --reinstall when dpkg records the package as
installed but its files are gone, e.g. an empty tmpfs over /usr/share/datasets) -> torchvision's download into
./data where the network allows -> the one-line message.
"""
import argparse
import os
import shutil
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from utils.data import FASHION_MNIST_SYSTEM_DIR, find_fashion_mnist  # noqa: E402
from utils.errors import UserError, run_main  # noqa: E402

PACKAGE = "dataset-fashion-mnist"


def _apt_prefix():
    """The command prefix that runs apt-get as root here, or None with the reason."""
    if shutil.which("apt-get") is None:
        return None, "no apt-get on this machine"
    if os.geteuid() == 0:
        return [], None
    if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
        return ["sudo", "-n"], None
    return None, "apt-get needs root (no passwordless sudo)"


def _recorded_installed():
    proc = subprocess.run(["dpkg-query", "-W", "-f", "${Status}", PACKAGE], capture_output=True, text=True)
    return proc.returncode == 0 and proc.stdout.strip().endswith("installed")


def apt_install(log=print):
    """Install (or reinstall) Debian's package; None on success, else why not."""
    prefix, why = _apt_prefix()
    if prefix is None:
        return why
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = prefix + ["apt-get", "install", "-y", "-qq"]
    if shutil.which("dpkg-query") and _recorded_installed():
        install.append("--reinstall")  # recorded as installed, files gone: a plain install would do nothing
    install.append(PACKAGE)
    log(f"get_data: {' '.join(install)}")
    quiet = dict(env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if subprocess.run(install, **quiet).returncode == 0:
        return None
    # a fresh machine may have no package lists yet
    log("get_data: apt-get update")
    subprocess.run(prefix + ["apt-get", "update", "-qq"], **quiet)
    proc = subprocess.run(install, **quiet)
    if proc.returncode == 0:
        return None
    last = [line for line in proc.stderr.splitlines() if line.strip()][-1:] or ["no message"]
    return f"apt-get install {PACKAGE} failed: {last[0][:200]}"


def torchvision_download(root="./data", log=print):
    """torchvision's FashionMNIST download into ``root``; None on success, else why not."""
    from torchvision.datasets import FashionMNIST
    log(f"get_data: downloading Fashion-MNIST with torchvision into {root}")
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(20)
    existed = os.path.isdir(root)
    try:
        FashionMNIST(root, train=True, download=True)
        FashionMNIST(root, train=False, download=True)
        return None
    except Exception as exc:  # no network, a proxy, a partial file
        raw = os.path.join(root, "FashionMNIST", "raw")
        for d in (raw, os.path.dirname(raw)) + (() if existed else (root,)):
            if os.path.isdir(d) and not os.listdir(d):
                os.rmdir(d)  # leave no empty folders behind
        return f"torchvision download failed ({type(exc).__name__})"
    finally:
        socket.setdefaulttimeout(previous)


def ensure_fashion_mnist(log=print):
    """The folder holding Fashion-MNIST, installing it if needed; UserError when no way works."""
    found = find_fashion_mnist()
    if found:
        return found
    reasons = []
    for attempt in (apt_install, torchvision_download):
        why = attempt(log=log)
        found = find_fashion_mnist()
        if why is None and found:
            return found
        reasons.append(why or f"{attempt.__name__} left no dataset behind")
    raise UserError(f"Fashion-MNIST not found in ./data or {FASHION_MNIST_SYSTEM_DIR} and could not be installed "
                    f"({'; '.join(reasons)}): install Debian's {PACKAGE} or put the four IDX files under ./data")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--optional", action="store_true",
                   help="a failure is a one-line note and exit status 0 (the real-data tests then skip)")
    args = p.parse_args(argv)
    try:
        print(f"get_data: Fashion-MNIST in {ensure_fashion_mnist()}")
    except UserError as exc:
        if not args.optional:
            raise
        print(f"get_data: note: {exc}; the real-data tests will skip", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_main(main)
