"""Run under ``torchrun`` by tests/lm/test_distributed.py: one training job per rank, with every file this rank opens
for writing recorded (a Python audit hook), and a per-rank report written at the end.

    torchrun --nproc_per_node N tests/lm/distributed_worker.py JOB REPORT_DIR DATA_DIR OUT [DENSE]

JOB is ``train`` (a tiny model, dropout off) or ``prune`` (joint pruning of DENSE with 2 events).
"""

import json
import os
import sys

WRITES = []
_recording = [True]


def _audit(event, args):
    if not _recording[0]:
        return
    if event == "open" and args[0] is not None and isinstance(args[0], (str, bytes, os.PathLike)):
        mode, flags = args[1], args[2] or 0
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
        if writing:
            WRITES.append(os.fsdecode(args[0]))
    elif event in ("os.rename", "os.replace"):
        WRITES.extend([os.fsdecode(args[0]), os.fsdecode(args[1])])
    elif event in ("os.remove", "os.mkdir"):
        WRITES.append(os.fsdecode(args[0]))


def main():
    job, report_dir, data_dir, out = sys.argv[1:5]
    sys.addaudithook(_audit)
    from sasim.lm.corpus import load_corpus
    from sasim.lm.distributed import finish, init_from_env
    from sasim.lm.presets import TrainConfig

    ranks = init_from_env("cpu")
    report = {"rank": ranks.rank, "world_size": ranks.world_size}
    if job == "train":
        from sasim.lm.train import train

        cfg = TrainConfig(emb_size=8, hidden_size=16, num_layers=2, bptt=10, batch_size=8, dropout_e=0.0,
                          dropout_h=0.0, dropout_i=0.0, dropout_o=0.0, weight_drop=0.0, lr=3e-3, epochs=2,
                          max_train_tokens=1200, seed=3)
        summary = train(load_corpus(data_dir), cfg, out, show_progress=False)
        report["curve"] = [{k: p[k] for k in ("train_loss", "valid_loss")} for p in summary["curve"]]
    elif job == "prune":
        from sasim.lm.loading import load_language_model
        from sasim.lm.presets import train_config_of
        from sasim.lm.prune import prune_combine_retrain
        from sasim.lm.train import retraining_data

        model, raw = load_language_model(sys.argv[5])
        cfg = train_config_of(raw, 4, 1500)
        data = retraining_data(model, raw, data_dir, cfg, "cpu", 4)
        packed, summary = prune_combine_retrain(model, data["train"], data["valid"], cfg, 4, 0.5, epochs=2, events=3,
                                                show_progress=False, log=lambda *_: None)
        report["events"] = len(summary["events"])
        report["masks"] = {name: buf.flatten().tolist() for name, buf in model.named_buffers() if ".mask_" in name}
        report["groups"] = [{key: p.group_cols.tolist() for key, p in layer.matrices()} for layer in packed]
    finish()
    _recording[0] = False
    report["writes"] = WRITES
    with open(os.path.join(report_dir, f"rank{ranks.rank}.json"), "w") as fh:
        json.dump(report, fh)


if __name__ == "__main__":
    main()
