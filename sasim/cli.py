"""The ``sasim`` command line. Subcommands only parse, call the library, and print.

Any :class:`~sasim.errors.SasimError` ends the command with one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys

from sasim.errors import SasimError


def _cmd_train(args) -> int:
    import torch

    from sasim.lm.corpus import load_corpus
    from sasim.lm.presets import get_preset
    from sasim.lm.train import train

    cfg = get_preset(args.preset)
    if args.epochs is not None:
        cfg.epochs = args.epochs
    if args.seed is not None:
        cfg.seed = args.seed
    if args.threads:
        torch.set_num_threads(args.threads)
    corpus = load_corpus(args.data)
    summary = train(corpus, cfg, args.out, device=args.device, resume=args.resume, preset=args.preset)
    print(f"best valid loss {summary['best_valid_loss']:.4f} nats at epoch {summary['best_epoch']}; "
          f"saved {args.out}")
    return 0


def _cmd_eval(args) -> int:
    from sasim.lm.loading import evaluate_checkpoint

    result = evaluate_checkpoint(args.weights, args.data, split=args.split, batch_size=args.batch)
    name = "bpc" if "bpc" in result else "ppl"
    print(f"{args.split}: {name} {result[name]:.4f}  (loss {result['loss_nats']:.4f} nats/token, "
          f"{result['tokens']} tokens, batch {args.batch})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from sasim import __version__

    parser = argparse.ArgumentParser(prog="sasim", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"sasim {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train an LSTM language model")
    p.add_argument("--data", required=True, help="corpus directory with train.txt, valid.txt, test.txt")
    p.add_argument("--preset", default="small", help="small | char-ptb | enwik8")
    p.add_argument("--out", required=True, help="checkpoint to write (best validation)")
    p.add_argument("--epochs", type=int, help="override the preset's epochs")
    p.add_argument("--seed", type=int, help="override the preset's seed")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, or auto")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--resume", action="store_true", help="continue from OUT.latest.pt")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("eval", help="bits per character / perplexity of a checkpoint")
    p.add_argument("--weights", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="test", choices=["valid", "test"])
    p.add_argument("--batch", type=int, default=10, help="parallel streams (awd-lstm-lm uses 10)")
    p.set_defaults(func=_cmd_eval)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except SasimError as exc:
        print(f"sasim {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sasim: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
