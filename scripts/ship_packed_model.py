"""Ship a packed model compactly: each LSTM matrix stored once, in packed form (values float16, select
indices, groups); sasim unpacks the dense weights on load. Scores valid and test with the stored file.

    python scripts/ship_packed_model.py --packed POINT.pt --data ../shared/data/ptb-char \\
        --out models/ptb-char-packed.pt --command "sasim prune ..."
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sasim.api.ship import Ship, ship
from sasim.workload.checkpoint import carried_metadata, load_raw
from sasim.workload.layer_packing import compact_packed_state


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packed", required=True, help="a packed checkpoint (sasim prune / sasim combine)")
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--command", required=True, help="the command that made the packed checkpoint")
    args = ap.parse_args()
    raw = load_raw(args.packed)
    if not raw.get("packing"):
        raise SystemExit(f"{args.packed} is not packed")
    meta = carried_metadata(raw)
    record = ship(Ship(out=Path(args.out), state=compact_packed_state(raw["state_dict"]), raw=raw, data=args.data,
                       record=dict(command=args.command, source=str(args.packed)), meta=meta))
    print(json.dumps({**record, "mib": Path(args.out).stat().st_size / 2**20}, indent=2))


if __name__ == "__main__":
    main()
