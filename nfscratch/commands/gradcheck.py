"""``nfscratch gradcheck``: check every built-in transform, both directions, and print the tables."""


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
    ok = True
    for dim in args.dim:
        print(f"== D = {dim} ==")
        layers = builtin_examples(dim, rng=args.seed)
        if dim < 2:  # couplings need two features
            layers = {k: v for k, v in layers.items() if "Coupling" not in k}
        results = check_all(layers, rng=args.seed, verbose=args.quiet)
        if not args.quiet:
            for res in results.values():
                print(res.table())
                print()
        ok &= all(r.passed for r in results.values())
    print("gradcheck: every transform PASSED in both directions" if ok else
          "gradcheck: FAILURES above")
    return 0 if ok else 1
