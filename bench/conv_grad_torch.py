"""Times PyTorch CPU Conv forward, input gradient and weight gradient for the
shapes of bench/conv_grad.ts (2 threads, median and minimum of several runs
after warm-up, ms). Run: /usr/bin/python3 bench/conv_grad_torch.py [--runs 7]"""
import argparse
import time

import torch

CASES = [
    ("ref 64x128->128 16x16 3x3", 64, 128, 128, 16, 3, 1, 1),
    ("r18c stem 3->64 32x32 3x3", 32, 3, 64, 32, 3, 1, 1),
    ("r18c 64->64 32x32 3x3", 32, 64, 64, 32, 3, 1, 1),
    ("r18c 64->128 32x32 3x3 s2", 32, 64, 128, 32, 3, 2, 1),
    ("r18c 64->128 32x32 1x1 s2", 32, 64, 128, 32, 1, 2, 0),
    ("r18c 128->128 16x16 3x3", 32, 128, 128, 16, 3, 1, 1),
    ("r18c 128->256 16x16 3x3 s2", 32, 128, 256, 16, 3, 2, 1),
    ("r18c 128->256 16x16 1x1 s2", 32, 128, 256, 16, 1, 2, 0),
    ("r18c 256->256 8x8 3x3", 32, 256, 256, 8, 3, 1, 1),
    ("r18c 256->512 8x8 3x3 s2", 32, 256, 512, 8, 3, 2, 1),
    ("r18c 256->512 8x8 1x1 s2", 32, 256, 512, 8, 1, 2, 0),
    ("r18c 512->512 4x4 3x3", 32, 512, 512, 4, 3, 1, 1),
    ("imagenet stem 3->64 224 7x7 s2", 32, 3, 64, 224, 7, 2, 3),
]


def timed(fn, runs):
    for _ in range(2):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return times[len(times) // 2], times[0]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", default="")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__} CPU, {args.threads} threads, median (min) of {args.runs} runs, ms")
    for name, n, c, k, size, kernel, stride, pad in CASES:
        if args.only not in name:
            continue
        x = torch.randn(n, c, size, size)
        w = torch.randn(k, c, kernel, kernel)
        conv = lambda a, b: torch.nn.functional.conv2d(a, b, stride=stride, padding=pad)
        with torch.no_grad():
            y = conv(x, w)
        dy = torch.randn_like(y)
        grad_input = lambda: torch.nn.grad.conv2d_input(x.shape, w, dy, stride=stride, padding=pad)
        grad_weight = lambda: torch.nn.grad.conv2d_weight(x, w.shape, dy, stride=stride, padding=pad)

        def backward_both():
            xr = x.detach().requires_grad_()
            wr = w.detach().requires_grad_()
            conv(xr, wr).backward(dy)

        with torch.no_grad():
            rows = [("fwd", timed(lambda: conv(x, w), args.runs))]
            rows.append(("dx", timed(grad_input, args.runs)))
            rows.append(("dw", timed(grad_weight, args.runs)))
        rows.append(("fwd+bwd (autograd)", timed(backward_both, args.runs)))
        print(f"\n{name}")
        for label, (med, best) in rows:
            print(f"  {label:<24} {med:8.1f} ({best:.1f})")


if __name__ == "__main__":
    main()
