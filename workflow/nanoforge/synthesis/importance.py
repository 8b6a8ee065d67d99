"""What drives the predicted size: grouped permutation importance.

A *group* is one kind of information about a recipe: its conditions, the product's
composition, the chemicals of one role (precursor, ligand, solvent, reducing agent, other)
or the amounts. Its importance is how much the model's MAE on held-out rows grows when that
information is taken from another recipe (a random permutation of the rows), the rest of the
recipe kept (mean over ``repeats`` permutations).

For a model on feature columns (the trees), a group is a set of columns permuted together
(``column_groups``): ``cond__*`` (conditions), ``prod__*`` (product), ``amt__*`` (amounts per
role, ratios to the metal precursor, totals), and per role R the columns that say which
chemicals of role R the recipe uses: ``pool__R__*`` and the ``bag__``/``frac__`` columns of
the chemicals of role R. For the token transformer (``token_permuter``), a role group is the
recipe's tokens of that role (with their amounts) replaced by the donor recipe's tokens of
that role; the product group, the product token; conditions, the ``cond`` columns. The
transformer has no separate amounts group (an amount belongs to its token).
"""

from __future__ import annotations

import numpy as np

from nanoforge.chemicals import REACTANT_ROLES

GROUPS = ("conditions", "product", *REACTANT_ROLES, "amounts")


def column_groups(names, role_of) -> dict[str, np.ndarray]:
    """Group -> column positions of a feature-column model; ``role_of(name)`` gives the role of
    a reactant name (the ``bag__``/``frac__`` columns). Groups without columns are left out."""
    out: dict[str, list[int]] = {g: [] for g in GROUPS}
    for j, name in enumerate(names):
        block, _, rest = name.partition("__")
        if block == "cond":
            out["conditions"].append(j)
        elif block == "prod":
            out["product"].append(j)
        elif block == "amt":
            out["amounts"].append(j)
        elif block == "pool":
            out[rest.split("__", 1)[0]].append(j)
        elif block in ("bag", "frac"):
            role = role_of(rest)
            out[role if role in REACTANT_ROLES else "other"].append(j)
    return {g: np.asarray(cols) for g, cols in out.items() if cols}


def column_permuter(cols):
    """A permuter that gives the columns ``cols`` of every row the values of row ``perm[i]``."""
    def permute(X, perm):
        X = np.array(X, dtype=float, copy=True)
        X[:, cols] = X[perm][:, cols]
        return X
    return permute


def token_permuter(layout: dict, group: str):
    """A permuter of the token block (``nanoforge.synthesis.transformer.token_layout``): the
    product token, the tokens of one role, or the conditions of row ``perm[i]``."""
    if group == "conditions":
        return column_permuter(layout["cond"])
    slot_cols = [[layout["code"][s]] + ([layout["mmol"][s]] if layout["mmol"][s] is not None else [])
                 + list(layout["vec"][s]) for s in range(len(layout["slots"]))]
    if group == "product":
        return column_permuter(slot_cols[0])
    feats = layout["feats"]
    role_at = [layout["vec"][s][feats.index(f"role_{group}")] for s in range(len(layout["slots"]))]

    def permute(X, perm):
        X = np.asarray(X, dtype=float)
        out = X.copy()
        reactant = slot_cols[1:]
        for i, j in enumerate(perm):
            own = [s for s in range(1, len(slot_cols)) if np.isfinite(X[i, layout["code"][s]])
                   and X[i, role_at[s]] != 1]
            donor = [s for s in range(1, len(slot_cols)) if np.isfinite(X[j, layout["code"][s]])
                     and X[j, role_at[s]] == 1]
            rows = [X[i, slot_cols[s]] for s in own] + [X[j, slot_cols[s]] for s in donor]
            for k, cols in enumerate(reactant):
                if k < len(rows):
                    out[i, cols] = rows[k]
                else:  # an empty slot: code NaN, mmol 0, vector NaN
                    out[i, cols] = np.nan
                    out[i, layout["mmol"][k + 1]] = 0.0
        return out
    return permute


def grouped_importance(predict, X, y, permuters: dict, repeats: int = 5, seed: int = 0) -> dict[str, float]:
    """Group -> mean increase of the MAE (nm) of ``predict`` on (X, y) when the group is taken
    from another row (``repeats`` random permutations); ``baseline`` -> the MAE itself."""
    y = np.asarray(y, dtype=float)
    base = float(np.mean(np.abs(predict(X) - y)))
    rng = np.random.default_rng(seed)
    perms = [rng.permutation(len(y)) for _ in range(repeats)]
    out = {"baseline": base}
    for group, permute in permuters.items():
        out[group] = float(np.mean([np.mean(np.abs(predict(permute(X, p)) - y)) for p in perms]) - base)
    return out


def importance_figure(results: dict[str, dict], path, title: str = ""):
    """Bar chart: the MAE increase of every group (x) for every model (``results``: model ->
    ``grouped_importance`` output)."""
    from nanoforge.plotting import pyplot, save_figure

    plt = pyplot()
    groups = [g for g in GROUPS if any(g in r for r in results.values())]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.8 / max(1, len(results))
    x = np.arange(len(groups))
    for k, (name, res) in enumerate(results.items()):
        ax.bar(x + k * width, [res.get(g, np.nan) for g in groups], width, label=name)
    ax.set_xticks(x + width * (len(results) - 1) / 2, groups, rotation=30)
    ax.set_ylabel("MAE increase (nm)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)
