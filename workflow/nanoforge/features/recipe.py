"""Recipe-level features: one row per recipe, computed from that recipe alone.

``RecipeFeaturizer.fit(recipes)`` learns the vocabularies from the training recipes: the
reactant names (one ``bag``/``frac`` column each) and the elements of their products (one
``prod__el_<Element>`` column each); ``transform(recipes)`` only applies them, so a recipe's
row never depends on the other recipes it is transformed with, and one new recipe is
featurized exactly as it would be in a batch. It takes rows of
``results/recipes/recipes.parquet`` and returns a table of key columns followed by the
feature columns ``get_feature_names_out()`` (``<block>__<feature>``, always the same columns
in the same order). A reactant name or product element the fit never saw goes to an explicit
unknown column (``bag__<unseen>``, ``frac__<unseen>``, ``chem__n_unseen``,
``prod__el_<unseen>``), never silently to zero; ``unseen(recipes)`` names them.
The workflow fits it on every recipe of the training source and writes the table once, shared
by every protocol; everything fitted on labels or counts (vocabulary pruning by
``min_count``, scaling) happens inside the models' pipelines on training rows only
(``nanoforge.features.select``), so columns of chemicals outside a split's training rows
are dropped there.

Key columns: ``recipe_id``, ``source``, ``source_row``, ``paper_id`` (the integer ID of a CSV source, e.g. the
paper's ``ID``; null otherwise), ``doi``, ``product``, ``family`` (product + sorted set of
reactant names: the grouping of protocol G), ``size_nm``, ``size_spread_pct``, ``shape``,
``n_counted``.

Blocks (config ``synthesis.featurize.blocks``):

``cond``  ``injection_temp_c``, ``reaction_temp_c``, ``heating_rate_c_per_min`` (NaN where
          unknown) and ``heating_rate_missing``, ``log_time_min`` (ln(1 + min)),
          ``temp_step_c`` (reaction - injection temperature).
``amt``   ``n_reactants``, ``log_total_mmol``; per role R of the chemicals table
          (precursor, ligand, solvent, reducing_agent, other): ``R__n``, ``R__log_mmol``
          (ln(1 + mmol)), ``R__frac`` (share of the recipe's mmol), ``R__log_ratio_metal``
          (ln of the role's mmol over the metal precursor's, each + 1e-3 mmol); the metal
          precursor (the precursor with the most mmol that holds a metal of the product, or
          its most electropositive element: Ge of GeTe):
          ``metal__log_mmol``, ``metal__found``.
``prod``  composition descriptors of the product formula (``comp_*``), its phase suffix
          (``phase``: ``CdSe-2`` -> 2), ``formula_known``, and the atom fraction of every
          element that occurs in a product (``el_<Element>``).
``pool``  per role R and descriptor family F (rd, comp, fp): the mmol-weighted mean over
          the role's chemicals that have F (``R__F_<name>``), and ``R__F_missing_frac``: the
          mmol share of the role's chemicals without F (1 where none has it; the means are
          then NaN). A recipe without chemicals of role R has NaN means and missing_frac 0.
``bag``   ``ln(1 + mmol)`` of every fitted reactant name (one column per name; 0 = not used)
          and ``bag__<unseen>``: the same of the summed mmol of names the fit never saw.
``frac``  mmol of every fitted reactant name over the recipe's total mmol; ``frac__<unseen>``.
``chem``  counts of the recipe's reactants by structure status: ``n_smiles``,
          ``n_formula_only``, ``n_no_structure``, ``n_not_in_table``, and ``n_unseen``
          (reactant names the fit never saw).
``uni``   the paper's Uni-Mol vectors: ``prod_<i>`` (the product's), ``sum_<i>`` (the sum
          over reactants that have one), ``n_missing`` (reactants without one) and
          ``prod_missing``. NaN where missing, never zeros.
``tok``   the recipe as chemical tokens, for the token transformer
          (``nanoforge.synthesis.transformer``): the product token ``p`` and reactant slots
          ``r0``..``r<token_slots - 1>`` in the recipe's order, each ``<slot>__code`` (a
          52-bit hash of the chemical's name, ``token_code``: the transformer finds the
          reaction intermediates and Uni-Mol vectors by it), ``<slot>__mmol`` (reactants) and
          the chemical's vector ``<slot>__<feature>`` (``token_feature_names``: RDKit and
          composition descriptors, NaN where missing, their availability and the role one-hot).
          An empty slot has code NaN, mmol 0 and NaN features. A recipe with more reactants
          than slots is an error.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import polars as pl
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from nanoforge.chemicals import REACTANT_ROLES, ChemicalTable, product_phase
from nanoforge.features import composition, molecular
from nanoforge.features.chemical import UNIMOL_DIM, ChemicalFeaturizer

BLOCKS = ("cond", "amt", "prod", "pool", "bag", "frac", "chem", "uni", "tok")
POOL_FAMILIES = ("rd", "comp", "fp")
KEY_COLUMNS = ("recipe_id", "source", "source_row", "paper_id", "doi", "product", "family", "size_nm",
               "size_spread_pct", "shape", "n_counted")
EPS_MMOL = 1e-3
UNSEEN = "<unseen>"  # the unknown column of a vocabulary (no chemical or element has this name)
STATUSES = ("smiles", "formula_only", "no_structure", "not_in_table")
# Role of a reactant missing from the chemicals table: the ingestion's role.
FALLBACK_ROLES = {"precursor": "precursor", "ligand": "ligand", "solvent": "solvent"}


TOKEN_SLOTS = 12
TOKEN_FAMILIES = ("rd", "comp")


def token_code(name: str) -> int:
    """A stable 52-bit code of a chemical name (exact as a float64)."""
    return int(hashlib.sha1(name.encode("utf-8")).hexdigest()[:13], 16)


def token_feature_names() -> list[str]:
    """The per-token vector of block ``tok``: RDKit descriptors, composition descriptors, their
    availability, and the role one-hot (all zero for the product)."""
    return ([f"rd_{n}" for n in molecular.names()] + [f"comp_{n}" for n in composition.names()]
            + [f"has_{f}" for f in TOKEN_FAMILIES] + [f"role_{r}" for r in REACTANT_ROLES])


def paper_id(recipe_id: str, source_id: str | None) -> int | None:
    """The integer ID of a CSV-sourced recipe (``source_id``, else the part of ``recipe_id``
    after the ``:``), None where it is not an integer."""
    for text in (source_id, recipe_id.split(":", 1)[-1] if recipe_id else None):
        if text is None:
            continue
        try:
            value = float(str(text).strip())
        except ValueError:
            continue
        if value.is_integer():
            return int(value)
    return None


def recipe_family(product: str, names) -> str:
    """``product|name1+name2+...`` with the reactant names sorted and unique."""
    return f"{product}|" + "+".join(sorted(set(names)))


class RecipeFeaturizer(BaseEstimator, TransformerMixin):
    """Recipes (a polars DataFrame in the ``recipes.parquet`` layout) -> feature table.

    ``fit(recipes)`` learns ``reactant_names_`` and ``product_elements_`` (and the products
    seen, ``products_``) and fixes ``get_feature_names_out()``; ``transform`` returns a polars
    DataFrame of the key columns and those feature columns, and needs a fitted featurizer.
    """

    def __init__(self, chemicals: ChemicalTable, blocks=("cond", "amt", "prod", "pool", "bag",
                 "frac", "chem"), morgan_bits=32, morgan_radius=2,
                 unimol: dict[str, np.ndarray] | None = None, token_slots: int = TOKEN_SLOTS):
        self.chemicals = chemicals
        self.blocks = blocks
        self.morgan_bits = morgan_bits
        self.morgan_radius = morgan_radius
        self.unimol = unimol
        self.token_slots = token_slots

    def _check_settings(self) -> None:
        unknown = [b for b in self.blocks if b not in BLOCKS]
        if unknown:
            raise ValueError(f"unknown feature blocks {unknown}; known: {', '.join(BLOCKS)}")
        if "uni" in self.blocks and self.unimol is None:
            raise ValueError("feature block 'uni' needs the Uni-Mol descriptor table")

    def _chemical_featurizer(self) -> ChemicalFeaturizer:
        return ChemicalFeaturizer(
            self.chemicals, families=POOL_FAMILIES, morgan_bits=self.morgan_bits,
            morgan_radius=self.morgan_radius, unimol=self.unimol,
        )

    def fit(self, X: pl.DataFrame | None = None, y=None):
        """Learn the vocabularies from the training recipes ``X``."""
        self._check_settings()
        if X is None:
            raise ValueError("RecipeFeaturizer.fit needs the training recipes: it learns the "
                             "reactant names and product elements from them")
        chem = self._chemical_featurizer()
        names: set[str] = set()
        for reactants in X["reactants"].to_list():
            names.update(r["name"] for r in reactants)
        elements: set[str] = set()
        products = X["product"].unique(maintain_order=True).to_list()
        for product in products:
            elements |= self._elements(chem.formula_of(product, as_product=True))
        self.chem_ = chem
        self.reactant_names_ = sorted(names)
        self.product_elements_ = sorted(elements, key=lambda e: composition.element_data(e)["Z"])
        self.products_ = sorted(products)
        self.feature_names_out_ = self._feature_names()
        return self

    def vocabulary(self) -> dict[str, list[str]]:
        """What ``fit`` learned, as plain lists (saved with a trained model)."""
        check_is_fitted(self, "feature_names_out_")
        return {"reactant_names": list(self.reactant_names_), "product_elements": list(self.product_elements_),
                "products": list(self.products_)}

    @classmethod
    def from_vocabulary(cls, chemicals: ChemicalTable, vocabulary: dict, **settings) -> "RecipeFeaturizer":
        """A fitted featurizer from ``vocabulary()`` and the constructor's settings, without
        the training recipes."""
        f = cls(chemicals, **settings)
        f._check_settings()
        f.chem_ = f._chemical_featurizer()
        f.reactant_names_ = list(vocabulary["reactant_names"])
        f.product_elements_ = list(vocabulary["product_elements"])
        f.products_ = list(vocabulary["products"])
        f.feature_names_out_ = f._feature_names()
        return f

    def _feature_names(self) -> list[str]:
        """Every feature column, in output order (fixed by the settings and vocabularies)."""
        b = set(self.blocks)
        out = []
        if "cond" in b:
            out += [f"cond__{k}" for k in ("injection_temp_c", "reaction_temp_c", "heating_rate_c_per_min",
                                           "heating_rate_missing", "log_time_min", "temp_step_c")]
        if "amt" in b:
            out += ["amt__n_reactants", "amt__log_total_mmol", "amt__metal__log_mmol", "amt__metal__found"]
            out += [f"amt__{role}__{k}" for role in REACTANT_ROLES for k in ("n", "log_mmol", "frac", "log_ratio_metal")]
        if "prod" in b:
            out += ["prod__formula_known", "prod__phase"] + [f"prod__comp_{k}" for k in composition.names()]
            out += [f"prod__el_{el}" for el in [*self.product_elements_, UNSEEN]]
        if "pool" in b:
            for role in REACTANT_ROLES:
                for fam in POOL_FAMILIES:
                    out += [f"pool__{role}__{fam}_missing_frac"]
                    out += [f"pool__{role}__{fam}_{k}" for k in self.chem_.family_names(fam)]
        for block in ("bag", "frac"):
            if block in b:
                out += [f"{block}__{name}" for name in [*self.reactant_names_, UNSEEN]]
        if "chem" in b:
            out += [f"chem__n_{s}" for s in (*STATUSES, "unseen")]
        if "uni" in b:
            out += ["uni__prod_missing", "uni__n_missing"]
            out += [f"uni__prod_{k}" for k in range(UNIMOL_DIM)] + [f"uni__sum_{k}" for k in range(UNIMOL_DIM)]
        if "tok" in b:  # as _put_tokens writes them: the product token p, then r0..
            feats = token_feature_names()
            for slot in ["p", *(f"r{j}" for j in range(self.token_slots))]:
                out += [f"tok__{slot}__code"] + ([] if slot == "p" else [f"tok__{slot}__mmol"])
                out += [f"tok__{slot}__{k}" for k in feats]
        return out

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        check_is_fitted(self, "feature_names_out_")
        return np.asarray(self.feature_names_out_, dtype=object)

    def unseen(self, X: pl.DataFrame) -> list[dict[str, list[str]]]:
        """Per recipe: the reactant names (``reactants``), product (``product``) and product
        elements (``elements``) the fit never saw."""
        check_is_fitted(self, "feature_names_out_")
        known_names, known_products = set(self.reactant_names_), set(self.products_)
        known_elements = set(self.product_elements_)
        out = []
        for product, reactants in zip(X["product"].to_list(), X["reactants"].to_list()):
            els = self._elements(self.chem_.formula_of(product, as_product=True))
            out.append({
                "reactants": sorted({r["name"] for r in reactants} - known_names),
                "product": [] if product in known_products else [product],
                "elements": sorted(els - known_elements),
            })
        return out

    # ----------------------------------------------------------------------------------
    def _token_vector(self, name: str, role: str | None, as_product: bool = False) -> np.ndarray:
        fam = self.chem_.vectors(name, as_product=as_product)
        parts = [fam[f] if fam[f] is not None else np.full(self.chem_.dim(f), np.nan) for f in TOKEN_FAMILIES]
        parts.append(np.array([float(fam[f] is not None) for f in TOKEN_FAMILIES]))
        parts.append(np.array([float(role == r) for r in REACTANT_ROLES]))
        return np.concatenate(parts)

    def _put_tokens(self, put, i: int, row: dict, names, roles, mmol) -> None:
        feats = token_feature_names()
        if len(names) > self.token_slots:
            raise ValueError(f"recipe {row['recipe_id']}: {len(names)} reactants, more than the "
                             f"{self.token_slots} token slots (config synthesis.featurize.token_slots)")
        slots = [("p", row["product"], None, math.nan)] + [
            (f"r{j}", names[j], roles[j], mmol[j]) if j < len(names) else (f"r{j}", None, None, 0.0)
            for j in range(self.token_slots)]
        for slot, name, role, m in slots:
            put(f"tok__{slot}__code", i, float(token_code(name)) if name is not None else math.nan)
            if slot != "p":
                put(f"tok__{slot}__mmol", i, float(m))
            vec = (self._token_vector(name, role, as_product=slot == "p") if name is not None
                   else np.full(len(feats), math.nan))
            for k, v in zip(feats, vec):
                put(f"tok__{slot}__{k}", i, float(v))

    def _role(self, name: str, recipe_role: str) -> str:
        chem = self.chemicals.get(name)
        if chem is not None and chem.role in REACTANT_ROLES:
            return chem.role
        if chem is not None:  # a product used as a reactant (a seed)
            return "precursor"
        return FALLBACK_ROLES.get(recipe_role, "other")

    @staticmethod
    def _elements(formula: str | None) -> set[str]:
        if not formula:
            return set()
        try:
            return set(composition.composition(formula))
        except ValueError:
            return set()

    def _cations(self, formula: str | None) -> set[str]:
        """The product's metals, plus its most electropositive element (Ge in GeTe, Si in
        SiO2, C in C), whose source is the recipe's metal precursor."""
        els = self._elements(formula)
        if not els:
            return set()
        data = {e: composition.element_data(e) for e in els}
        out = {e for e, d in data.items() if d["metal"] > 0}
        with_x = [e for e in els if data[e]["X"] == data[e]["X"]]
        if with_x:
            out.add(min(with_x, key=lambda e: data[e]["X"]))
        return out

    def transform(self, X: pl.DataFrame) -> pl.DataFrame:
        check_is_fitted(self, "feature_names_out_")
        recipes = X
        blocks = set(self.blocks)
        n = recipes.height
        cols: dict[str, np.ndarray] = {}

        def put(name: str, i: int, value: float):
            col = cols.get(name)
            if col is None:
                col = cols[name] = np.full(n, np.nan)
            col[i] = value

        reactant_names = self.reactant_names_
        known_names = set(reactant_names)
        el_order = self.product_elements_
        known_elements = set(el_order)
        prod_formulas = {p: self.chem_.formula_of(p, as_product=True)
                         for p in recipes["product"].unique(maintain_order=True).to_list()}

        has_source_id = "source_id" in recipes.columns
        keys = {k: [] for k in KEY_COLUMNS}
        for i, row in enumerate(recipes.iter_rows(named=True)):
            reactants = [r for r in row["reactants"]]
            names = [r["name"] for r in reactants]
            keys["recipe_id"].append(row["recipe_id"])
            keys["source"].append(row["source"])
            keys["source_row"].append(row.get("source_row"))
            # the source's own ID column where the table has one (null for sources without
            # one, e.g. a workbook's row numbers); else the key after "<source>:"
            keys["paper_id"].append(
                (paper_id("", row["source_id"]) if row["source_id"] is not None else None)
                if has_source_id else paper_id(row["recipe_id"], None))
            keys["doi"].append(row.get("doi"))
            keys["product"].append(row["product"])
            keys["family"].append(recipe_family(row["product"], names))
            keys["size_nm"].append(row["size_nm"])
            keys["size_spread_pct"].append(row.get("size_spread_pct"))
            keys["shape"].append(row["shape"])
            keys["n_counted"].append(row.get("n_counted"))

            mmol = np.array([float(r["mmol"]) for r in reactants], dtype=float)
            total = float(mmol.sum())
            roles = [self._role(r["name"], r["role"]) for r in reactants]
            prod_formula = prod_formulas[row["product"]]

            if "cond" in blocks:
                rate = row["heating_rate_c_per_min"]
                put("cond__injection_temp_c", i, float(row["injection_temp_c"]))
                put("cond__reaction_temp_c", i, float(row["reaction_temp_c"]))
                put("cond__heating_rate_c_per_min", i, float(rate) if rate is not None else math.nan)
                put("cond__heating_rate_missing", i, float(rate is None))
                put("cond__log_time_min", i, math.log1p(max(float(row["time_min"]), 0.0)))
                put("cond__temp_step_c", i, float(row["reaction_temp_c"]) - float(row["injection_temp_c"]))

            if "amt" in blocks:
                cations = self._cations(prod_formula)
                metal_mmol = math.nan
                best = None
                for name, role, m in zip(names, roles, mmol):
                    if role != "precursor":
                        continue
                    if self._elements(self.chem_.formula_of(name)) & cations and (best is None or m > best):
                        best = m
                if best is not None:
                    metal_mmol = float(best)
                put("amt__n_reactants", i, float(len(reactants)))
                put("amt__log_total_mmol", i, math.log1p(total))
                put("amt__metal__log_mmol", i, math.log1p(metal_mmol) if best is not None else math.nan)
                put("amt__metal__found", i, float(best is not None))
                for role in REACTANT_ROLES:
                    sel = np.array([r == role for r in roles], dtype=bool)
                    m = float(mmol[sel].sum()) if sel.any() else 0.0
                    put(f"amt__{role}__n", i, float(sel.sum()))
                    put(f"amt__{role}__log_mmol", i, math.log1p(m))
                    put(f"amt__{role}__frac", i, m / total if total > 0 else math.nan)
                    put(f"amt__{role}__log_ratio_metal", i,
                        math.log((m + EPS_MMOL) / (metal_mmol + EPS_MMOL)) if best is not None else math.nan)

            if "prod" in blocks:
                put("prod__formula_known", i, float(prod_formula is not None))
                put("prod__phase", i, float(product_phase(row["product"])))
                comp_vec = self.chem_.vectors(row["product"], as_product=True)["comp"]
                for k, v in zip(composition.names(), comp_vec if comp_vec is not None else [math.nan] * len(composition.names())):
                    put(f"prod__comp_{k}", i, float(v))
                fr = composition.element_fractions(prod_formula) if prod_formula else {}
                for el in el_order:
                    put(f"prod__el_{el}", i, float(fr.get(el, 0.0)) if prod_formula else math.nan)
                put(f"prod__el_{UNSEEN}", i, float(sum(v for el, v in fr.items() if el not in known_elements))
                    if prod_formula else math.nan)

            if "pool" in blocks:
                for role in REACTANT_ROLES:
                    idx = [j for j, r in enumerate(roles) if r == role]
                    for fam in POOL_FAMILIES:
                        fam_names = self.chem_.family_names(fam)
                        prefix = f"pool__{role}__{fam}_"
                        if not idx:
                            put(f"pool__{role}__{fam}_missing_frac", i, 0.0)
                            for k in fam_names:
                                put(prefix + k, i, math.nan)
                            continue
                        w = mmol[idx]
                        w = w if w.sum() > 0 else np.ones(len(idx))
                        vecs = [self.chem_.vectors(names[j])[fam] for j in idx]
                        have = np.array([v is not None for v in vecs])
                        put(f"pool__{role}__{fam}_missing_frac", i, float(w[~have].sum() / w.sum()))
                        if have.any():
                            wh = w[have] if w[have].sum() > 0 else np.ones(int(have.sum()))
                            mean = np.average(np.vstack([v for v in vecs if v is not None]), axis=0, weights=wh)
                        else:
                            mean = np.full(len(fam_names), math.nan)
                        for k, v in zip(fam_names, mean):
                            put(prefix + k, i, float(v))

            if "bag" in blocks or "frac" in blocks:
                amounts: dict[str, float] = {}
                for name, m in zip(names, mmol):
                    amounts[name] = amounts.get(name, 0.0) + float(m)
                unseen = sum(a for name, a in amounts.items() if name not in known_names)
                for name, a in [*((nm, amounts.get(nm, 0.0)) for nm in reactant_names), (UNSEEN, unseen)]:
                    if "bag" in blocks:
                        put(f"bag__{name}", i, math.log1p(a))
                    if "frac" in blocks:
                        put(f"frac__{name}", i, a / total if total > 0 else 0.0)

            if "chem" in blocks:
                statuses = [self.chemicals.status(nm) for nm in names]
                for s in STATUSES:
                    put(f"chem__n_{s}", i, float(sum(st == s for st in statuses)))
                put("chem__n_unseen", i, float(sum(nm not in known_names for nm in names)))

            if "uni" in blocks:
                pv = self.unimol.get(row["product"])
                put("uni__prod_missing", i, float(pv is None))
                vecs = [self.unimol[nm] for nm in names if nm in self.unimol]
                put("uni__n_missing", i, float(len(names) - len(vecs)))
                s = np.sum(vecs, axis=0) if vecs else np.full(UNIMOL_DIM, math.nan)
                for k in range(UNIMOL_DIM):
                    put(f"uni__prod_{k}", i, float(pv[k]) if pv is not None else math.nan)
                for k in range(UNIMOL_DIM):
                    put(f"uni__sum_{k}", i, float(s[k]))

            if "tok" in blocks:
                self._put_tokens(put, i, row, names, roles, mmol)

        key_schema = {
            "recipe_id": pl.String, "source": pl.String, "source_row": pl.Int64, "paper_id": pl.Int64, "doi": pl.String,
            "product": pl.String, "family": pl.String, "size_nm": pl.Float64,
            "size_spread_pct": pl.Float64, "shape": pl.String, "n_counted": pl.Int64,
        }
        out = pl.DataFrame({k: pl.Series(k, v, dtype=key_schema[k]) for k, v in keys.items()})
        names = self.feature_names_out_
        if n and set(cols) != set(names):  # the column list and the computation agree
            raise AssertionError(f"feature columns differ from get_feature_names_out(): "
                                 f"{sorted(set(cols) ^ set(names))[:5]}")
        feats = pl.DataFrame({c: pl.Series(c, cols.get(c, np.full(n, np.nan)), dtype=pl.Float64) for c in names})
        return pl.concat([out, feats], how="horizontal") if feats.width else out


def feature_columns(table: pl.DataFrame) -> list[str]:
    """The feature columns of a feature table (``<block>__<name>``), in order."""
    return [c for c in table.columns if "__" in c]


def block_of(column: str) -> str:
    return column.split("__", 1)[0]


def describe_columns(table: pl.DataFrame) -> pl.DataFrame:
    """``column``, ``block``, ``kind`` (key or feature), ``description`` of every column."""
    descriptions = {
        "recipe_id": "recipe key, from recipes.parquet",
        "source": "recipe source name (config recipes.sources)",
        "source_row": "row number in the source file (header = 1): the file order of protocol P",
        "paper_id": "integer ID of a CSV source (the paper's ID), null otherwise",
        "doi": "publication DOI",
        "product": "product as in recipes.parquet (phase suffix kept)",
        "family": "product|sorted reactant names: the group of protocol G",
        "size_nm": "target: mean size, nm",
        "size_spread_pct": "size spread, % (not a feature)",
        "shape": "target: shape class",
        "n_counted": "particles counted for the size label",
    }
    block_text = {
        "cond": "reaction conditions",
        "amt": "amounts per role of the chemicals table, ratios to the metal precursor",
        "prod": "product composition descriptors and element fractions",
        "pool": "mmol-weighted mean descriptors per role (rd = RDKit, comp = composition, fp = Morgan bit)",
        "bag": "ln(1 + mmol) of one reactant name",
        "frac": "mmol share of one reactant name",
        "chem": "reactant counts by structure status in the chemicals table",
        "uni": "the paper's Uni-Mol vectors (product; sum over reactants)",
        "tok": "chemical tokens (product and reactant slots: name code, mmol, vector) for the transformer",
    }
    rows = []
    for c in table.columns:
        if "__" in c:
            b = block_of(c)
            rows.append({"column": c, "block": b, "kind": "feature", "description": block_text.get(b, "")})
        else:
            rows.append({"column": c, "block": "", "kind": "key", "description": descriptions.get(c, "")})
    return pl.DataFrame(rows, schema={"column": pl.String, "block": pl.String, "kind": pl.String,
                                      "description": pl.String})


