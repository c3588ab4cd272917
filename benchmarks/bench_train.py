"""Training throughput of the one training loop (sasim.lm.fit), in tokens per second, against the ideal.

Usage::

    python benchmarks/bench_train.py                       # CPU: small and char-ptb, 1 and 2 processes
    python benchmarks/bench_train.py --device cuda         # GPU: 1 process, fp32 and bf16

Each case trains a preset's model (its exact sizes, batch, BPTT length and dropout) on random tokens for a few
optimizer steps after warm-up steps, through :func:`sasim.lm.fit.train_epoch`, and reports:

* tokens/s: global batch x BPTT x steps / wall time (all ranks together);
* FLOPs/token: 3 x the forward multiply-adds x 2 (a backward pass costs about twice the forward): the LSTM
  layers' ``4H x (I + H')`` and projections' ``P x H``, and the decoder's ``V x H'``;
* of peak: FLOPs/token x tokens/s against this machine's own peak, measured in the same run as the best
  matrix product of 4096 x 4096 x 4096 on the same cores or GPU (``torch.mm``): float32 on the CPU; on a GPU
  TF32 for fp32 training (cuDNN runs float32 LSTMs on TF32 tensor cores by default) and bf16 for bf16. This is
  the ceiling a kernel-bound LSTM could approach; the recurrence (one small product per step) keeps it below.

Two processes run under ``torchrun`` (gloo), each with half the batch and ``cores / 2`` threads, so that the
1- and 2-process figures use the same cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from sasim.lm.distributed import current, data_parallel, finish, init_from_env
from sasim.lm.fit import train_epoch
from sasim.lm.model import LSTMLanguageModel, ModelConfig
from sasim.lm.presets import get_preset

VOCAB = 50  # a character vocabulary (PTB-char has 50 symbols)


def flops_per_token(cfg, vocab: int = VOCAB) -> float:
    """Training FLOPs per token: 2 per multiply-add, times 3 for forward and backward."""
    mc = ModelConfig(vocab_size=vocab, emb_size=cfg.emb_size, hidden_size=cfg.hidden_size, num_layers=cfg.num_layers,
                     proj_size=cfg.proj_size)
    macs = 0
    for inp, hidden, proj in mc.layer_sizes():
        out = proj or hidden
        macs += 4 * hidden * (inp + out) + proj * hidden
    macs += vocab * (mc.layer_sizes()[-1][2] or cfg.hidden_size)
    return 3 * 2 * macs


def matmul_peak(device: torch.device, dtype=torch.float32, n: int = 4096, repeats: int = 5, tf32: bool = False) -> float:
    """The best FLOP/s of an ``n^3`` matrix product on ``device`` (``tf32``: float32 on TF32 tensor cores)."""
    torch.backends.cuda.matmul.allow_tf32 = tf32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(repeats + 1):
        _sync(device)
        t = time.perf_counter()
        torch.mm(a, b)
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(preset: str, device: torch.device, steps: int, warmup: int, precision: str) -> dict:
    """Train ``steps`` optimizer steps (after ``warmup``) of ``preset`` on random tokens; tokens/s of all ranks."""
    ranks = current()
    cfg = get_preset(preset)
    torch.manual_seed(1)
    model = LSTMLanguageModel(ModelConfig(
        vocab_size=VOCAB, emb_size=cfg.emb_size, hidden_size=cfg.hidden_size, num_layers=cfg.num_layers,
        proj_size=cfg.proj_size, dropout_e=cfg.dropout_e, dropout_h=cfg.dropout_h, dropout_i=cfg.dropout_i,
        dropout_o=cfg.dropout_o, weight_drop=cfg.weight_drop)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    data = torch.randint(0, VOCAB, (cfg.bptt * (steps + warmup) + 1, cfg.batch_size), device=device)
    shard = ranks.shard(data)
    forward = data_parallel(model, ranks)
    autocast = torch.bfloat16 if precision == "bf16" else None

    def run(n):
        ranks.barrier()
        _sync(device)
        t = time.perf_counter()
        train_epoch(model, shard[: cfg.bptt * n + 1], cfg, optimizer, forward=forward, positions=cfg.bptt * n,
                    autocast=autocast)
        _sync(device)
        ranks.barrier()
        return time.perf_counter() - t

    run(warmup)
    seconds = run(steps)
    tokens = cfg.bptt * cfg.batch_size * steps
    return {"preset": preset, "device": str(device), "processes": ranks.world_size, "precision": precision,
            "threads": torch.get_num_threads(), "steps": steps, "seconds": seconds, "tokens_per_s": tokens / seconds,
            "flops_per_token": flops_per_token(cfg)}


def _worker(args) -> None:
    """One rank of a multi-process case (under torchrun): measure, and rank 0 writes the result."""
    init_from_env("cpu")
    torch.set_num_threads(args.threads)
    result = measure(args.preset, torch.device("cpu"), args.steps, args.warmup, "fp32")
    if current().is_main:
        Path(args.result).write_text(json.dumps(result))
    finish()


def _two_processes(preset: str, steps: int, warmup: int, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", __file__,
               "--worker", "--preset", preset, "--steps", str(steps), "--warmup", str(warmup),
               "--threads", str(threads), "--result", str(result)]
        subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
        return json.loads(result.read_text())


def _print(row: dict, peak: float, peak_name: str = "peak") -> None:
    achieved = row["flops_per_token"] * row["tokens_per_s"]
    print(f"{row['preset']:9s} {row['device']:6s} {row['precision']:5s} {row['processes']:2d} proc x "
          f"{row['threads']:2d} thr  {row['tokens_per_s']:12,.0f} tok/s  {row['flops_per_token'] / 1e6:8.2f} MFLOP/tok  "
          f"{achieved / 1e9:9.2f} GFLOP/s  {100 * achieved / peak:5.1f}% of the {peak_name}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu (1 and 2 processes) or cuda (1 process)")
    parser.add_argument("--presets", default="small,char-ptb")
    parser.add_argument("--steps", type=int, default=0, help="timed steps (default: 20 small, 3 char-ptb on CPU)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--preset", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return _worker(args)
    device = torch.device(args.device)
    cores = os.cpu_count() or 1
    print(f"torch {torch.__version__}, {cores} CPU cores"
          + (f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""))
    if device.type == "cpu":
        torch.set_num_threads(cores)
        peak = matmul_peak(device)
        print(f"measured peak: float32 4096^3 matrix product on {cores} threads: {peak / 1e9:.1f} GFLOP/s")
        for preset in args.presets.split(","):
            steps = args.steps or (20 if preset == "small" else 3)
            torch.set_num_threads(cores)
            one = measure(preset, device, steps, args.warmup, "fp32")
            _print(one, peak)
            two = _two_processes(preset, steps, args.warmup, max(1, cores // 2))
            _print(two, peak)
            print(f"{preset}: 2 processes / 1 process = {two['tokens_per_s'] / one['tokens_per_s']:.2f}x", flush=True)
    else:
        peaks = {"fp32": matmul_peak(device), "tf32": matmul_peak(device, tf32=True),
                 "bf16": matmul_peak(device, torch.bfloat16)}
        torch.backends.cuda.matmul.allow_tf32 = False  # torch's default for matrix products
        print(", ".join(f"measured peak {k}: {v / 1e12:.1f} TFLOP/s" for k, v in peaks.items()))
        print("fp32 training is compared with the TF32 peak: cuDNN runs float32 LSTMs on TF32 tensor cores "
              f"(torch.backends.cudnn.allow_tf32 = {torch.backends.cudnn.allow_tf32})")
        for preset in args.presets.split(","):
            for precision, peak in (("fp32", "tf32"), ("bf16", "bf16")):
                _print(measure(preset, device, args.steps or 20, max(args.warmup, 3), precision), peaks[peak],
                       f"{peak} peak")


if __name__ == "__main__":
    main()
