"""Command line: ``python -m fastconv calibrate [--threads N] [--no-save]``."""

import argparse
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fastconv", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    calibrate = commands.add_parser(
        "calibrate", help="measure this machine's cost-model constants (well under a minute) and "
        "store them in the per-user cache file that later processes load")
    calibrate.add_argument("--threads", type=int, default=None,
                           help="threads for the threading constants (default: all of Numba's)")
    calibrate.add_argument("--no-save", action="store_true",
                           help="print the constants without writing the cache file")
    args = parser.parse_args(argv)
    from ._calibrate import main as run_calibration

    run_calibration(threads=args.threads, save=not args.no_save)
    return 0


if __name__ == "__main__":
    sys.exit(main())
