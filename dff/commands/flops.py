"""``dff flops``: the complexity ratio 1/r of Eq. (6) for each feature/flow pair, next to the paper's Table 2."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "flops",
        help="count the networks' multiply-accumulates and compare 1/r with Table 2",
        description="Count N_feat's and F's multiply-accumulates from the models as built and print "
        "1/r = O(N_feat) / O(F) (Eq. 6) next to the paper's Table 2. F gets the same frames as "
        "N_feat and halves them itself (Section 4).",
    )
    parser.add_argument("--height", type=int, default=1024, help="frame height, a multiple of 16 (default: 1024, Table 2's)")
    parser.add_argument("--width", type=int, default=2048, help="frame width, a multiple of 16 (default: 2048, Table 2's)")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from dff.flops import complexity_ratios

    ratios = complexity_ratios(height=args.height, width=args.width)
    if args.json:
        rows = [
            {
                "feature": ratio.feature,
                "flow": ratio.flow,
                "feature_gmacs": ratio.feature_gmacs,
                "flow_gmacs": ratio.flow_gmacs,
                "inverse_r": ratio.inverse_r,
                "paper_inverse_r": ratio.paper_inverse_r,
                "relative_difference": ratio.relative_difference,
            }
            for ratio in ratios
        ]
        print(json.dumps(rows, indent=2))
        return 0
    print(f"Eq. (6) on {args.height}×{args.width} frames; GMACs = 10^9 multiply-accumulates per frame")
    print(f"{'feature':<10} {'flow':<10} {'N_feat GMACs':>12} {'F GMACs':>8} {'1/r':>7} {'paper 1/r':>9} {'difference':>10}")
    for ratio in ratios:
        paper = "-" if ratio.paper_inverse_r is None else f"{ratio.paper_inverse_r:.2f}"
        difference = "-" if ratio.relative_difference is None else f"{ratio.relative_difference:+.1%}"
        print(
            f"{ratio.feature:<10} {ratio.flow:<10} {ratio.feature_gmacs:>12.2f} {ratio.flow_gmacs:>8.2f} "
            f"{ratio.inverse_r:>7.2f} {paper:>9} {difference:>10}"
        )
    return 0
