"""Turn the pytest-benchmark JSON of ``pytest bench/`` into the README's performance section.

    python bench/report.py RESULTS.json [--out DIR] [--latency LATENCY.json]

Writes ``DIR/report.md`` (default DIR: the JSON's folder): the machine (CPU model, cores, threads,
library versions), one table per image size / layer set, dtype and thread count with the median
time per call of every fastconv method and peer and, in parentheses, each fastconv method's
speed-up over the best peer on that problem, then the skipped cases with their reasons and, with
``--latency``, the import and first-call latencies from ``bench/latency.py``. Also writes one PNG
per image size, dtype and thread count: median time against kernel size for every method and
peer, which shows where the methods cross over.
"""

import argparse
import json
import os
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

SKIP_TEXT = {"missing": "not installed", "declined": "declined"}
# Table titles by workload kind.
TITLES = {"image": "{family} image", "layer": "NCHW layers", "rank": "conv1d and conv3d layers"}


def load(path):
    """(problems, cells, libraries, results): problem infos in grid order; (problem, threads,
    library) -> the case's info plus ``median`` or ``skip``/``reason``; library names in the
    suite's order; the whole JSON."""
    results = json.loads(Path(path).read_text())
    run = results["fastconv_bench"]
    cells = {}
    # The tables' cases (images, layers, conv1d/conv3d layers); the gradient, dask and overhead
    # benchmarks print their own comparisons (bench/grad.py, bench/test_dask.py).
    for entry in [dict(b["extra_info"], median=b["stats"]["median"])
                  for b in results["benchmarks"]] + run["skipped"]:
        if entry.get("kind") in TITLES and "library" in entry:
            cells[(entry["problem"], entry["threads"], entry["library"])] = entry
    grid = {name: index for index, name in enumerate(run["problems"])}
    problems = {(problem, threads): info for (problem, threads, _), info in cells.items()}
    order = sorted(problems, key=lambda key: (key[1], grid[key[0]]))
    libraries = [name for name in run["libraries"] if any(key[2] == name for key in cells)]
    libraries += sorted({key[2] for key in cells} - set(libraries))  # the rank tables' peers
    return [problems[key] for key in order], cells, libraries, results


def gemm_rates(results):
    """(dtype, threads) -> GFLOP/s of the BLAS GEMM measured by bench/test_layers.py."""
    return {(b["extra_info"]["gemm_dtype"], b["extra_info"]["threads"]):
            b["extra_info"]["flops"] / b["stats"]["median"] / 1e9
            for b in results["benchmarks"] if "gemm_dtype" in b["extra_info"]}


def short(library):
    if library.startswith("fastconv."):
        return library.removeprefix("fastconv.")
    return library.removeprefix("scipy.signal.").removeprefix("scipy.")


def seconds_text(seconds):
    if seconds < 1e-3:
        return f"{seconds * 1e6:.3g} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.3g} s"


def median(cells, problem, library):
    """The library's median time on the problem, or None when it was not timed."""
    return cells.get((problem["problem"], problem["threads"], library), {}).get("median")


def best_peer(problem, cells, libraries):
    """(name, median) of the fastest peer timed on this problem, or None."""
    timed = []
    for library in libraries:
        seconds = median(cells, problem, library)
        if seconds is not None and not library.startswith("fastconv."):
            timed.append((seconds, library))
    if not timed:
        return None
    seconds, library = min(timed)
    return library, seconds


def ratio_text(ratio):
    return f"{ratio:.0f}×" if ratio >= 10 else f"{ratio:.2g}×"


def cell_text(cell, peer):
    if cell is None:
        return ""
    if "median" not in cell:
        if cell["skip"] == "slow":
            return f"skipped: est. {seconds_text(cell['estimated_seconds'])}"
        return SKIP_TEXT.get(cell["skip"], cell["skip"])
    text = seconds_text(cell["median"])
    if cell["library"].startswith("fastconv.") and peer is not None:
        text += f" ({ratio_text(peer[1] / cell['median'])})"
    return text


def layer_text(p):
    text = (f"{p['batch']}×{p['channels']}×{p['height']}×{p['width']} → {p['out_channels']} ch, "
            f"{p['kernel']}×{p['kernel']}")
    if p["stride"] > 1:
        text += f" stride {p['stride']}"
    if p["padding"]:
        text += f" pad {p['padding']}"
    if p["groups"] > 1:
        text += f" groups {p['groups']}"
    return text


def rank_text(p):
    function = "conv1d" if p["rank"] == 1 else "conv3d"
    text = (f"{function} {'×'.join(map(str, p['input_shape']))} → {p['weight_shape'][0]} ch, "
            f"k{p['weight_shape'][-1]}")
    return text + (f" pad {p['padding']}" if p["padding"] else "")


def table(problems, cells, libraries, gemm_rate=None):
    """Markdown rows for one table (one family, dtype and thread count); layer tables give
    auto's GFLOP/s, and its share of ``gemm_rate`` (GFLOP/s) when known."""
    layer = problems[0]["kind"] in ("layer", "rank")
    shape_text = rank_text if problems[0]["kind"] == "rank" else layer_text
    present = [lib for lib in libraries if any((p["problem"], p["threads"], lib) in cells
                                               for p in problems)]
    head = ["layer", "shape"] if layer else ["kernel", "mode"]
    head += [f"**{short(lib)}**" if lib.startswith("fastconv.") else short(lib) for lib in present]
    head += ["best peer", "auto runs"] + (["auto GFLOP/s"] if layer else [])
    if layer and gemm_rate:
        head.append(f"of GEMM ({gemm_rate:.3g} GFLOP/s)")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for p in problems:
        peer = best_peer(p, cells, present)
        auto = cells.get((p["problem"], p["threads"], "fastconv.auto"), {})
        row = [p["label"], shape_text(p)] if layer else [f"{p['kernel']}×{p['kernel']}", p["mode"]]
        row += [cell_text(cells.get((p["problem"], p["threads"], lib)), peer) for lib in present]
        row += [short(peer[0]) if peer else "—", auto.get("auto_choice", "—")]
        if layer:
            rate = 2 * p["macs"] / auto["median"] / 1e9 if "median" in auto else None
            row.append(f"{rate:.3g}" if rate else "—")
            if gemm_rate:
                row.append(f"{rate / gemm_rate:.0%}" if rate else "—")
        lines.append("| " + " | ".join(row) + " |")
    return lines


def summary(tables, cells, libraries):
    """One row per table: how often 'auto' beats every peer and by how much."""
    lines = ["| problems | dtype | threads | auto faster than every peer | auto's speed-up over "
             "the best peer: median (range) |", "|---|---|---|---|---|"]
    for (threads, kind, family, dtype), rows in tables.items():
        speedups = []
        for p in rows:
            peer = best_peer(p, cells, libraries)
            auto = median(cells, p, "fastconv.auto")
            if peer is not None and auto is not None:
                speedups.append(peer[1] / auto)
        if not speedups:
            continue
        title = TITLES[kind].format(family=family)
        lines.append(f"| {title} | {dtype} | {threads} | {sum(s > 1 for s in speedups)} of "
                     f"{len(speedups)} | {ratio_text(statistics.median(speedups))} "
                     f"({ratio_text(min(speedups))} – {ratio_text(max(speedups))}) |")
    return lines


def drift(problems, cells):
    """Lines on the run's own noise: 'auto' and the method it chose run the same code (plus a
    cached plan lookup of a few microseconds), timed at different moments of the run, so their
    ratio shows how far two columns of one table can differ for no reason. Calls of 1 ms and
    more only, where the lookup is under 1%."""
    pairs = []
    for p in problems:
        auto = cells.get((p["problem"], p["threads"], "fastconv.auto"), {})
        choice = auto.get("auto_choice")
        chosen = cells.get((p["problem"], p["threads"], f"fastconv.{choice}"), {})
        if "median" in auto and "median" in chosen and auto["median"] >= 1e-3:
            pairs.append((auto["median"] / chosen["median"], p, choice, auto["median"],
                          chosen["median"]))
    if not pairs:
        return []
    pairs.sort(key=lambda pair: pair[0])
    ratios = [pair[0] for pair in pairs]
    lines = [f"'auto' against the method it ran, {len(pairs)} problems of 1 ms or more (the same "
             "code, timed at different moments of this run): median "
             f"{statistics.median(ratios):.2f}, from {ratios[0]:.2f} to {ratios[-1]:.2f}. Two "
             "columns of one table that differ by less than this spread may differ by noise.", ""]
    for ratio, p, choice, auto_seconds, chosen_seconds in (pairs[0], pairs[-1]):
        lines.append(f"- {ratio:.2f}: {p['label']} {p['dtype']}, auto {seconds_text(auto_seconds)},"
                     f" {choice} {seconds_text(chosen_seconds)}")
    return lines


def machine_lines(results):
    info = results["machine_info"]
    bench = info.get("fastconv_bench", {})
    run = results.get("fastconv_bench", {})
    versions = ", ".join(f"{name} {version}" for name, version in bench.get("versions", {}).items())
    pools = ", ".join(
        " ".join(filter(None, [pool["internal_api"], pool["version"]]))
        + f" ({', '.join(filter(None, [pool['library'], pool['architecture']]))})"
        for pool in bench.get("thread_pools", []))
    commit = results.get("commit_info", {})
    rates = ", ".join(f"{dtype} {rate:.3g} GFLOP/s on {threads} thread(s)"
                      for (dtype, threads), rate in sorted(gemm_rates(results).items()))
    return [
        f"- CPU: {bench.get('cpu_model') or info['cpu'].get('brand_raw')} (LLVM target "
        f"`{bench.get('llvm_cpu')}`), {bench.get('logical_cpus')} logical CPUs, "
        f"{bench.get('usable_cpus')} usable by the run",
        f"- Threads per call: {', '.join(map(str, run.get('threads', [])))} for every library "
        "(SciPy's correlate2d and ndimage.correlate are single-threaded); Numba threading layer "
        f"{bench.get('numba_threading_layer')}",
        f"- Python {bench.get('python')} on {bench.get('system')}; {versions}",
        f"- Thread pools: {pools}",
        f"- BLAS GEMM rate (NumPy matmul of 2048x2048 matrices): {rates or 'not measured'}",
        f"- Grid `{run.get('grid')}`; cases whose call was estimated above "
        f"{run.get('max_call_seconds')} s were skipped; commit {commit.get('id', '?')[:12]}"
        + (" (with uncommitted changes)" if commit.get("dirty") else "")
        + f"; {results.get('datetime', '')[:19]} UTC",
    ]


def plot(problems, cells, libraries, path):
    """Median time against kernel size, one panel per mode, for one family/dtype/threads."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = sorted({p["mode"] for p in problems}, key=["valid", "same"].index)
    figure, axes = plt.subplots(1, len(modes), figsize=(6.5 * len(modes), 4.8), sharey=True,
                                squeeze=False)
    colours = plt.get_cmap("tab10").colors
    first = problems[0]
    for axis, mode in zip(axes[0], modes, strict=True):
        kernels = sorted({p["kernel"] for p in problems if p["mode"] == mode})
        for index, library in enumerate(libraries):
            points = [(p["kernel"], median(cells, p, library)) for p in problems
                      if p["mode"] == mode and median(cells, p, library) is not None]
            if not points:
                continue
            ours = library.startswith("fastconv.")
            axis.plot(*zip(*points, strict=True), marker="o" if ours else "s",
                      linestyle="-" if ours else "--", linewidth=2.2 if ours else 1.2,
                      markersize=5 if ours else 4, color=colours[index % len(colours)],
                      label=library)
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xticks(kernels, [str(k) for k in kernels])
        axis.minorticks_off()
        axis.set_xlabel("kernel size k (k×k)")
        axis.set_title(f"mode '{mode}'")
        axis.grid(True, which="major", alpha=0.3)
    axes[0][0].set_ylabel("median time per call (s)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    for axis in axes[0][1:]:
        for handle, label in zip(*axis.get_legend_handles_labels(), strict=True):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    figure.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    figure.suptitle(f"{first['family']} image, {first['dtype']}, {first['threads']} thread(s)")
    figure.tight_layout()
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)


def write_report(results_path, out_dir, latency_path=None):
    """Write report.md and the plots into ``out_dir``; returns the report's path."""
    problems, cells, libraries, results = load(results_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = ["## Performance", "",
             f"Generated by `python bench/report.py {Path(results_path).name}` from a "
             "`pytest bench/` run. Times are medians per call; "
             "(N×) is a fastconv method's speed-up over the fastest peer on that problem; "
             "'auto runs' is the method `method='auto'` chose.", "", "### Machine", "",
             *machine_lines(results)]
    tables = defaultdict(list)
    for p in problems:
        tables[(p["threads"], p["kind"], p.get("family"), p["dtype"])].append(p)
    lines += ["", "### Summary", "", *summary(tables, cells, libraries)]
    noise = drift(problems, cells)
    if noise:
        lines += ["", "### Noise", "", *noise]
    for (threads, kind, family, dtype), rows in tables.items():
        title = TITLES[kind].format(family=family)
        lines += ["", f"### {title}, {dtype}, {threads} thread(s)", ""]
        lines += table(rows, cells, libraries, gemm_rates(results).get((dtype, threads)))
        if kind != "image":
            lines += ["", "GFLOP/s count the direct method's multiply-adds (2 flops each); FFT "
                      "and Winograd do fewer, so their share of the GEMM rate can pass 100%."]
        if kind == "image":
            name = f"image-{family}-{dtype}-t{threads}.png"
            plot(rows, cells, libraries, out_dir / name)
            lines += ["", f"![time against kernel size, {family} {dtype}]({name})"]
    skipped = [c for c in results.get("fastconv_bench", {}).get("skipped", [])
               if c["skip"] != "missing"]
    missing = sorted({c["library"] for c in results.get("fastconv_bench", {}).get("skipped", [])
                      if c["skip"] == "missing"})
    if skipped or missing:
        lines += ["", "### Skipped cases", ""]
        lines += [f"- {c['reason']}" for c in skipped]
        if missing:
            lines.append(f"- not installed, so not compared: {', '.join(missing)}")
    if latency_path is not None:
        import latency

        lines += ["", *latency.markdown(json.loads(Path(latency_path).read_text()))]
    report = out_dir / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="pytest-benchmark JSON (--benchmark-json)")
    parser.add_argument("--out", type=Path, help="output folder (default: the JSON's folder)")
    parser.add_argument("--latency", type=Path, help="JSON written by bench/latency.py --json")
    parser.add_argument("--readme", type=Path,
                        help="also replace the README's generated section (between the "
                             f"{README_START!r} and {README_END!r} lines) with the report")
    args = parser.parse_args(argv)
    report = write_report(args.results, args.out or args.results.parent, args.latency)
    print(report.read_text())
    print(f"written: {report} and its plots", file=sys.stderr)
    if args.readme:
        update_readme(args.readme, report)
        print(f"updated: {args.readme}", file=sys.stderr)


README_START = "<!-- generated by bench/report.py: start -->"
README_END = "<!-- generated by bench/report.py: end -->"


def update_readme(readme, report):
    """Put the report between the README's markers, with image links relative to the README."""
    text = readme.read_text()
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    folder = os.path.relpath(report.parent, readme.parent)
    body = report.read_text().removeprefix("## Performance\n")  # the README has the heading
    body = re.sub(r"!\[([^]]*)\]\(([^)/]+\.png)\)", lambda m: f"![{m[1]}]({folder}/{m[2]})",
                  body)
    readme.write_text(f"{head}{README_START}\n{body.strip()}\n{README_END}{tail}")


if __name__ == "__main__":
    main()
