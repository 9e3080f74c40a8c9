# The GPU benchmark of the CUDA issue: graft_bench_mlp_gpu and bench_mlp_torch.py --device cuda
# side by side on each batch size, one table, PASS/MISS per goal; exit status 1 when a goal is
# missed or a side could not be measured. Standard library only: the GPU machine's python.
import argparse
import json
import os
import subprocess
import sys
import time

RATIO_GOAL = 1.0     # graft's samples/s over PyTorch's
SGEMM_GOAL = 80.0    # graft's TFLOP/s as a percentage of cuBLAS's sgemm on the same products
NO_GPU = 77          # graft_bench_mlp_gpu: no usable GPU
TORCH_UNAVAILABLE = 3  # bench_mlp_torch.py: torch or CUDA missing
HERE = os.path.dirname(os.path.abspath(__file__))


def measure(command, env, timeout):
    """Runs one side: its JSON line, or {"error": why} when it printed none; "unavailable" is
    set when the side said it cannot run here at all (no GPU, no torch)."""
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"no result within {timeout} s"}
    except OSError as error:
        return {"error": str(error), "unavailable": True}
    sys.stderr.write(done.stderr)
    unavailable = done.returncode in (NO_GPU, TORCH_UNAVAILABLE)
    for line in reversed(done.stdout.splitlines()):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and (done.returncode == 0 or "error" in record):
            return dict(record, unavailable=True) if unavailable else record
    last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
    return {"error": last, "unavailable": unavailable}


def table(rows):
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def report(runs, layers):
    """Prints the table and notes; returns the goals missed (and sides not measured)."""
    header = ["layers", "batch", "graft samples/s", "torch samples/s", "ratio",
              f">= {RATIO_GOAL}x", "graft TFLOP/s", "torch TFLOP/s", "cuBLAS sgemm TFLOP/s",
              "graft / sgemm", f">= {SGEMM_GOAL:.0f}%"]
    rows, missed, notes, errors = [header], [], [], set()
    for batch, graft, torch in runs:
        row = [layers, batch]
        g_ok, t_ok = "error" not in graft, "error" not in torch
        row += [f"{graft['samples_per_s']:.0f}" if g_ok else "-",
                f"{torch['samples_per_s']:.0f}" if t_ok else "-"]
        if g_ok and t_ok:
            ratio = graft["samples_per_s"] / torch["samples_per_s"]
            row += [f"{ratio:.2f}x", "PASS" if ratio >= RATIO_GOAL else "MISS"]
            if ratio < RATIO_GOAL:
                missed.append(f"batch {batch}: {ratio:.2f}x PyTorch's samples/s < {RATIO_GOAL}x")
        else:
            row += ["-", "not measured"]
        row += [f"{graft['tflops']:.1f}" if g_ok else "-",
                f"{torch['tflops']:.1f}" if t_ok else "-"]
        if g_ok and "sgemm_tflops" in graft:
            percent = graft["percent_of_sgemm"]
            row += [f"{graft['sgemm_tflops']:.1f}", f"{percent:.0f}%",
                    "PASS" if percent >= SGEMM_GOAL else "MISS"]
            if percent < SGEMM_GOAL:
                missed.append(f"batch {batch}: graft at {percent:.0f}% of cuBLAS's sgemm rate "
                              f"< {SGEMM_GOAL:.0f}%")
        else:
            row += ["-", "-", "not measured"]
        rows.append(row)
        for side, record in (("graft", graft), ("torch", torch)):
            if "error" in record:
                missed.append(f"batch {batch}: {side} not measured")
                seen = record["error"] in errors
                errors.add(record["error"])
                notes.append(f"  batch {batch} {side}: not measured: "
                             + ("as above" if seen else record["error"]))
        if g_ok:
            notes.append(
                f"  batch {batch} graft: {graft['steps']} steps in {graft['seconds']:.2f} s, loss "
                f"{graft['first_loss']:.3f} -> {graft['last_loss']:.3f}, cudaMalloc calls in the "
                f"timed steps: {graft['device_mallocs_in_timed_steps']}")
            if "sgemm_products" in graft:
                notes.append(f"    cuBLAS {graft['sgemm_math']} {graft['sgemm_tflops']:.1f} "
                             f"TFLOP/s, CUBLAS_PEDANTIC_MATH (graft's device setting) "
                             f"{graft['sgemm_pedantic_tflops']:.1f}; per product: " + ", ".join(
                                 f"{p['name']} {p['tflops']:.1f}" for p in graft["sgemm_products"]))
        if t_ok:
            notes.append(
                f"  batch {batch} torch: {torch['steps']} steps in {torch['seconds']:.2f} s, loss "
                f"{torch['first_loss']:.3f} -> {torch['last_loss']:.3f}, peak GPU memory "
                f"{torch['peak_gpu_allocated_bytes'] / 2**20:.0f} MiB")
    print(table(rows))
    print("\nTFLOP/s: the FLOPs of a step's matrix products (forward, weight gradient, and input "
          "gradient past the first layer) times steps/s, for all three columns; graft / sgemm is "
          "cuBLAS's time for those products alone over graft's step time. TF32 off everywhere.")
    print("\n".join(notes))
    return missed


def main():
    parser = argparse.ArgumentParser(description="graft vs PyTorch on the GPU (one table).")
    parser.add_argument("--bench", required=True, help="the built graft_bench_mlp_gpu")
    parser.add_argument("--plugin-dir", help="graft's plugins (default: the build's)")
    parser.add_argument("--library-path", default="",
                        help="prepended to LD_LIBRARY_PATH for graft only (torch keeps its own)")
    parser.add_argument("--python", default=sys.executable, help="the python that has torch")
    parser.add_argument("--layers", default="784,4096,4096,10")
    parser.add_argument("--batches", default="1024,4096")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--save", help="also write every JSON line to this file")
    args = parser.parse_args()

    graft_env = dict(os.environ)
    if args.library_path:
        graft_env["LD_LIBRARY_PATH"] = ":".join(
            p for p in (args.library_path, os.environ.get("LD_LIBRARY_PATH", "")) if p)
    timeout = int(60 + 10 * args.seconds)
    runs, lines = [], []
    graft, torch = {}, {}
    for batch in args.batches.split(","):
        common = ["--layers", args.layers, "--batch", batch, "--seconds", str(args.seconds),
                  "--warmup", "1"]
        graft_command = [args.bench] + common + ["--sgemm-seconds", "1"]
        if args.plugin_dir:
            graft_command += ["--plugin-dir", args.plugin_dir]
        # A side that cannot run here (no GPU, no torch) is not asked again for the next batch.
        if not graft.get("unavailable"):
            print(f"graft {args.layers} batch {batch}", file=sys.stderr, flush=True)
            graft = measure(graft_command, graft_env, timeout)
        if not torch.get("unavailable"):
            print(f"torch {args.layers} batch {batch}", file=sys.stderr, flush=True)
            torch = measure([args.python, os.path.join(HERE, "bench_mlp_torch.py"), "--device",
                             "cuda"] + common, dict(os.environ), timeout)
        runs.append((int(batch), graft, torch))
        lines += [json.dumps(dict(graft, batch=int(batch))),
                  json.dumps(dict(torch, batch=int(batch)))]

    graft_run = next((g for _, g, _ in runs if "error" not in g), None)
    torch_run = next((t for _, _, t in runs if "error" not in t), None)
    print(f"\nGPU benchmark {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
          + (f"graft on {graft_run['device']}" if graft_run else "graft not measured") + "; "
          + (f"torch {torch_run['torch_version']} (CUDA {torch_run['torch_cuda']}) on "
             f"{torch_run['gpu']}" if torch_run else "torch not measured"))
    print("both: SGD lr 0.01 momentum 0.9, cross entropy, linear+relu hidden layers, 16 random "
          "batches preloaded in GPU memory and cycled, TF32 off\n")
    missed = report(runs, args.layers)
    if args.save:
        with open(args.save, "w") as out:
            out.write("\n".join(lines) + "\n")
    print("\ngoals: " + ("all met" if not missed else "MISSED: " + "; ".join(missed)))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
