# PyTorch's side of the conv2d speed benchmark: torch.nn.functional.conv2d forward + backward
# on the same shapes and batch as graft_bench_conv, timed the same way; prints one JSON line.
import argparse
import json
import os
import resource
import time

import torch
import torch.nn.functional as F

# name: (C, H, W, O, whether dx is needed); all 3x3 with padding 1, as in configs/fashion_cnn.toml.
SHAPES = {"conv1": (1, 28, 28, 32, False), "conv2": (32, 14, 14, 64, True)}


def machine_busy_seconds():
    """CPU seconds the whole machine has been busy (/proc/stat); over a measurement, minus this
    process's own, what other processes took."""
    with open("/proc/stat") as stat:
        fields = [float(v) for v in stat.readline().split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shape", required=True, choices=sorted(SHAPES))
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    c, h, w, o, needs_dx = SHAPES[args.shape]
    n = args.batch

    # The first layer's input needs no gradient, so autograd skips dx there, as graft does.
    x = (0.1 * torch.randn(n, c, h, w)).requires_grad_(needs_dx)
    weight = (0.1 * torch.randn(o, c, 3, 3)).requires_grad_(True)
    bias = (0.1 * torch.randn(o)).requires_grad_(True)
    dy = 0.1 * torch.randn(n, o, h, w)
    forward_seconds = backward_seconds = 0.0
    steps = 0

    def step():
        nonlocal forward_seconds, backward_seconds, steps
        t = time.perf_counter()
        y = F.conv2d(x, weight, bias, padding=1)
        forward_seconds += time.perf_counter() - t
        t = time.perf_counter()
        y.backward(dy)  # accumulates into .grad, as graft's backward does
        backward_seconds += time.perf_counter() - t
        steps += 1

    warmup_start = time.perf_counter()
    while steps < 3 or time.perf_counter() - warmup_start < args.warmup:
        step()
    steps = 0
    forward_seconds = backward_seconds = 0.0
    busy_before, own_before = machine_busy_seconds(), own_cpu_seconds()
    start = time.perf_counter()
    while steps < 5 or time.perf_counter() - start < args.seconds:
        step()
    seconds = time.perf_counter() - start
    own = own_cpu_seconds() - own_before
    others = machine_busy_seconds() - busy_before - own
    flops_per_sample = 2.0 * o * h * w * c * 9
    print(json.dumps({
        "framework": "torch", "torch_version": torch.__version__, "shape": args.shape,
        "input": [c, h, w], "out_channels": o, "needs_dx": needs_dx, "batch": n,
        "threads": torch.get_num_threads(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
        "steps": steps, "seconds": seconds, "samples_per_s": steps * n / seconds,
        "forward_ms": 1e3 * forward_seconds / steps, "backward_ms": 1e3 * backward_seconds / steps,
        "gflops": flops_per_sample * (3 if needs_dx else 2) * steps * n / seconds / 1e9,
        "cpu_ms_per_step": 1e3 * own / steps, "other_load_cores": max(0.0, others / seconds),
    }), flush=True)


if __name__ == "__main__":
    main()
