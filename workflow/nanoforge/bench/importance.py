"""What drives size: ``python -m nanoforge.bench importance [options]``.

Fits size runs of config ``synthesis.runs`` (their first candidate) on the training rows of
one split of a protocol (default: protocol P, split 0) and prints, for each, the grouped
permutation importance on the split's validation rows (``nanoforge.synthesis.importance``:
how much the MAE grows when the recipe's conditions, product, chemicals of one role or
amounts are taken from another recipe), and for a transformer run the CLS token's
attention per role. ``--figure`` writes a bar chart of the importances. For example::

    python -m nanoforge.bench importance --runs size_et_chem size_tf_chem --figure results/importance.png
"""

from __future__ import annotations

import argparse
import sys
import time



def main(argv: list[str] | None = None) -> int:
    from nanoforge.bench.synthesis import load_inputs
    from nanoforge.chemicals import DEFAULT_PATH, REACTANT_ROLES, ChemicalTable
    from nanoforge.synthesis import importance as imp
    from nanoforge.synthesis import models as models_mod
    from nanoforge.synthesis.harness import design_matrix, feature_names
    from nanoforge.synthesis.protocols import ProtocolSettings, make_splits
    from nanoforge.synthesis.transformer import token_layout

    ap = argparse.ArgumentParser(prog="python -m nanoforge.bench importance", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", nargs="+", default=["config.yaml"],
                    help="config, then overlays merged into it (e.g. config.yaml config.gpu.yaml)")
    ap.add_argument("--features", default="results/features/recipe_features.parquet")
    ap.add_argument("--runs", nargs="+", default=["size_et_chem", "size_tf_chem"])
    ap.add_argument("--protocol", default="P", choices=["P", "G", "U"])
    ap.add_argument("--split", type=int, default=0, help="index of the protocol's split")
    ap.add_argument("--repeats", type=int, default=5, help="permutations per group")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--figure", help="PNG of the importances")
    args = ap.parse_args(argv)

    cfg, design, folds = load_inputs(args.config, args.features)
    syn = cfg["synthesis"]
    table = ChemicalTable.read(DEFAULT_PATH)

    def role_of(name: str) -> str:  # as the featurizer's: a product used as a reactant is a precursor
        chem = table.get(name)
        return "other" if chem is None else chem.role if chem.role in REACTANT_ROLES else "precursor"

    results = {}
    for name in args.runs:
        run = next((r for r in syn["runs"] if r["name"] == name), None)
        if run is None or run["task"] != "size":
            print(f"{name}: not a size run of config synthesis.runs", file=sys.stderr)
            return 2
        model_cfg = syn["models"][run["model"]]
        kind = model_cfg.get("kind", run["model"])
        params = models_mod.candidates(model_cfg)[0]
        names = feature_names(design, syn["feature_sets"][run["features"]])
        X = design_matrix(design, names)
        y = design["size_nm"].to_numpy()
        settings = ProtocolSettings.from_config(syn, "size", folds)
        sp = make_splits(design, args.protocol, settings)[args.split]
        t0 = time.time()
        pipe = models_mod.build_pipeline(kind, "size", params, names, min_count=syn["featurize"]["min_count"],
                                         seed=cfg["seed"], threads=args.threads, models=syn["models"])
        pipe.fit(X[sp.train], y[sp.train], **models_mod.fit_params(
            params, design["family"].to_numpy()[sp.train], y[sp.train], kind,
            design["n_counted"].fill_null(0).to_numpy()[sp.train]))
        if kind == "transformer":
            layout = token_layout(names)
            groups = [g for g in imp.GROUPS if g != "amounts"]
            permuters = {g: imp.token_permuter(layout, g) for g in groups}
        else:
            permuters = {g: imp.column_permuter(c) for g, c in imp.column_groups(names, role_of).items()}
        res = imp.grouped_importance(pipe.predict, X[sp.val], y[sp.val], permuters, args.repeats, cfg["seed"])
        results[name] = res
        print(f"{name} ({args.protocol} split {sp.name}, {sp.val.size} rows, {time.time() - t0:.0f} s): "
              f"MAE {res['baseline']:.3f} nm; MAE increase when taken from another recipe:")
        for g, v in sorted(((g, v) for g, v in res.items() if g != "baseline"), key=lambda t: -t[1]):
            print(f"  {g:<16} {v:+.3f} nm")
        if kind == "transformer":
            shares = pipe.steps[-1][1].attention_by_role(X[sp.val])
            print("  CLS attention per role (last layer): "
                  + ", ".join(f"{r} {s:.2f}" for r, s in sorted(shares.items(), key=lambda t: -t[1])))
    if args.figure:
        imp.importance_figure(results, args.figure, f"Grouped permutation importance ({args.protocol} split {args.split})")
        print(f"figure: {args.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
