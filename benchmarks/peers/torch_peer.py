"""PyTorch (CPU) on the shapes of SoftmaxBenchmark and ActivationBenchmark, as a native peer.

Prints each op's median time and its multiple of a copy of the same bytes, measured in the same
process and rounds, as `./lanes bench` prints Lanes' own: each round runs every op a few calls in a
row, so that a slow stretch of a shared machine hits every column alike. Outputs go into
preallocated tensors, as Lanes writes into the caller's memory.

Needs a CPU build of torch; it is not part of the Maven build. Run:
    python3 benchmarks/peers/torch_peer.py [threads ...]
"""
import statistics
import sys
import time

import torch
import torch.nn.functional as F


def median_us(ops, rounds, calls):
    """Per round, each op runs `calls` times in a row (as a JMH iteration does); the median over
    rounds of the mean call time. The first round only warms up."""
    samples = {name: [] for name in ops}
    for r in range(rounds + 1):
        for name, op in ops.items():
            t = time.perf_counter_ns()
            for _ in range(calls):
                op()
            elapsed = (time.perf_counter_ns() - t) / calls
            if r > 0:
                samples[name].append(elapsed / 1e3)
    return {name: statistics.median(v) for name, v in samples.items()}


def softmax_rows(rows, cols, rounds):
    g = torch.Generator().manual_seed(7)
    x = torch.randn(rows, cols, generator=g) * 4
    dy = torch.randn(rows, cols, generator=g)
    labels = torch.randint(0, cols, (rows,), generator=g)
    y = torch.softmax(x, dim=1)
    out = torch.empty_like(x)
    xg = x.clone().requires_grad_(True)

    def cross_entropy():
        # Loss and gradient, as Lanes' fused crossEntropy computes both.
        xg.grad = None
        F.cross_entropy(xg, labels).backward()

    ops = {
        "forward": lambda: torch.ops.aten._softmax.out(x, 1, False, out=out),
        "backward": lambda: torch.ops.aten._softmax_backward_data.out(dy, y, 1, torch.float32, grad_input=out),
        "crossEntropy": cross_entropy,
        "copy": lambda: out.copy_(x),
    }
    t = median_us(ops, rounds, 20)
    copy = t["copy"]
    # Bytes moved as Lanes' table counts them: forward and the loss read and write one matrix
    # (8 bytes per element), backward reads two and writes one (12 bytes).
    scale = {"forward": 1.0, "backward": 1.5, "crossEntropy": 1.0, "copy": 1.0}
    return [(f"{rows}x{cols}", name, t[name], t[name] / (copy * scale[name])) for name in ops]


def activations(n, rounds):
    g = torch.Generator().manual_seed(7)
    x = torch.randn(n, generator=g) * 3
    dy = torch.randn(n, generator=g)
    out = torch.empty_like(x)
    rows = []
    forward = {
        "relu": lambda v: torch.clamp_min(v, 0.0, out=out),
        "sigmoid": lambda v: torch.sigmoid(v, out=out),
        "tanh": lambda v: torch.tanh(v, out=out),
        "gelu": lambda v: torch._C._nn.gelu(v, out=out),
    }
    grad = torch.empty_like(x)
    for fn in forward:
        y = forward[fn](x).clone()
        bw = {
            "relu": lambda: torch.ops.aten.threshold_backward.grad_input(dy, x, 0.0, grad_input=grad),
            "sigmoid": lambda: torch.ops.aten.sigmoid_backward.grad_input(dy, y, grad_input=grad),
            "tanh": lambda: torch.ops.aten.tanh_backward.grad_input(dy, y, grad_input=grad),
            "gelu": lambda: torch.ops.aten.gelu_backward.grad_input(dy, x, grad_input=grad),
        }[fn]
        ops = {"forward": (lambda f=forward[fn]: f(x)), "backward": bw, "copy": lambda: out.copy_(x)}
        t = median_us(ops, rounds, 3)
        scale = {"forward": 1.0, "backward": 1.5, "copy": 1.0}
        rows += [(fn, name, t[name], t[name] / (t["copy"] * scale[name])) for name in ops]
    return rows


def main():
    threads = [int(a) for a in sys.argv[1:]] or [1, 2]
    print(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}")
    print(f"{'kernel':10} {'shape':10} {'threads':>7} {'op':13} {'torch us':>10} {'x copy':>7}")
    for t in threads:
        torch.set_num_threads(t)
        for rows, cols in ((1024, 1000), (64, 32000)):
            for shape, name, us, ratio in softmax_rows(rows, cols, 15):
                print(f"{'Softmax':10} {shape:10} {t:7d} {name:13} {us:10.1f} {ratio:7.2f}")
        for fn, name, us, ratio in activations(1 << 24, 10):
            print(f"{'Activation':10} {fn:10} {t:7d} {name:13} {us:10.1f} {ratio:7.2f}")


if __name__ == "__main__":
    main()
