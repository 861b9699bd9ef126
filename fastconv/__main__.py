"""fastconv's command line: python -m fastconv {info, warmup, calibrate} [options]."""

import argparse
import sys

DESCRIPTION = """\
info       print the versions, the CPU and LLVM target, threads, BLAS, and the state of the
           Numba cache and the calibration file
warmup     compile the kernels ahead of use into Numba's on-disk cache, in parallel processes
calibrate  measure this machine's cost-model constants and store them for later processes"""


def _parser():
    from ._warmup import DTYPES
    from .strategies import methods

    parser = argparse.ArgumentParser(prog="python -m fastconv", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", metavar="{info,warmup,calibrate}")
    commands.add_parser("info", help="print the installation and cache report")
    warmup = commands.add_parser(
        "warmup", help="compile kernels ahead of use (first calls then load them from disk)")
    warmup.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=DTYPES,
                        help="dtypes to compile for (default: all)")
    warmup.add_argument("--methods", nargs="+", default=list(methods()), choices=methods(),
                        help="strategies to compile (default: all); the planner always is")
    warmup.add_argument("--jobs", type=int, default=None,
                        help="worker processes (default: one per CPU)")
    calibrate = commands.add_parser(
        "calibrate", help="measure this machine's cost-model constants (well under a minute "
        "once compiled) and store them in the per-user cache file that later processes load")
    calibrate.add_argument("--threads", type=int, default=None,
                           help="threads for the threading constants (default: all of Numba's)")
    calibrate.add_argument("--no-save", action="store_true",
                           help="print the constants without writing the cache file")
    return parser


def _warmup(methods, dtypes, jobs):
    """Run the warmup; False (after saying why) when the cache cannot keep its results."""
    from ._info import numba_cache
    from ._warmup import run

    state, _ = numba_cache()
    if state != "on":
        print(f"warmup: nothing to keep, the Numba cache is {state}", file=sys.stderr)
        return False
    seconds = run(methods, dtypes, jobs)
    print(f"warmup: done in {seconds:.1f} s", file=sys.stderr)
    return True


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "info":
        from ._info import lines

        print("\n".join(lines()))
        return 0
    if args.command == "warmup":
        return 0 if _warmup(args.methods, args.dtypes, args.jobs) else 1
    from ._warmup import DTYPES
    from .planning.calibrate import main as run_calibration
    from .strategies import methods

    # Compiling is most of a first calibration: in parallel and with progress (timings then
    # start from kernels loaded from the cache).
    print("calibrate: step 1 of 2, compiling the kernels", file=sys.stderr)
    _warmup(methods(), DTYPES, None)
    print("calibrate: step 2 of 2, timing every strategy's problems", file=sys.stderr)
    run_calibration(threads=args.threads, save=not args.no_save)
    return 0


if __name__ == "__main__":
    sys.exit(main())
