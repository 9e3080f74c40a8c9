# PyTorch's twin of configs/char_gpt.toml (a character-level GPT on the fortunes corpus): --train
# trains it as graft does; --speed and --attention-only time its step and one attention pass.
"""Run with Debian's /usr/bin/python3 (python3-torch 1.13):
  gpt_reference.py --train [--steps 2000] [--json FILE] [--tie]
  gpt_reference.py --speed --context 128 [--attention both|mha|manual] [--seconds 6]
  gpt_reference.py --attention-only --context 4096 [--width 256 --heads 4]
--tie trains the tied variant (the output projection is the token embedding's N(0, 0.02) table,
no bias), as graft's README shows it with `tie`.
--speed and --attention-only print one JSON line per measurement; with --attention both each
implementation runs in its own subprocess, so that each peak RSS is its own."""
import argparse
import fnmatch
import json
import math
import os
import resource
import subprocess
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# configs/char_gpt.toml, restated; B batch, T context, C width, V vocabulary.
CORPUS = "/usr/share/games/fortunes"
V, C, HEADS, BLOCKS, B, T = 113, 128, 4, 4, 32, 128
LR, MIN_LR, WARMUP, BETAS, WEIGHT_DECAY, CLIP, SEED = 2e-3, 2e-4, 100, (0.9, 0.99), 0.1, 1.0, 1337


def peak_rss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def read_corpus():
    """The text plugin's stream: regular files not matching *.dat, sorted by name, as UTF-8."""
    names = sorted(n for n in os.listdir(CORPUS)
                   if not fnmatch.fnmatch(n, "*.dat")
                   and not os.path.islink(os.path.join(CORPUS, n))
                   and os.path.isfile(os.path.join(CORPUS, n)))
    text = "".join(open(os.path.join(CORPUS, n), encoding="utf-8", errors="replace").read()
                   for n in names)
    # test = the last llround(chars * 0.1) characters (plugins/datasets/common/token_windows.hpp)
    train_chars = len(text) - int(math.floor(len(text) * 0.1 + 0.5))
    train, test = text[:train_chars], text[train_chars:]
    alphabet = sorted(set(train))
    ids = {ch: i + 1 for i, ch in enumerate(alphabet)}  # id 0: a character not in train
    encode = lambda s: torch.tensor([ids.get(ch, 0) for ch in s], dtype=torch.long)
    return encode(train), encode(test), ["?"] + alphabet


def windows(tokens, context):
    """Sample i = tokens[i*T : i*T+T], target the next characters: (N, T) inputs and targets."""
    n = (len(tokens) - 1 - context) // context + 1
    starts = torch.arange(n) * context
    index = starts[:, None] + torch.arange(context)[None, :]
    return tokens[index], tokens[index + 1]


class ManualAttention(nn.Module):
    """Masked softmax attention written out: q k^T * scale, -inf above the diagonal, softmax, @ v."""

    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)      # fused q, k, v
        self.output = nn.Linear(width, width)

    def forward(self, x):                           # x (B, T, C)
        b, t, c = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(c // self.heads))  # (B, H, T, T)
        mask = torch.triu(torch.ones(t, t, dtype=torch.bool, device=x.device), diagonal=1)
        scores = scores.masked_fill(mask, float("-inf")).softmax(dim=-1)
        return self.output((scores @ v).transpose(1, 2).reshape(b, t, c))


class TorchAttention(nn.Module):
    """torch.nn.MultiheadAttention (its in_proj is the fused qkv) with a causal attn_mask."""

    def __init__(self, width, heads):
        super().__init__()
        self.inner = nn.MultiheadAttention(width, heads, batch_first=True)
        bound = 1.0 / math.sqrt(width)              # as nn.Linear(C, 3C), not MHA's xavier
        nn.init.uniform_(self.inner.in_proj_weight, -bound, bound)

    def forward(self, x):
        t = x.shape[1]
        mask = torch.triu(torch.ones(t, t, dtype=torch.bool, device=x.device), diagonal=1)
        return self.inner(x, x, x, attn_mask=mask, need_weights=False)[0]


ATTENTION = {"manual": ManualAttention, "mha": TorchAttention}


class Block(nn.Module):
    def __init__(self, attention):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.attention = ATTENTION[attention](C, HEADS)
        self.mlp = nn.Sequential(nn.Linear(C, 4 * C), nn.GELU(), nn.Linear(4 * C, C))

    def forward(self, x):
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class GPT(nn.Module):
    def __init__(self, attention="manual", context=T, tie=False):
        super().__init__()
        self.token = nn.Embedding(V, C)                       # N(0, 1)
        self.position = nn.Parameter(torch.randn(context, C) * 0.02)
        self.blocks = nn.Sequential(*[Block(attention) for _ in range(BLOCKS)])
        self.norm = nn.LayerNorm(C)
        self.head = nn.Linear(C, V)
        for module in self.modules():                        # graft's biases start at zero
            for name, parameter in module.named_parameters(recurse=False):
                if name.endswith("bias") and not isinstance(module, nn.LayerNorm):
                    nn.init.zeros_(parameter)
        if tie:                                              # nanoGPT's lm_head = wte
            nn.init.normal_(self.token.weight, std=0.02)
            self.head = nn.Linear(C, V, bias=False)
            self.head.weight = self.token.weight

    def forward(self, tokens):                               # tokens (B, T) -> logits (B, T, V)
        x = self.token(tokens) + self.position[: tokens.shape[1]]
        return self.head(self.norm(self.blocks(x)))


def make_optimizer(model, total_steps):
    """AdamW, decay on weights and embeddings only; warm-up then cosine to MIN_LR."""
    decay, plain, seen = [], [], set()
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if id(p) in seen:                                # a tied tensor, once
                continue
            seen.add(id(p))
            skip = isinstance(module, nn.LayerNorm) or name.endswith("bias")
            (plain if skip else decay).append(p)
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                                   {"params": plain, "weight_decay": 0.0}],
                                  lr=LR, betas=BETAS, eps=1e-8)

    def factor(s):  # LambdaLR's step s is 0-based: the lr of step s
        if s < WARMUP:
            return (s + 1) / WARMUP
        progress = min(1.0, (s - WARMUP) / max(1, total_steps - WARMUP))
        return (MIN_LR + (LR - MIN_LR) * 0.5 * (1 + math.cos(math.pi * progress))) / LR
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def train_step(model, optimizer, x, y):
    optimizer.zero_grad(set_to_none=True)
    logits = model(x)
    loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), y.reshape(-1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
    optimizer.step()
    return loss


@torch.no_grad()
def test_loss(model, x, y, batch=128):
    total = 0.0
    for i in range(0, len(x), batch):
        logits = model(x[i:i + batch])
        total += F.cross_entropy(logits.view(-1, V), y[i:i + batch].reshape(-1),
                                 reduction="sum").item()
    return total / y.numel()


@torch.no_grad()
def sample(model, alphabet, prompt="The ", length=200, temperature=0.8):
    ids = {ch: i for i, ch in enumerate(alphabet)}
    tokens = [ids.get(ch, 0) for ch in prompt]
    generator = torch.Generator().manual_seed(SEED)
    for _ in range(length):
        logits = model(torch.tensor([tokens[-T:]]))[0, -1] / temperature
        tokens.append(int(torch.multinomial(logits.softmax(-1), 1, generator=generator)))
    return "".join(alphabet[t] for t in tokens)


def train(args):
    torch.manual_seed(SEED)
    start = time.perf_counter()
    train_tokens, test_tokens, alphabet = read_corpus()
    assert len(alphabet) == V, f"vocabulary {len(alphabet)}, the config says {V}"
    x, y = windows(train_tokens, T)
    test_x, test_y = windows(test_tokens, T)
    model = GPT(args.attention, tie=args.tie)
    optimizer, schedule = make_optimizer(model, args.steps)
    order, cursor, window = torch.randperm(len(x)), 0, []
    for step in range(args.steps):
        if cursor + B > len(order):                          # a new epoch, a new order
            order, cursor = torch.randperm(len(x)), 0
        batch = order[cursor:cursor + B]
        cursor += B
        window.append(train_step(model, optimizer, x[batch], y[batch]).item())
        schedule.step()
        if (step + 1) % 100 == 0 or step + 1 == args.steps:
            print(f"step {step + 1} loss {sum(window) / len(window):.4f} "
                  f"{time.perf_counter() - start:.0f}s", file=sys.stderr, flush=True)
            last_train_loss, window = sum(window) / len(window), []
    train_seconds = time.perf_counter() - start
    model.eval()
    result = {"framework": "torch", "steps": args.steps, "attention": args.attention,
              "tie": args.tie, "parameters": sum(p.numel() for p in model.parameters()),
              "train_loss": last_train_loss, "test_loss": test_loss(model, test_x, test_y),
              "train_seconds": train_seconds, "wall_seconds": time.perf_counter() - start,
              "train_samples": len(x), "test_samples": len(test_x),
              "sample": sample(model, alphabet), "peak_rss_bytes": peak_rss_bytes()}
    print(json.dumps(result), flush=True)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(result, out, indent=1)


def speed(args):
    """Training steps on fixed random batches at context T, after warm-up; one JSON line."""
    torch.manual_seed(1)
    model = GPT(args.attention, args.context)
    optimizer, schedule = make_optimizer(model, 10 ** 6)
    pool = [(torch.randint(0, V, (B, args.context)), torch.randint(0, V, (B, args.context)))
            for _ in range(4)]
    step, warm_start = 0, time.perf_counter()
    while step < 2 or time.perf_counter() - warm_start < args.warmup:
        train_step(model, optimizer, *pool[step % 4])
        step += 1
    warmup_steps, start = step, time.perf_counter()
    while step - warmup_steps < 3 or time.perf_counter() - start < args.seconds:
        loss = train_step(model, optimizer, *pool[step % 4])
        step += 1
    seconds = time.perf_counter() - start
    steps = step - warmup_steps
    print(json.dumps({"event": "speed", "framework": "torch", "attention": args.attention,
                      "context": args.context, "batch": B, "steps": steps, "seconds": seconds,
                      "samples_per_s": steps * B / seconds, "last_loss": loss.item(),
                      "peak_rss_bytes": peak_rss_bytes()}), flush=True)


def attention_only(args):
    """One forward + backward of the written-out attention at batch 1, T x width."""
    torch.manual_seed(1)
    layer = ManualAttention(args.width, args.heads)
    x = torch.randn(1, args.context, args.width, requires_grad=True)
    rss_before = peak_rss_bytes()
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        layer(x).sum().backward()
        times.append(time.perf_counter() - start)
    print(json.dumps({"event": "attention", "framework": "torch", "context": args.context,
                      "width": args.width, "heads": args.heads, "seconds": min(times),
                      "peak_rss_bytes": peak_rss_bytes(), "rss_before_bytes": rss_before}),
          flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--train", action="store_true")
    mode.add_argument("--speed", action="store_true")
    mode.add_argument("--attention-only", action="store_true")
    parser.add_argument("--steps", type=int, default=2000, help="the config's [run] steps")
    parser.add_argument("--json", help="--train: also write the result here")
    parser.add_argument("--attention", default=None, choices=["both", "mha", "manual"])
    parser.add_argument("--context", type=int, default=T)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--warmup", type=float, default=1.5)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tie", action="store_true", help="--train: the tied variant")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.train:
        args.attention = args.attention or "manual"
        return train(args)
    if args.attention_only:
        return attention_only(args)
    if args.attention in (None, "both"):  # each in its own process: separate peak RSS
        for kind in ("mha", "manual"):
            command = [sys.executable, __file__] + [a for a in sys.argv[1:]
                                                    if a not in ("both", "--attention")]
            subprocess.run(command + ["--attention", kind], check=True)
        return
    speed(args)


if __name__ == "__main__":
    main()
