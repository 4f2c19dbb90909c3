"""Inst2vecLSTM's last-step readout against a packed sequence, measured in the same run.

Both give the top layer's state after each program's last statement; the packed form steps through
the sequence outside oneDNN's fused CPU kernel. Reports the median seconds of a training step
(forward and backward) of each, their ratio, and the largest difference between the two states.

    .venv/bin/python benchmarks/lstm_readout.py [--batch 64] [--length 512] [--repeats 5] [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from torch.nn.utils.rnn import pack_padded_sequence

from ncc.models import build_model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--length", type=int, default=512, help="the longest sequence (max_length)")
    parser.add_argument("--median-length", type=int, default=140, help="POJ-104's median statements per program")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--output", type=Path,
                        default=Path(__file__).resolve().parent / "results" / "lstm_readout.json")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    device = torch.device(args.device)
    model = build_model("lstm", vocab_size=8).to(device)  # NCC's sizes: 200-wide statements, 2 x LSTM(200)
    lstm = model.lstm
    padded = torch.randn(args.batch, args.length, 200, device=device)
    # Lengths spread around the median, capped at max_length, as POJ-104's programs are.
    lengths = torch.clamp(torch.distributions.LogNormal(torch.log(torch.tensor(float(args.median_length))), 0.8)
                          .sample((args.batch,)).long(), 1, args.length)
    lengths[0] = args.length

    def packed_state() -> torch.Tensor:
        packed = pack_padded_sequence(padded, lengths, batch_first=True, enforce_sorted=False)
        return lstm(packed)[1][0][-1]

    def last_step_state() -> torch.Tensor:
        return model._last_state(padded, lengths.to(device))

    def timed(readout) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        lstm.zero_grad()
        readout().sum().backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - started

    with torch.no_grad():
        difference = float((packed_state() - last_step_state()).abs().max())
    seconds = {"packed": [], "last_step": []}
    for _ in range(args.repeats):  # interleaved, so both see the same machine load
        seconds["packed"].append(timed(packed_state))
        seconds["last_step"].append(timed(last_step_state))
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    report = json.dumps({"device": str(device), "batch": args.batch, "max_length": args.length,
                         "threads": torch.get_num_threads(), "median_step_s": medians,
                         "speedup": medians["packed"] / medians["last_step"],
                         "programs_per_s_last_step": args.batch / medians["last_step"],
                         "max_state_difference": difference}, indent=2)
    print(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
