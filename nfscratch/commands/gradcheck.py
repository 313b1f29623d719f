"""``nfscratch gradcheck``: check every built-in transform, both directions, and print the tables."""
import sys


def register(sub):
    p = sub.add_parser("gradcheck", help="check every built-in transform's gradients (both "
                                         "directions), log-det and inverse by finite differences")
    p.add_argument("--dim", type=int, nargs="+", default=[2, 3],
                   help="feature dimensions to check (default: 2 3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="print only the summary lines")
    p.set_defaults(func=run)


def run(args):
    from ..gradcheck import builtin_examples, check_all
    bad = [d for d in args.dim if d < 1]
    if bad:
        print(f"nfscratch gradcheck: --dim: expected positive integers, got {bad}.", file=sys.stderr)
        return 2
    ok = True
    for dim in args.dim:
        print(f"== D = {dim} ==")
        layers = builtin_examples(dim, rng=args.seed)
        results = check_all(layers, rng=args.seed, verbose=args.quiet)
        if not args.quiet:
            for res in results.values():
                print(res.table())
                print()
        ok &= all(r.passed for r in results.values())
    print("gradcheck: every transform PASSED in both directions" if ok else
          "gradcheck: FAILURES above")
    return 0 if ok else 1
