#!/usr/bin/env python3
"""The mesh's benchmark (run_mesh_bench.sh runs it; RESULTS.md records it):

  matrix  graft verify --layouts all on 4 and 8 ranks: every factorization over (data,
          pipeline, tensor) with each zero level graft builds and both schedules, against single;
  speed   data 2 with zero 1 and 3 against data 2 with zero 0 on 2 ranks, runs alternating, best
          kept (goals >= 0.95x and >= 0.8x: ZeRO's collectives cost about what the all-reduce
          did; zero 3 gathers every unit's parameters twice more per micro-batch);
  memory  784-4096-4096-10 with adam on 4 ranks: each rank's peak RSS and the model's own
          accounting under data 4 with zero 0 to 3, and pipeline 2 (stage 0 holding layer 0)
          against data 2, beside what `graft validate --world N` predicts.

Every rank runs under a small Python wrapper that reports the peak RSS of its graft process
(getrusage of the child), so no tool beyond python3 is needed."""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

WRAP = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[2:]);"
        "open(sys.argv[1] + '.' + __import__('os').environ.get('OMPI_COMM_WORLD_RANK', '0'), 'w')"
        ".write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024));"
        "sys.exit(r.returncode)")

MLP = """[run]
name = "{name}"
seed = 3
steps = {steps}
log_every = {log_every}
threads = 1
progress = "none"
eval_every = 0
output_dir = "{out}"
[data]
reader = "synthetic"
kind = "blobs"
features = 784
classes = 10
samples = 4096
test_samples = 64
batch_size = {batch}
{layers}[loss]
type = "cross_entropy"
[optimizer]
type = "adam"
lr = 0.001
[checkpoint]
enabled = false
[parallel]
{parallel}
"""


def layers_toml(widths):
    text = ""
    for i, w in enumerate(widths):
        text += '[[model.layers]]\ntype = "linear"\nunits = %d\n' % w
        if i + 1 < len(widths):
            text += '[[model.layers]]\ntype = "relu"\n'
    return text


def write_config(path, **kw):
    with open(path, "w") as f:
        f.write(MLP.format(**kw))


def mpirun(args, ranks, command, timeout=1200):
    flags = ["--oversubscribe", "--allow-run-as-root"] if args.open_mpi else []
    return subprocess.run([args.mpirun, "-np", str(ranks)] + flags + command,
                          capture_output=True, text=True, timeout=timeout)


def matrix(args):
    ok = True
    for ranks in (4, 8):
        r = mpirun(args, ranks, [args.graft, "verify", args.config, "--layouts", "all",
                                 "--steps", "20"])
        print(r.stdout.strip())
        if r.returncode != 0 or "FAIL" in r.stdout:
            print(r.stderr[-4000:], file=sys.stderr)
            ok = False
    return ok


def samples_per_s(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        events = [json.loads(l) for l in f if '"train"' in l]
    # The first window holds the start-up (first-touch of the buffers); the rest is steady.
    return statistics.median(e["samples_per_s"] for e in events[1:])


def speed(args, tmp):
    best = {0: 0.0, 1: 0.0, 3: 0.0}
    config = os.path.join(tmp, "speed.toml")
    for attempt in range(args.repeats):
        for zero in best:
            name = "speed_z%d_%d" % (zero, attempt)
            write_config(config, name=name, steps=args.steps, log_every=args.steps // 4,
                         out=tmp, batch=256, layers=layers_toml([1024, 1024, 10]),
                         parallel="data = 2\nzero = %d" % zero)
            r = mpirun(args, 2, [args.graft, "train", config])
            if r.returncode != 0:
                print(r.stdout + r.stderr, file=sys.stderr)
                return None
            best[zero] = max(best[zero], samples_per_s(os.path.join(tmp, name)))
    print("speed: 784-1024-1024-10 adam, batch 256, data 2 on 2 ranks, best of %d runs of %d "
          "steps:" % (args.repeats, args.steps))
    print("  zero 0: %.0f samples/s   zero 1: %.0f (%.3fx, goal >= 0.95)   zero 3: %.0f (%.3fx, "
          "goal >= 0.8)" % (best[0], best[1], best[1] / best[0], best[3], best[3] / best[0]))
    return best[1] / best[0] >= 0.95 and best[3] / best[0] >= 0.8


def predicted(args, config, ranks):
    r = subprocess.run([args.graft, "validate", config, "--world", str(ranks)],
                       capture_output=True, text=True)
    out = {}
    for m in re.finditer(r"\nrank (\d+) .*?\n.*?memory ([\d.]+ \w+): parameters ([\d.]+ \w+), "
                         r"gradients ([\d.]+ \w+), optimizer state ([\d.]+ \w+)(.*)", r.stdout):
        windows = re.search(r"gather windows ([\d.]+ \w+)", m.group(6))
        out[int(m.group(1))] = [to_bytes(m.group(k)) for k in (2, 3, 4, 5)] + [
            to_bytes(windows.group(1)) if windows else 0.0]
    return out


def to_bytes(text):
    value, unit = text.split()
    return float(value) * {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}[unit]


def peak_rss(args, tmp, name, ranks, widths, parallel):
    """Each rank's peak RSS training `widths` under `parallel`, and the config's path."""
    config = os.path.join(tmp, name + ".toml")
    write_config(config, name=name, steps=4, log_every=4, out=tmp, batch=64,
                 layers=layers_toml(widths), parallel=parallel)
    rss_base = os.path.join(tmp, name + ".rss")
    r = mpirun(args, ranks, [sys.executable, "-c", WRAP, rss_base, args.graft, "train", config])
    if r.returncode != 0:
        print(r.stdout + r.stderr, file=sys.stderr)
        return None, config
    return [int(open(rss_base + "." + str(k)).read()) for k in range(ranks)], config


def memory(args, tmp):
    # The model's bytes on a rank are its peak RSS less that of the same run with a tiny model
    # (the binary, MPI, the data set): that difference is what validate's plan predicts.
    rows = []
    for label, ranks, parallel in (("data 4, zero 0", 4, "data = 4"),
                                   ("data 4, zero 1", 4, "data = 4\nzero = 1"),
                                   ("data 4, zero 2", 4, "data = 4\nzero = 2"),
                                   ("data 4, zero 3", 4, "data = 4\nzero = 3"),
                                   ("data 2", 2, "data = 2"),
                                   ("pipeline 2, stages [[0,0],[1,4]]", 2,
                                    "pipeline = 2\nstages = [[0, 0], [1, 4]]")):
        name = "mem_" + re.sub(r"\W+", "_", label)
        rss, config = peak_rss(args, tmp, name, ranks, [4096, 4096, 10], parallel)
        base, _ = peak_rss(args, tmp, name + "_base", ranks, [16, 16, 10], parallel)
        if rss is None or base is None:
            return False
        rows.append((label, rss, base, predicted(args, config, ranks)))
    print("memory: 784-4096-4096-10 adam, batch 64, per rank: peak RSS; the model's share of it "
          "(less the peak of the same run with 784-16-16-10); validate's plan for it, and of that "
          "parameters + gradients + optimizer state")
    ok = True
    for label, rss, base, pred in rows:
        for k, peak in enumerate(rss):
            p = pred.get(k, [0, 0, 0, 0, 0])
            model = peak - base[k]
            ratio = p[0] / model if model > 0 else 0.0
            ok = ok and 0.9 <= ratio <= 1.1
            print("  %-34s rank %d: peak %6.1f MiB, model %6.1f MiB, planned %6.1f MiB (%.2fx); "
                  "params %5.1f + grads %5.1f + optimizer %5.1f MiB = %5.1f MiB kept%s"
                  % (label, k, peak / 2**20, model / 2**20, p[0] / 2**20, ratio, p[1] / 2**20,
                     p[2] / 2**20, p[3] / 2**20, (p[1] + p[2] + p[3]) / 2**20,
                     ", gather windows %.1f MiB" % (p[4] / 2**20) if p[4] else ""))
    print("  planned within 10%% of the model's measured share on every rank: %s" %
          ("yes" if ok else "NO"))
    return ok or not args.check


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--graft", required=True)
    ap.add_argument("--config", default="configs/fashion_mlp.toml")
    ap.add_argument("--mpirun", default="mpirun")
    ap.add_argument("--parts", default="matrix,speed,memory")
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--steps", type=int, default=80)
    ap.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    args = ap.parse_args()
    version = subprocess.run([args.mpirun, "--version"], capture_output=True, text=True)
    args.open_mpi = any(n in version.stdout + version.stderr for n in ("Open MPI", "OpenRTE"))
    parts = args.parts.split(",")
    ok = True
    with tempfile.TemporaryDirectory(prefix="graft_mesh_bench_") as tmp:
        if "matrix" in parts:
            ok = matrix(args) and ok
        if "speed" in parts:
            met = speed(args, tmp)
            ok = ok and met is not None and (met or not args.check)
        if "memory" in parts:
            ok = memory(args, tmp) and ok
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
