"""The wrapper every script's main runs under: bad input, divergence and signals become one line and an exit
status (the exceptions themselves live in the leaf module ``errors``)."""
import os
import signal
import sys
import warnings


from errors import Terminated, TrainingDiverged, UserError  # noqa: F401  (re-exported)


def _terminate(signum, frame):
    raise Terminated()


def run_main(main, argv=None):
    """Run ``main(argv)``; turn UserError/TrainingDiverged into a one-line message and a non-zero exit."""
    prog = os.path.basename(sys.argv[0])  # as argparse names it in its own one-line errors

    def one_line_warning(message, category, *args, **kwargs):
        text = " ".join(str(message).split())
        return f"{prog}: warning: {category.__name__}: {text}\n"

    warnings.formatwarning = one_line_warning
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return main(argv)
    except UserError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except TrainingDiverged as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        sys.exit(3)
    except Terminated:
        print(f"{prog}: terminated (SIGTERM); the last checkpoint written is kept, --resume auto continues", file=sys.stderr)
        sys.exit(128 + signal.SIGTERM)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        sys.exit(130)
