# The tables of run_gpt_bench.sh from its JSON lines: graft vs the faster PyTorch attention at
# each context, long-context attention, cached generation; exit 1 when a goal is missed.
import json
import sys

MIB = 1024.0 * 1024.0
SPEED_GOALS = {128: 1.0, 512: 1.3}  # graft samples/s over the faster torch, at context T
RSS_GOAL = 0.5                      # graft peak RSS over that torch's
GENERATE_GOAL = 5.0                 # cached tokens/s over --no-cache


def main(path):
    events = [json.loads(line) for line in open(path) if line.strip()]
    missed = []
    for e in events:
        if e["event"] == "machine":
            print(f"{e['date']}  {e['cpu']}, {e['cores']} cores, load {e['load_before']}, "
                  f"OPENBLAS env: {e['openblas_env'].strip() or '(none)'}")
        if e["event"] == "load_after":
            print(f"load after: {e['load']}")
    speed = [e for e in events if e["event"] == "speed"]
    print("\ntraining step (batch 32, 2 threads): samples/s and peak RSS")
    print(f"{'T':>5} {'graft':>8} {'torch mha':>10} {'torch manual':>13} {'faster':>7} "
          f"{'ratio':>6} {'goal':>6} {'graft RSS':>10} {'torch RSS':>10} {'RSS ratio':>9}")
    for context in sorted({e["context"] for e in speed}):
        graft = [e for e in speed if e["context"] == context and e["framework"] == "graft"]
        torch = {e["attention"]: e for e in speed
                 if e["context"] == context and e["framework"] == "torch"}
        if not graft or not torch:
            missed.append(f"context {context}: a side did not run")
            continue
        g = graft[0]
        best = max(torch.values(), key=lambda e: e["samples_per_s"])
        ratio = g["samples_per_s"] / best["samples_per_s"]
        rss_ratio = g["peak_rss_bytes"] / best["peak_rss_bytes"]
        goal = SPEED_GOALS.get(context)
        rate = lambda kind: f"{torch[kind]['samples_per_s']:.1f}" if kind in torch else "-"
        print(f"{context:>5} {g['samples_per_s']:>8.1f} {rate('mha'):>10} {rate('manual'):>13} "
              f"{best['attention']:>7} {ratio:>5.2f}x {goal or '-':>6} "
              f"{g['peak_rss_bytes'] / MIB:>6.0f} MiB {best['peak_rss_bytes'] / MIB:>6.0f} MiB "
              f"{rss_ratio:>9.3f}")
        if goal and ratio < goal:
            missed.append(f"context {context}: {ratio:.2f}x torch, goal {goal}x")
        if rss_ratio > RSS_GOAL:
            missed.append(f"context {context}: peak RSS {rss_ratio:.3f} of torch's, goal "
                          f"<= {RSS_GOAL}")

    attention = [e for e in events if e["event"] == "attention"]
    if attention:
        print("\nattention forward + backward, batch 1, C = 256, 4 heads (best of 2)")
        print(f"{'T':>5} {'graft s':>8} {'graft peak RSS':>15} {'torch s':>8} "
              f"{'torch peak RSS':>15} {'torch RSS - before':>19}")
        for context in sorted({e["context"] for e in attention}):
            side = {e["framework"]: e for e in attention if e["context"] == context}
            g, t = side.get("graft"), side.get("torch")
            cell = lambda e, key, scale=1.0, f="{:.3f}": f.format(e[key] / scale) if e else "-"
            print(f"{context:>5} {cell(g, 'seconds'):>8} "
                  f"{cell(g, 'peak_rss_bytes', MIB, '{:.0f} MiB'):>15} "
                  f"{cell(t, 'seconds'):>8} {cell(t, 'peak_rss_bytes', MIB, '{:.0f} MiB'):>15} "
                  + (f"{(t['peak_rss_bytes'] - t['rss_before_bytes']) / MIB:>15.0f} MiB"
                     if t else ""))

    generate = {e["cache"]: e["tokens_per_s"] for e in events if e["event"] == "generate"}
    if generate:
        cached, uncached = generate.get("cached"), generate.get("no-cache")
        if cached and uncached:
            ratio = cached / uncached
            print(f"\ngraft generate, 500 tokens: {cached:.1f} tokens/s cached, {uncached:.1f} "
                  f"with --no-cache: {ratio:.1f}x (goal >= {GENERATE_GOAL}x)")
            if ratio < GENERATE_GOAL:
                missed.append(f"generation: cached {ratio:.1f}x --no-cache, goal {GENERATE_GOAL}x")
        else:
            missed.append("generation: no tokens/s read from graft generate")

    for line in missed:
        print("MISSED: " + line)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
