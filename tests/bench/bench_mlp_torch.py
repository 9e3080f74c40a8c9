# PyTorch's side of the MLP speed benchmark: the same MLP, loss, optimizer and preloaded random
# batches as graft_bench_mlp (--device cuda: as graft_bench_mlp_gpu, TF32 off), timed the same
# way; prints one JSON line. Run with /usr/bin/python3 on the CPU; with the GPU machine's python.
import argparse
import ctypes
import json
import os
import re
import resource
import sys
import time

try:
    import torch
except ImportError as error:  # reported, not raised: the GPU runner prints the table without it
    torch = None
    TORCH_IMPORT_ERROR = f"{sys.executable} cannot import torch ({error})"

UNAVAILABLE = 3  # exit status when torch or CUDA is missing: nothing was measured


def status_bytes(key):
    """A line of /proc/self/status ("VmHWM", "VmRSS") in bytes; ru_maxrss without /proc."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return float(line.split()[1]) * 1024.0
    except OSError:
        pass
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024.0


def cpu_times():
    """Seconds the whole machine spent busy (/proc/stat) and this process's own CPU time."""
    with open("/proc/stat") as stat:
        fields = [float(v) for v in stat.readline().split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = fields
    busy = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return busy, usage.ru_utime + usage.ru_stime


def other_load(before, seconds):
    """Cores' worth of CPU other processes used since `before`, over `seconds`."""
    after = cpu_times()
    return max(0.0, ((after[0] - before[0]) - (after[1] - before[1])) / seconds)


def blas_report():
    """Which BLAS torch calls: its build's BLAS_INFO, the libraries mapped into this process,
    and, when it is OpenBLAS, the kernel it chose and its thread count."""
    config = torch.__config__.show()
    match = re.search(r"BLAS_INFO=([^,\s]+)", config)
    libraries = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1]
            if re.search(r"/lib(open)?blas[^/]*\.so", path):
                libraries.add(os.path.realpath(path))
    report = {"torch_blas_info": match.group(1) if match else "unknown",
              "blas_libraries": sorted(libraries)}
    try:
        openblas = ctypes.CDLL("libopenblas.so.0")  # the copy already loaded, if any
        openblas.openblas_get_corename.restype = ctypes.c_char_p
        report["blas_core"] = openblas.openblas_get_corename().decode()
        report["openblas_threads"] = openblas.openblas_get_num_threads()
    except OSError:
        report["blas_core"] = "not OpenBLAS"
    return report


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--layers", default="784,256,128,10")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--pool", type=int, default=16)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = parser.parse_args()
    widths = [int(w) for w in args.layers.split(",")]
    if torch is None:
        return unavailable(args, widths, TORCH_IMPORT_ERROR)
    cuda = args.device == "cuda"
    if cuda:
        if not torch.cuda.is_available():
            build = (f"built with CUDA {torch.version.cuda}" if torch.version.cuda
                     else "a CPU-only build")
            return unavailable(args, widths, f"torch {torch.__version__} ({build}) sees no usable "
                                             f"GPU: torch.cuda.is_available() is False")
        # float32 products, as graft's device with [run] tf32 = false.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.set_float32_matmul_precision("highest")
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    rss_after_import = status_bytes("VmRSS")

    # Preloaded batches: x (pool, B, D) normal, y (pool, B) int64 labels; on the device.
    xs = torch.randn(args.pool, args.batch, widths[0]).to(device)
    ys = torch.randint(0, widths[-1], (args.pool, args.batch)).to(device)
    batches = [(xs[p], ys[p]) for p in range(args.pool)]
    rss_before_model = status_bytes("VmRSS")

    modules = []
    for i in range(len(widths) - 1):
        modules.append(torch.nn.Linear(widths[i], widths[i + 1]))
        if i + 2 < len(widths):
            modules.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*modules).to(device)
    criterion = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    parameters = sum(p.numel() for p in model.parameters())

    step = 0
    losses = []

    def train_step():
        nonlocal step
        x, y = batches[step % args.pool]
        optimizer.zero_grad(set_to_none=True)
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        if step == 0:
            losses.append(loss.item())
        step += 1
        return loss

    warmup_start = time.perf_counter()
    while step < 3 or time.perf_counter() - warmup_start < args.warmup:
        train_step()
    warmup_steps = step
    sync()
    cpu_before = cpu_times()
    start = time.perf_counter()
    while step - warmup_steps < 5 or time.perf_counter() - start < args.seconds:
        loss = train_step()
    sync()
    seconds = time.perf_counter() - start
    other_cores = other_load(cpu_before, seconds)
    timed_steps = step - warmup_steps
    last_loss = loss.item()
    samples_per_second = timed_steps * args.batch / seconds

    out = {"framework": "torch", "torch_version": torch.__version__, "layers": widths,
           "batch": args.batch, "threads": torch.get_num_threads(),
           "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
           "warmup_steps": warmup_steps, "steps": timed_steps, "seconds": seconds,
           "other_load_cores": other_cores,
           "samples_per_s": samples_per_second, "parameters": parameters,
           "gflops": 6.0 * parameters * samples_per_second / 1e9,
           "first_loss": losses[0], "last_loss": last_loss,
           "peak_rss_bytes": status_bytes("VmHWM"),
           "rss_after_import_bytes": rss_after_import,
           "rss_before_model_bytes": rss_before_model, "device": args.device,
           "flops_per_step": product_flops(widths, args.batch)}
    out["tflops"] = out["flops_per_step"] * timed_steps / seconds / 1e12
    if cuda:
        out.update({"gpu": torch.cuda.get_device_name(), "torch_cuda": torch.version.cuda,
                    "tf32": torch.backends.cuda.matmul.allow_tf32,
                    "peak_gpu_allocated_bytes": torch.cuda.max_memory_allocated()})
    else:
        out.update(blas_report())
    print(json.dumps(out), flush=True)
    return 0


def product_flops(widths, batch):
    """FLOPs of a step's matrix products: forward, weight gradient and, past the first layer
    (whose input needs no gradient), input gradient; as graft_bench_mlp_gpu counts them."""
    return sum((3 if i else 2) * 2 * batch * widths[i] * widths[i + 1]
               for i in range(len(widths) - 1))


def unavailable(args, widths, reason):
    """Says why nothing was measured: on stderr, and as a JSON line the runners keep."""
    print(f"bench_mlp_torch.py: {reason}", file=sys.stderr, flush=True)
    print(json.dumps({"framework": "torch", "device": args.device, "layers": widths,
                      "batch": args.batch, "error": reason}), flush=True)
    return UNAVAILABLE


if __name__ == "__main__":
    sys.exit(main())
