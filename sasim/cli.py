"""The ``sasim`` command line. Subcommands only parse, call the library, and print.

Any :class:`~sasim.errors.SasimError` ends the command with one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from sasim.checks import MAX_ALPHA, MAX_COUNT, MAX_GAMMA, MAX_SEED, arg_type, check_device, check_float, check_int
from sasim.errors import SasimError

# Each command imports what it needs inside its function: `sasim --help` and a refused flag must not pay for
# importing torch, numba and pydantic (about a second).


def _cmd_train(args) -> int:
    from sasim.api.train import Train, train_model

    result = train_model(Train(data=args.data, out=args.out, preset=args.preset, epochs=args.epochs, seed=args.seed,
                               proj_size=args.proj_size, max_train_tokens=args.max_train_tokens, device=args.device,
                               threads=args.threads, resume=args.resume, precision=args.precision))
    if result.best_valid_loss is None:  # a rank other than 0 under torchrun: it saved nothing to report
        return 0
    print(f"best valid loss {result.best_valid_loss:.4f} nats at epoch {result.summary['best_epoch']}; "
          f"saved {args.out}")
    return 0


def _cmd_eval(args) -> int:
    from sasim.api.evaluate import Evaluate, evaluate
    from sasim.sim.metrics import accuracy_name

    result = evaluate(Evaluate(weights=args.weights, data=args.data, split=args.split, batch_size=args.batch))
    name = accuracy_name(result)
    q = result.get("quantization")
    how = (f"; LSTM layers in fixed point: {q['weight_bits']}-bit weights, {q['act_bits']}-bit activations, "
           f"{q['acc_bits']}-bit accumulators, vector unit {q['vector_bits'] or 'float32'}" if q else "")
    print(f"{args.split}: {name} {result[name]:.4f}  (loss {result['loss_nats']:.4f} nats/token, "
          f"{result['tokens']} tokens, batch {args.batch}{how})")
    return 0


def _cmd_validate(args) -> int:
    from sasim.hw.config import load_hw_config, resolve_hw_path

    hw = load_hw_config(args.file)
    a = hw.array
    print(f"{resolve_hw_path(args.file)}: valid (schema version {hw.version}): {hw.name}, {a.rows} x {a.cols} PEs, "
          f"mux_fanin {a.mux_fanin}, {hw.arithmetic.mode} {hw.arithmetic.number_format}, {hw.clock_hz / 1e9:g} GHz")
    return 0


def _packing_args(args) -> dict | None:
    if args.alpha is None and args.gamma is None:
        for flag in ("rule", "policy", "section", "row_cap"):
            if getattr(args, flag) is not None:
                raise SasimError(f"--{flag.replace('_', '-')} only applies when packing; give --alpha and --gamma too")
        return None
    if args.alpha is None or args.gamma is None:
        raise SasimError("packing needs both --alpha and --gamma")
    return dict(alpha=args.alpha, gamma=args.gamma, rule=args.rule or "prune", policy=args.policy or "paper",
                section=256 if args.section is None else args.section, row_cap=args.row_cap)


def _layer_rules(args) -> dict:
    """The LSTM-specific hardware rules of ``sasim run``."""
    if (args.per_gate or args.no_mix) and args.alpha is None:
        raise SasimError("--per-gate and --no-mix only apply when packing; give --alpha and --gamma too")
    return dict(per_gate=args.per_gate, mix_ih_hh=not args.no_mix)


def _emit(args, title, hw, parts, total, settings, extra_lines=()) -> None:
    from sasim.report.json_report import build_report, write_json
    from sasim.report.table import print_report

    print_report(title, parts, total, extra_lines)
    if args.json:
        write_json(args.json, build_report(hw, total, parts, **settings))
        print(f"wrote {args.json}")


def _cmd_gemm(args) -> int:
    from sasim.api.simulate import Gemm, Packing, run_gemm

    packing = _packing_args(args)
    spec = Gemm(hw=args.hw, m=args.m, n=args.n, k=args.k, density=args.density, timing=args.timing, mode=args.mode,
                seed=args.seed, packing=Packing(**packing) if packing else None, dataflow=args.dataflow)
    result = run_gemm(spec)
    hw, total = result.hw, result.total
    lines = [f"latency {total['latency_s'] * 1e6:.3f} us at {hw.clock_hz / 1e9:g} GHz; energy {total['energy_j'] * 1e6:.3f} uJ"]
    if "scalesim_total_cycles" in total:
        lines.append(f"scalesim_total_cycles {total['scalesim_total_cycles']:,} (SCALE-Sim v3 convention: cycles - 1)")
    if "max_abs_error_vs_numpy" in total:
        lines.append(f"outputs: max |array - numpy| = {total['max_abs_error_vs_numpy']:.3g}")
    _emit(args, f"sasim gemm on {hw.name}: M={args.m} N={args.n} K={args.k} density={args.density} "
          f"({hw.array.dataflow}, {args.mode}, {args.timing} timing)", hw, result.parts, total, result.settings, lines)
    return 0


SCALESIM_COLUMNS = [("layer", "layer", "{}"), ("M", "M", "{:,}"), ("N", "N", "{:,}"), ("K", "K", "{:,}"),
                    ("scalesim_total_cycles", "SCALE-Sim Total Cycles", "{:,}"), ("tiles", "tiles", "{:,}"),
                    ("cycles", "sasim cycles", "{:,}"), ("stall_cycles", "stalls", "{:,}"),
                    ("utilization", "util", "{:.3f}"), ("energy_j", "energy uJ", "{:.3f}")]


def _cmd_scalesim(args) -> int:
    from tqdm.auto import tqdm

    from sasim.api.scalesim import ScaleSimRun, run_scalesim
    from sasim.api.simulate import Packing
    from sasim.outputs import check_output_file
    from sasim.report.json_report import build_records_report, write_json
    from sasim.report.table import print_records, write_records_csv

    packing = _packing_args(args)
    spec = ScaleSimRun(config=args.config, topology=args.topology, gemm=args.gemm, hw=args.hw,
                       packing=Packing(**packing) if packing else None, density=args.density, mode=args.mode,
                       seed=args.seed, dataflow=args.dataflow)
    csv_path = check_output_file(args.csv or f"{Path(args.topology).stem}.sasim.csv", "--csv")
    if args.json:
        check_output_file(args.json, "--json")
    result = run_scalesim(spec, lambda count: tqdm(total=count, desc="layers", disable=count < 20, delay=0.5))
    for line in result.warnings:
        print(f"warning: {line}", file=sys.stderr)
    hw = result.hw
    rows = [{**r, "energy_j": r["energy_j"] * 1e6} for r in result.records]
    total = sum(r["scalesim_total_cycles"] for r in result.records)
    lines = [f"SCALE-Sim Total Cycles is what SCALE-Sim v3.0.0 reports for each dense layer (CALC bandwidth, no "
             f"overlap); summed over the layers: {total:,}",
             f"sasim cycles: {'packed ' + str(packing) if packing else 'dense'}, double-buffered, with "
             f"{args.hw}'s bandwidths and energies at {hw.clock_hz / 1e9:g} GHz"]
    write_records_csv(result.records, csv_path)
    lines.append(f"wrote {csv_path}")
    if args.json:
        write_json(args.json, build_records_report(hw, result.records, warnings=result.warnings, **result.settings))
        lines.append(f"wrote {args.json}")
    print_records(f"sasim scalesim: {result.config.run_name} ({Path(args.topology).name}) on a {hw.array.rows} x "
                  f"{hw.array.cols} array (SCALE-Sim ArrayHeight {result.config.array_height}, ArrayWidth "
                  f"{result.config.array_width}), {hw.array.dataflow}", rows, SCALESIM_COLUMNS, lines)
    return 0


def _run_workload(args) -> int:
    from tqdm.auto import tqdm

    from sasim.api.simulate import Packing, RunWorkload, run_workload

    if args.data:
        raise SasimError("--data needs a trained checkpoint (--weights); a --workload has synthetic weights")
    packing = _packing_args(args)
    spec = RunWorkload(hw=args.hw, workload=args.workload, batch=args.batch, steps=args.steps, timing=args.timing,
                       mode=args.mode, seed=args.seed, packing=Packing(**packing) if packing else None,
                       dataflow=args.dataflow)
    result = run_workload(spec, lambda count, quiet: tqdm(total=count, desc="matrices", disable=quiet, delay=0.5))
    hw, total, info = result.hw, result.total, result.extra
    batch, steps = info["batch"], info["steps"]
    lines = [f"cycles per token (one step of all {batch} streams; QRNN sequences / {steps}): "
             + ", ".join(f"{k} {v:,.0f}" for k, v in info["kinds"].items())
             + f"; total {total['cycles_per_step']:,.0f} = {total['latency_per_step_s'] * 1e6:.2f} us",
             f"weights {'fit in' if result.resident else 'exceed'} the weight SRAM; energy per step "
             f"{total['energy_j'] / steps * 1e3:.3f} mJ"]
    if "max_abs_error_vs_numpy" in total:
        lines.append(f"outputs: max |array - numpy| = {total['max_abs_error_vs_numpy']:.3g}")
    _emit(args, f"sasim run: workload {info['name']} on {hw.name} ({hw.array.dataflow}), batch {batch}, "
          f"{steps} step(s), {args.mode}, "
          f"{args.timing} timing", hw, result.parts, total, result.settings, lines)
    return 0


def _cmd_run(args) -> int:
    from tqdm.auto import tqdm

    from sasim.api.simulate import Packing, RunCheckpoint, run_checkpoint
    from sasim.sim.metrics import accuracy_name

    if args.workload:
        if args.weights is not None:
            raise SasimError("give either --weights or --workload, not both")
        return _run_workload(args)
    packing = _packing_args(args)
    rules = _layer_rules(args)
    spec = RunCheckpoint(hw=args.hw, weights=resolve_weights(args.weights or default_weights()),
                         batch=1 if args.batch is None else args.batch, steps=1 if args.steps is None else args.steps,
                         timing=args.timing, mode=args.mode, seed=args.seed,
                         packing=Packing(**packing, **rules) if packing else None, data=args.data, split=args.split,
                         dataflow=args.dataflow)
    with tqdm(total=spec.steps, desc="timesteps", disable=spec.steps < 2 or spec.mode == "analytic") as bar:
        result = run_checkpoint(spec, progress=bar)
    hw, total = result.hw, result.total
    lines = [
        f"latency: {total['cycles_per_step']:,.0f} cycles per timestep = {total['latency_per_step_s'] * 1e6:.3f} us "
        f"per token (each of the {spec.batch} streams advances one token per step); {spec.steps} step(s): "
        f"{total['cycles']:,} cycles = {total['latency_s'] * 1e6:.3f} us at {hw.clock_hz / 1e9:g} GHz",
        f"traffic: SRAM {total['sram_bytes'] / 1e6:.3f} MB, DRAM {total['dram_bytes'] / 1e6:.3f} MB "
        f"(weights {'resident in' if result.resident else 'do not fit'} the "
        f"{hw.memory.weight_sram_bytes / 2**20:g} MiB weight SRAM); energy {total['energy_j'] * 1e6:.3f} uJ",
    ]
    if result.fixed_point:
        lines.append(f"note: {hw.name} is fixed point: the cycle counts above include its arithmetic "
                     f"({hw.arithmetic.mode}); the table's values were computed in float32"
                     + ("; accuracy below uses the array's integer arithmetic" if spec.data else ""))
    if result.accuracy is not None:
        accuracy = result.accuracy
        name = accuracy_name(accuracy)
        lines.append(f"accuracy with the weights the array holds: {spec.split} {name} {accuracy[name]:.4f} "
                     f"({accuracy['tokens']:,} tokens of {spec.data}"
                     + (f"; {hw.arithmetic.weight_bits}-bit weights, {hw.arithmetic.act_bits}-bit activations, "
                        f"{hw.arithmetic.acc_bits}-bit accumulators, "
                        + ("the checkpoint's stored scales" if result.stored_scales else
                           "calibrated on 20,000 training tokens") if result.fixed_point else "")
                     + ")")
    if args.plot:
        from sasim.report.plots import plot_run

        plot_run(result.parts, total, hw, args.plot, title=f"{Path(result.workload_path).name} on {hw.name}")
        lines.append(f"wrote {args.plot}")
    _emit(args, f"sasim run: {result.workload_path} ({result.layout}, {result.layers} LSTM layers) on {hw.name} "
          f"({hw.array.dataflow}), "
          f"batch {spec.batch}, {spec.steps} step(s), {spec.mode}, {spec.timing} timing", hw, result.parts, total,
          result.settings, lines)
    return 0


def _cmd_combine(args) -> int:
    from sasim.api.combine import Combine, combine
    from sasim.api.simulate import Packing
    from sasim.report.json_report import write_json

    pattern = args.pattern.strip().lower()
    packing = _packing_args(args)
    # the flag combinations Combine refuses, said in flags
    if pattern == "combine" and packing is None:
        raise SasimError("sasim combine needs --alpha and --gamma (or another --pattern: nm:N:M, block:RxC, "
                         "unstructured)")
    if pattern != "combine" and packing is not None:
        raise SasimError(f"--alpha and --gamma are column combining's; the pattern {args.pattern} takes --sparsity "
                         "(block, unstructured) or nothing (N:M)")
    if args.sparsity is not None and pattern.startswith("nm"):
        raise SasimError("an N:M pattern sets its own sparsity (1 - N/M); leave out --sparsity")
    report = combine(Combine(weights=args.weights, out=args.out, pattern=pattern,
                             packing=Packing(**packing) if packing else None, sparsity=args.sparsity,
                             tensors=tuple(args.tensor or ()), mux_fanin=args.mux_fanin, hw=args.hw))
    for name, st in report["tensors"].items():
        tiles = f", {st['tiles']} tiles on {st['hw']} (tile_efficiency {st['tile_efficiency']:.4f})" if args.hw else ""
        print(f"{name}: {st['shape'][0]} x {st['shape'][1]} -> {st['groups']} groups, pruned_fraction "
              f"{st['pruned_fraction']:.4f}, packing_efficiency {st['packing_efficiency']:.4f}, "
              f"group sizes {st['group_sizes']}{tiles}")
    print(f"wrote {args.out}")
    if args.json:
        write_json(args.json, report)
        print(f"wrote {args.json}")
    return 0


def _csv_list(text: str, kind, flag: str) -> list:
    try:
        values = [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SasimError(f"{flag} takes a comma-separated list of {kind.__name__}s, got {text!r}") from None
    if not values:
        raise SasimError(f"{flag} is empty")
    return values


def _cmd_sweep(args) -> int:
    from sasim.hw.config import load_hw_config
    from sasim.sweep import grid, run_sweep
    from sasim.workload.lstm_weights import load_lstm_workload

    hws = args.hw or ["32x32"]
    for h in hws:
        load_hw_config(h)  # fail early, before any worker starts
    weights = resolve_weights(args.weights)
    load_lstm_workload(weights)
    points = grid(hws, _csv_list(args.alphas, int, "--alphas"), _csv_list(args.gammas, float, "--gammas"),
                  _csv_list(args.rules, str, "--rules"), args.policy, args.section, args.prune_to,
                  _csv_list(args.patterns, str, "--patterns"))
    summary = run_sweep(points, weights, args.out, args.batch, args.steps, args.mode, args.timing, args.data,
                        args.split, args.seed, args.workers, args.engine, eval_tokens=args.eval_tokens,
                        retrain=dict(epochs=args.retrain_epochs, target=args.target_sparsity,
                                     max_train_tokens=args.max_train_tokens) if args.retrain else None)
    print(f"{summary['done']} of {len(points)} points done; wrote {args.out}/sweep.csv, sweep.json and plots")
    for key, fail in summary["failures"].items():
        print(f"  failed {key}: {fail['error'].strip().splitlines()[-1]}")
    return 0 if not summary["failures"] else 1


def _cmd_plot(args) -> int:
    from sasim.hw.config import load_hw_config
    from sasim.report.plots import plot_packed_matrix, plot_tile_occupancy
    from sasim.workload.layer_packing import pack_workload, stored_packings
    from sasim.workload.lstm_weights import load_lstm_workload

    hw = load_hw_config(args.hw)
    workload = load_lstm_workload(resolve_weights(args.weights))
    if not 0 <= args.layer < len(workload.layers):
        raise SasimError(f"--layer must be in 0..{len(workload.layers) - 1}")
    if args.prune_to:
        from sasim.combine.magnitude import prune_workload

        prune_workload(workload, args.prune_to)
    packing = _packing_args(args)
    packings = stored_packings(workload) if packing is None else None
    if packings is None:
        if packing is None:
            raise SasimError("this checkpoint is not packed: give --alpha and --gamma to pack it")
        packings = pack_workload(workload, hw, **packing)
    packed = packings[args.layer].gates
    name = f"layer{args.layer}.gates"
    out = Path(args.out)
    tile = plot_tile_occupancy(packed, hw, args.tile, out / f"{name}_tile{args.tile}.png", title=f"{name} on {hw.name},")
    matrix = plot_packed_matrix(packed, out / f"{name}_packed.png", title=name)
    print(f"wrote {tile} and {matrix}")
    return 0


def _cmd_prune(args) -> int:
    import json

    from sasim.api.prune import Prune, prune
    from sasim.sim.metrics import accuracy_name

    if args.pattern.strip().lower() == "combine" and (args.alpha is None or args.gamma is None):
        raise SasimError("sasim prune with column combining needs --alpha and --gamma (or choose another --pattern)")
    alpha, gamma = (8, 0.5) if args.alpha is None or args.gamma is None else (args.alpha, args.gamma)  # unused then
    spec = Prune(weights=resolve_weights(args.weights), alphas=tuple(_csv_list(str(alpha), int, "--alpha")),
                 gammas=tuple(_csv_list(str(gamma), float, "--gamma")), data=args.data, out=args.out,
                 rule=args.rule or "prune", policy=args.policy or "paper",
                 section=256 if args.section is None else args.section, row_cap=args.row_cap,
                 target=args.target_sparsity, epochs=args.epochs, events=args.events,
                 max_train_tokens=args.max_train_tokens, device=args.device, seed=args.seed,
                 qat=_quant_config(args, args.qat_bits) if args.qat_bits else None, qat_epochs=args.qat_epochs,
                 resume=args.resume, mux_fanin=args.mux_fanin, pattern=args.pattern)
    if args.dry_run:
        return _prune_dry_run(args, spec)
    if not args.data or not args.out:
        raise SasimError("sasim prune needs --data (the corpus to retrain on) and --out (the packed checkpoint to "
                         "write); or --dry-run to rehearse the pruning events without training")
    result = prune(spec)
    if result.eval is None:  # a rank other than 0 under torchrun: rank 0 scores and reports
        return 0
    name = accuracy_name(result.eval["test"])
    qat = spec.qat
    how = f" ({qat.weight_bits}-bit weights, {qat.act_bits}-bit activations, after QAT)" if qat else ""
    print(f"valid {name} {result.eval['valid'][name]:.4f}, test {name} {result.eval['test'][name]:.4f}{how}; "
          f"density {json.dumps({k: round(v, 4) for k, v in result.summary['density'].items()})}; wrote {args.out}")
    return 0


def _cmd_finetune(args) -> int:
    from sasim.api.train import Finetune, finetune
    from sasim.sim.metrics import accuracy_name

    result = finetune(Finetune(weights=resolve_weights(args.weights), data=args.data, out=args.out, epochs=args.epochs,
                               lr=args.lr, max_train_tokens=args.max_train_tokens, device=args.device, seed=args.seed,
                               distill=resolve_weights(args.distill) if args.distill else None,
                               distill_weight=args.distill_weight, dropout_scale=args.dropout_scale,
                               average_from=args.average_from))
    if result.eval is None:  # a rank other than 0 under torchrun: rank 0 scores and reports
        return 0
    name = accuracy_name(result.eval["test"])
    print(f"valid {name} {result.eval['valid'][name]:.4f}, test {name} {result.eval['test'][name]:.4f} after "
          f"{args.epochs} epoch(s) at lr {result.summary['lr']:g}"
          f"{', masks and groups frozen' if result.packed else ' (dense)'}; wrote {args.out}")
    return 0


def _prune_dry_run(args, spec) -> int:
    """``sasim prune --dry-run``: the pruning events on the dense weights without training, and their tiles."""
    from sasim.api.prune import rehearse

    plan = rehearse(spec, args.hw)
    print(f"dry run: {plan['event_count']} pruning events on {args.weights}, no training (a real run ends near this; "
          f"retraining moves the weights between events). Tiles on the {plan['array']} array of {args.hw}:")
    for r in plan["layers"]:
        print(f"  layer {r['layer']} {r['matrix']}: {r['shape'][0]} x {r['shape'][1]} -> {r['groups']} groups, "
              f"density {r['density']:.3f}, {r['tiles']} tiles (dense {r['dense_tiles']})")
    print(f"total: {plan['tiles']} tiles against {plan['dense_tiles']} dense "
          f"({plan['dense_tiles'] / max(plan['tiles'], 1):.2f}x fewer), density {plan['density']:.3f}")
    return 0


def _quant_config(args, bits: str):
    from sasim.quant.fixed_point_lstm import QuantConfig

    widths = _csv_list(bits, int, "--bits")
    if len(widths) != 2:
        raise SasimError("--bits takes weight and activation widths: --bits 8,8")
    return QuantConfig(weight_bits=widths[0], act_bits=widths[1], acc_bits=args.acc_bits, calibration=args.calibration,
                       percentile=args.percentile, vector_bits=args.vector_bits, vector_frac_bits=args.vector_frac_bits)


def _cmd_quantize(args) -> int:
    from sasim.api.train import Quantize, quantize
    from sasim.sim.metrics import accuracy_name

    cfg = _quant_config(args, args.bits)
    result = quantize(Quantize(weights=resolve_weights(args.weights), data=args.data, quant=cfg, split=args.split,
                               calib_tokens=args.calib_tokens, eval_tokens=args.eval_tokens, qat_epochs=args.qat_epochs,
                               qat_lr=args.qat_lr, max_train_tokens=args.max_train_tokens, device=args.device,
                               seed=args.seed, out=args.out, hw=args.hw, arithmetic=args.arithmetic, json=args.json))
    scored, cost = result.scored, result.cost
    quant, base, split = scored["quantized"], scored["float32"], scored["split"]
    name = accuracy_name(quant)
    how = f"after {args.qat_epochs} epoch(s) of quantization-aware fine-tuning" if args.qat_epochs else "post-training"
    vector = f", vector unit {cfg.vector_bits} bits" if cfg.vector_bits else ""
    print(f"{split}: float32 {name} {base[name]:.4f}, {cfg.weight_bits}-bit weights / {cfg.act_bits}-bit activations"
          f"{vector} ({how}) {name} {quant[name]:.4f} ({(quant[name] / base[name] - 1) * 100:+.2f}%)")
    if cost is not None:
        print(f"cost on {cost['hw']} ({cost['steps']} steps, batch {cost['batch']}): weight memory "
              f"{cost['weight_memory_bytes'] / 2**20:.3f} MiB (select indices {cost['select_bytes'] / 2**20:.3f} MiB), "
              f"{cost['tiles']} tiles, {cost['cycles_per_step']:,.0f} cycles per step, SRAM "
              f"{cost['sram_bytes_per_token'] / 1e3:.1f} kB and DRAM {cost['dram_bytes_per_token'] / 1e3:.1f} kB per token, "
              f"{cost['energy_per_token_j'] * 1e6:.3f} uJ per token")
    if args.out:
        print(f"wrote {args.out} (quantized checkpoint: sasim eval scores it with this arithmetic)")
    if args.json:
        print(f"wrote {args.json}")
    return 0


def default_weights() -> str:
    """The shipped model, the default of ``--weights``."""
    from sasim.hw.config import shipped_config_dir

    return str(shipped_config_dir().parent / "models" / "ptb-char-small.pt")


def resolve_weights(path: str) -> str:
    if Path(path).is_file():
        return path
    shipped = Path(default_weights()).parent / Path(path).name
    return str(shipped) if shipped.is_file() else path


def _add_packing_flags(p) -> None:
    g = p.add_argument_group("column combining (pack on the fly)")
    g.add_argument("--alpha", type=INT(1, MAX_ALPHA), help="most columns per group (<= the hardware's mux_fanin)")
    g.add_argument("--gamma", type=FLOAT(0, MAX_GAMMA), help="conflict budget: conflicts per group <= floor(gamma * N)")
    g.add_argument("--rule", choices=["prune", "spill"], help="conflict rule (default prune)")
    g.add_argument("--policy", help="grouping policy (default paper)")
    g.add_argument("--section", type=INT(0), help="groups never cross blocks of this many columns (default 256; 0: none)")
    g.add_argument("--row-cap", dest="row_cap", type=INT(0), help="most conflicts of one row within a group")


def _add_quant_flags(p) -> None:
    g = p.add_argument_group("fixed point")
    g.add_argument("--acc-bits", dest="acc_bits", type=INT(2, 62), default=32, help="accumulator width (default 32)")
    g.add_argument("--calibration", default="minmax", choices=["minmax", "percentile"])
    g.add_argument("--percentile", type=FLOAT(0, 100, low_open=True), default=99.99)
    g.add_argument("--vector-bits", dest="vector_bits", type=INT(0, 32), default=0,
                   help="vector-unit precision for the gates and the cell update (default 0: float32)")
    g.add_argument("--vector-frac-bits", dest="vector_frac_bits", type=INT(0, 31),
                   help="fractional bits of the vector unit's words (default vector-bits - 5)")


DATAFLOW_CHOICES = ["weight_stationary", "output_stationary", "input_stationary", "ws", "os", "is"]


def _add_sim_flags(p) -> None:
    p.add_argument("--dataflow", choices=DATAFLOW_CHOICES, metavar="{weight_stationary,output_stationary,"
                   "input_stationary}", help="replace the config's array.dataflow (SCALE-Sim's ws, os, is also work)")
    p.add_argument("--timing", default="sasim", choices=["sasim", "scalesim"],
                   help="sasim: double-buffered loads (default); scalesim: no overlap, for validation")
    p.add_argument("--mode", default="cycle", choices=["cycle", "analytic"],
                   help="cycle-level simulation with real values (default), or the closed-form model")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the random inputs (default 0)")
    p.add_argument("--json", help="write the JSON report here")


class _Parser(argparse.ArgumentParser):
    """argparse with sasim's error convention: one line on stderr (no usage block), exit status 2."""

    def error(self, message):
        # "argument --m: must be positive, got 0" reads better as "--m must be positive, got 0"
        message = re.sub(r"^argument (--[\w-]+)(?:/[^:]*)?: (must|expected)", r"\1 \2", message)
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def INT(minimum: int, maximum: int = MAX_COUNT):  # noqa: N802 - reads as a type in the parser table
    """An integer flag within ``[minimum, maximum]``, refused where it is parsed."""
    return arg_type(check_int, minimum, maximum)


def FLOAT(low: float, high: float | None, **open_ends):  # noqa: N802
    """A finite number flag within bounds (``low_open`` / ``high_open`` for strict ones)."""
    return arg_type(check_float, low, high, **open_ends)


def DEVICE(text: str) -> str:  # noqa: N802
    """A device flag: cpu, cuda, cuda:N or auto."""
    try:
        return check_device("device", text)
    except SasimError as exc:
        raise argparse.ArgumentTypeError(str(exc).replace("device ", "", 1)) from None


SEED = INT(0, MAX_SEED)
SPARSITY = FLOAT(0, 1, low_open=True, high_open=True)
DENSITY = FLOAT(0, 1, low_open=True)


def build_parser() -> argparse.ArgumentParser:
    from sasim import __version__

    parser = _Parser(prog="sasim", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"sasim {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train an LSTM language model")
    p.add_argument("--data", required=True, help="corpus directory with train.txt, valid.txt, test.txt")
    p.add_argument("--preset", default="small", help="small | char-ptb | enwik8")
    p.add_argument("--out", required=True, help="checkpoint to write (best validation)")
    p.add_argument("--epochs", type=INT(1, 100_000), help="override the preset's epochs")
    p.add_argument("--seed", type=SEED, help="override the preset's seed")
    p.add_argument("--proj-size", dest="proj_size", type=INT(0, 2**20), help="LSTM with projection: P per layer (Jozefowicz et al.)")
    p.add_argument("--max-train-tokens", dest="max_train_tokens", type=INT(1, 2**62), help="tokens per epoch (default: all)")
    p.add_argument("--device", default="cpu", type=DEVICE, help="cpu (default), cuda, or auto")
    p.add_argument("--threads", type=INT(0, 1024), default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--resume", action="store_true", help="continue from OUT.latest.pt")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                   help="bf16: forward passes under autocast on a GPU (default fp32)")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("eval", help="bits per character / perplexity of a checkpoint")
    p.add_argument("--weights", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="test", choices=["valid", "test"])
    p.add_argument("--batch", type=INT(1, 1_000_000), default=10, help="parallel streams (awd-lstm-lm uses 10)")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("validate", help="check a hardware config")
    p.add_argument("file", help="YAML file or shipped name (8x8, 32x32, 128x128)")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("gemm", help="simulate one seeded random matrix product")
    p.add_argument("--hw", required=True, help="hardware config (path or shipped name)")
    p.add_argument("--m", type=INT(1), required=True, help="input vectors (batch)")
    p.add_argument("--n", type=INT(1), required=True, help="outputs (weight rows)")
    p.add_argument("--k", type=INT(1), required=True, help="inputs (weight columns)")
    p.add_argument("--density", type=FLOAT(0, 1, low_open=True), default=1.0, help="fraction of nonzero weights (default 1)")
    _add_sim_flags(p)
    _add_packing_flags(p)
    p.set_defaults(func=_cmd_gemm)

    p = sub.add_parser("scalesim", help="run SCALE-Sim's own .cfg and topology files: its Total Cycles per layer "
                                        "next to sasim's metrics")
    p.add_argument("--config", required=True, help="a SCALE-Sim .cfg (array, dataflow, SRAM sizes)")
    p.add_argument("--topology", required=True, help="a SCALE-Sim topology CSV (convolution layers, or GEMMs with --gemm)")
    p.add_argument("--gemm", action="store_true", help="the topology holds 'Layer, M, N, K' rows")
    p.add_argument("--hw", default="32x32", help="sasim config for the clock, arithmetic, bandwidths and energies "
                                                 "(default 32x32); the array and SRAM sizes come from --config")
    p.add_argument("--density", type=FLOAT(0, 1, low_open=True), default=1.0,
                   help="fraction of nonzero seeded random weights (default 1)")
    p.add_argument("--dataflow", choices=DATAFLOW_CHOICES, help="replace the config's Dataflow")
    p.add_argument("--mode", default="analytic", choices=["cycle", "analytic"],
                   help="analytic (default), or cycle-level with real values checked against numpy")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the random weights and inputs (default 0)")
    p.add_argument("--csv", help="per-layer CSV (default TOPOLOGY_STEM.sasim.csv)")
    p.add_argument("--json", help="write the JSON report here")
    _add_packing_flags(p)
    p.set_defaults(func=_cmd_scalesim)

    p = sub.add_parser("run", help="simulate an LSTM checkpoint on the array")
    p.add_argument("--hw", default="32x32", help="hardware config (path or shipped name; default 32x32)")
    p.add_argument("--weights", help="checkpoint (default: the shipped PTB-char model)")
    p.add_argument("--workload", help="a workload YAML or preset instead of a checkpoint: awd-char-ptb, awd-enwik8, "
                                      "qrnn-wt103, lstm-8192-1024 (synthetic seeded weights)")
    p.add_argument("--batch", type=INT(1), help="M: independent streams (default 1, or the workload's)")
    p.add_argument("--steps", type=INT(1), help="T: timesteps (default 1, or the workload's)")
    _add_sim_flags(p)
    _add_packing_flags(p)
    p.add_argument("--per-gate", dest="per_gate", action="store_true",
                   help="group each gate's rows (i, f, g, o) separately instead of across the four gates")
    p.add_argument("--no-mix", dest="no_mix", action="store_true", help="groups never mix W_ih and W_hh columns")
    p.add_argument("--data", help="corpus directory: also report bpc / perplexity with the weights the array holds")
    p.add_argument("--split", default="test", choices=["valid", "test"], help="split for --data (default test)")
    p.add_argument("--plot", help="write a PNG of cycles and utilization per matrix")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("sweep", help="sweep packing parameters and hardware configs")
    p.add_argument("--hw", action="append", help="hardware config (repeatable; default 32x32)")
    p.add_argument("--weights", default=default_weights())
    p.add_argument("--alphas", default="2,4,8")
    p.add_argument("--gammas", default="0,0.25,0.5,1")
    p.add_argument("--rules", default="prune,spill")
    p.add_argument("--patterns", default="combine",
                   help="sparsity patterns, comma-separated: combine (over the alphas, gammas and rules), nm:N:M, "
                        "block:RxC, unstructured, dense (one point each per config; block and unstructured prune to "
                        "--prune-to or, with --retrain, to --target-sparsity)")
    p.add_argument("--policy", default="paper")
    p.add_argument("--section", type=INT(0), default=256)
    p.add_argument("--prune-to", dest="prune_to", type=DENSITY,
                   help="one-shot magnitude pruning of every LSTM matrix to this density before combining "
                        "(no retraining)")
    p.add_argument("--batch", type=INT(1), default=1)
    p.add_argument("--steps", type=INT(1), default=1)
    p.add_argument("--mode", default="analytic", choices=["cycle", "analytic"], help="default analytic (same counts)")
    p.add_argument("--timing", default="sasim", choices=["sasim", "scalesim"])
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--data", help="corpus: score every point with the weights its array holds")
    p.add_argument("--split", default="valid", choices=["valid", "test"])
    p.add_argument("--eval-tokens", dest="eval_tokens", type=INT(2),
                   help="score only the split's first N tokens (a quick estimate, labelled as such)")
    p.add_argument("--retrain", action="store_true",
                   help="prune, combine and retrain every point from the dense checkpoint (needs --data)")
    p.add_argument("--retrain-epochs", dest="retrain_epochs", type=INT(1, 100_000), default=1)
    p.add_argument("--target-sparsity", dest="target_sparsity", type=SPARSITY, default=0.9)
    p.add_argument("--max-train-tokens", dest="max_train_tokens", type=INT(1, 2**62), help="tokens per retraining epoch")
    p.add_argument("--workers", type=INT(1, 4096), help="parallel points (default: all cores)")
    p.add_argument("--engine", default="local", choices=["local", "dask"],
                   help="local process pool, or dask.distributed (DASK_SCHEDULER_ADDRESS or a local cluster)")
    p.add_argument("--out", required=True, help="output directory (resumes if it holds finished points)")
    p.set_defaults(func=_cmd_sweep)

    p = sub.add_parser("plot", help="pictures: PE occupancy of a tile, and a layer's packed matrix with its groups")
    p.add_argument("--hw", default="32x32")
    p.add_argument("--weights", default=default_weights())
    p.add_argument("--layer", type=INT(0), default=0)
    p.add_argument("--tile", type=INT(0), default=0, help="tile index (row-tile major)")
    p.add_argument("--prune-to", dest="prune_to", type=DENSITY, help="one-shot magnitude pruning before packing")
    p.add_argument("--out", required=True, help="directory for the PNGs")
    _add_packing_flags(p)
    p.set_defaults(func=_cmd_plot)

    p = sub.add_parser("prune", help="prune, column-combine and retrain a language model (joint optimization)")
    p.add_argument("--weights", required=True, help="dense sasim checkpoint")
    p.add_argument("--data", help="corpus the model was trained on (required unless --dry-run)")
    p.add_argument("--pattern", default="combine",
                   help="sparsity pattern: combine (column combining, default), nm:N:M (e.g. nm:2:4, masks by magnitude "
                        "within each block of M, one event), block:RxC (whole blocks by L2 norm) or unstructured")
    p.add_argument("--alpha", help="columns per group (one value, or one per layer: 8,8); needed by combine")
    p.add_argument("--gamma", help="conflict budget (one value, or one per layer); needed by combine")
    p.add_argument("--rule", choices=["prune", "spill"])
    p.add_argument("--policy")
    p.add_argument("--section", type=INT(0))
    p.add_argument("--row-cap", dest="row_cap", type=INT(0))
    p.add_argument("--target-sparsity", dest="target_sparsity", type=SPARSITY, default=0.9,
                   help="combine: magnitude pruning rises to target * (1 - 1/alpha), combining adds to it; "
                        "unstructured: the sparsity of the weights; block: of the blocks; unused by N:M (default 0.9)")
    p.add_argument("--epochs", type=INT(1, 100_000), default=2, help="retraining epochs (events in the first half)")
    p.add_argument("--events", type=INT(1, 1_000_000), help="pruning events (default 2 per epoch)")
    p.add_argument("--max-train-tokens", dest="max_train_tokens", type=INT(1, 2**62), help="tokens per retraining epoch")
    p.add_argument("--mux-fanin", dest="mux_fanin", type=INT(1, 256), help="refuse alpha above this multiplexer width")
    p.add_argument("--device", default="cpu", type=DEVICE)
    p.add_argument("--seed", type=SEED, default=1)
    p.add_argument("--qat-bits", dest="qat_bits",
                   help="then fine-tune quantization-aware for these weight,activation bits (e.g. 8,8) and save a "
                        "quantized packed checkpoint")
    p.add_argument("--qat-epochs", dest="qat_epochs", type=INT(1, 100_000), default=1, help="epochs of that fine-tuning (default 1)")
    _add_quant_flags(p)
    p.add_argument("--out", help="packed checkpoint to write (required unless --dry-run)")
    p.add_argument("--dry-run", dest="dry_run", action="store_true",
                   help="rehearse the pruning events on the dense weights without training and print the groups, "
                        "density and tiles a run ends near (seconds; to choose settings for a tile budget)")
    p.add_argument("--hw", default="32x32", help="array for --dry-run's tile counts (path or shipped name; default 32x32)")
    p.add_argument("--resume", action="store_true",
                   help="continue a killed run from OUT.latest.pt (saved after every retraining epoch)")
    p.set_defaults(func=_cmd_prune)

    p = sub.add_parser("finetune", help="continue retraining a packed checkpoint with its masks and groups frozen "
                                        "(a dense one: the same recipe as a control)")
    p.add_argument("--weights", required=True,
                   help="packed sasim checkpoint (sasim prune / sasim combine), or a dense one to train on as a control")
    p.add_argument("--data", required=True, help="corpus the model was trained on")
    p.add_argument("--epochs", type=INT(1, 100_000), default=1)
    p.add_argument("--lr", type=FLOAT(0, 10, low_open=True), help="Adam learning rate (default: a tenth of the model's training rate)")
    p.add_argument("--max-train-tokens", dest="max_train_tokens", type=INT(1, 2**62), help="tokens per epoch")
    p.add_argument("--device", default="cpu", type=DEVICE)
    p.add_argument("--seed", type=SEED, default=1)
    p.add_argument("--distill", metavar="TEACHER",
                   help="dense checkpoint to distill from (normally the model the packed one was pruned from)")
    p.add_argument("--distill-weight", dest="distill_weight", type=FLOAT(0, 1), default=0.5,
                   help="share of the distillation (KL) term in the loss, 0..1 (default 0.5)")
    p.add_argument("--dropout-scale", dest="dropout_scale", type=FLOAT(0, None), default=1.0,
                   help="multiply every dropout rate while fine-tuning (default 1; the checkpoint keeps its rates)")
    p.add_argument("--average-from", dest="average_from", type=INT(1, 100_000), metavar="EPOCH",
                   help="save the mean of the weights over every step from this epoch on (Polyak/SWA averaging)")
    p.add_argument("--out", required=True, help="packed checkpoint to write")
    p.set_defaults(func=_cmd_finetune)

    p = sub.add_parser("quantize", help="post-training fixed-point quantization of the LSTM layers, scored")
    p.add_argument("--weights", default=default_weights())
    p.add_argument("--data", required=True)
    p.add_argument("--bits", default="8,8", help="weight,activation bits (default 8,8)")
    _add_quant_flags(p)
    p.add_argument("--calib-tokens", dest="calib_tokens", type=INT(8, 2**40), default=20_000,
                   help="calibration tokens from the start of the training split, as sequences of 8")
    p.add_argument("--split", default="valid", choices=["valid", "test"])
    p.add_argument("--eval-tokens", dest="eval_tokens", type=INT(2), help="score only the split's first N tokens")
    p.add_argument("--qat-epochs", dest="qat_epochs", type=INT(0, 100_000), default=0,
                   help="quantization-aware fine-tuning epochs (straight-through estimator); 0: post-training only")
    p.add_argument("--qat-lr", dest="qat_lr", type=FLOAT(0, 10, low_open=True), help="fine-tuning learning rate (default: a tenth of training's)")
    p.add_argument("--max-train-tokens", dest="max_train_tokens", type=INT(1, 2**62), help="tokens per fine-tuning epoch")
    p.add_argument("--device", default="cpu", type=DEVICE)
    p.add_argument("--seed", type=SEED, default=1)
    p.add_argument("--hw", help="also report the cost at these widths on this array (memory, cycles, traffic, energy)")
    p.add_argument("--arithmetic", default="bit_serial", choices=["bit_serial", "bit_parallel"],
                   help="arithmetic of the cost report (default bit_serial: act_bits cycles per input word)")
    p.add_argument("--out", help="write the quantized checkpoint here")
    p.add_argument("--json")
    p.set_defaults(func=_cmd_quantize)

    p = sub.add_parser("combine", help="column-combine (or prune to another sparsity pattern and pack) the matrices "
                                       "of a checkpoint")
    p.add_argument("--weights", required=True)
    p.add_argument("--pattern", default="combine",
                   help="combine (column combining, default; needs --alpha --gamma), nm:N:M (e.g. nm:2:4), block:RxC "
                        "(e.g. block:32x32; with --sparsity) or unstructured (with --sparsity)")
    p.add_argument("--sparsity", type=FLOAT(0, 1, high_open=True),
                   help="fraction of the blocks (block) or weights (unstructured) to prune by magnitude (default 0)")
    p.add_argument("--out", required=True, help="packed checkpoint to write (.pt)")
    p.add_argument("--tensor", action="append", help="pack this 2-D tensor (repeatable); default: every LSTM matrix")
    p.add_argument("--mux-fanin", dest="mux_fanin", type=INT(1, 256), help="refuse alpha above this multiplexer width")
    p.add_argument("--hw", help="also report tiles and tile_efficiency on this array (and check alpha <= its mux_fanin)")
    p.add_argument("--json", help="write the packing statistics here")
    _add_packing_flags(p)
    p.set_defaults(func=_cmd_combine)
    return parser


_OUTPUT_DIRS = {"sweep", "plot"}  # commands whose --out is a directory


def _check_outputs(args) -> None:
    """Refuse unwritable output paths before any work starts (minutes of training must not end in a lost result).
    Missing parent directories are created, as the writers would."""
    from sasim.outputs import check_output_dir, check_output_file

    for flag in ("json", "plot"):
        if getattr(args, flag, None):
            check_output_file(getattr(args, flag), f"--{flag}", make_parents=True)
    out = getattr(args, "out", None)
    if out and not getattr(args, "dry_run", False):
        if args.command in _OUTPUT_DIRS:
            check_output_dir(out, "--out")
        else:
            check_output_file(out, "--out", make_parents=True)
            if args.command in ("train", "prune"):
                for derived in (Path(out).with_name(Path(out).stem + ".latest.pt"), Path(out).with_suffix(".json")):
                    check_output_file(derived, "--out (written beside it)")


def _with_flag(exc: SasimError, args) -> str:
    """The message of a library error, with the parameter it names written as the flag that set it
    (``epochs must be positive`` -> ``--epochs must be positive``)."""
    text = str(exc)
    dest = (exc.param or "").split(" ")[0]
    if dest and hasattr(args, dest) and text.startswith(exc.param):
        return f"--{dest.replace('_', '-')}{text[len(exc.param):]}"
    return text


#: commands that train, and so run data-parallel under torchrun (one process per rank)
_DISTRIBUTED = {"train", "prune", "finetune", "quantize"}


def _run(args) -> int:
    """Run the command; under torchrun, join the process group first, and let only rank 0 check outputs and
    print (every rank computes; rank 0 writes)."""
    import os

    if os.environ.get("WORLD_SIZE", "1") == "1":
        _check_outputs(args)
        return args.func(args)
    if args.command not in _DISTRIBUTED or getattr(args, "dry_run", False):
        raise SasimError(f"sasim {args.command} runs in one process; only {', '.join(sorted(_DISTRIBUTED))} run "
                         "under torchrun (launch it without torchrun)")
    import contextlib

    from sasim.lm.distributed import finish, init_from_env

    ranks = init_from_env(getattr(args, "device", "cpu"))
    try:
        if ranks.is_main:
            _check_outputs(args)
            return args.func(args)
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
            return args.func(args)
    finally:
        finish()


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except SasimError as exc:
        print(f"sasim {args.command}: error: {_with_flag(exc, args)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into head & co.
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("sasim: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
