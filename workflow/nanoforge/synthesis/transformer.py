"""The token transformer (model kind ``transformer``): a recipe as a set of chemical tokens.

Tokens: the product and every reactant of the recipe (feature block ``tok`` of
``nanoforge.features.recipe``). A token's input is the chemical's vector (``tokens: chem``:
RDKit + composition descriptors from the project's chemicals table, which covers chemicals
without a Uni-Mol vector; ``uni``: the paper's 512-d Uni-Mol vector looked up by name in the
file ``unimol``; ``both``), its role one-hot, its amount (ln(1 + mmol), robust-scaled on the
training tokens), a product flag and an intermediate flag, with the reaction conditions
(block ``cond``, standardised) appended to every token. A linear map to ``d_model``, a
learned CLS token, no positional encoding (a recipe is a set), empty slots masked; a post-LN
encoder (``n_layers`` x ``n_heads``, feed-forward ``ffn``); the head sees the CLS output and
the conditions (Linear(conditions -> 32)).

Heads: size: the 10 %, 50 % and 90 % quantiles of ln(size) (pinball loss; the median is the
prediction, the prediction that minimises the absolute error, and [q10, q90] is the 80 %
interval, ``predict_interval``), or ``size_loss: huber`` (one output; the interval is then
the spread of the seeds). Shape: the classes (cross-entropy), plus, when the harness gives
the measured sizes of the training rows, an auxiliary ln(size) output (``aux_size_weight``);
the measured size is never an input.

Training: AdamW (``lr``, ``weight_decay``), ``warmup_epochs`` of linear warm-up then cosine
decay, an exponential moving average of the weights (``ema``; the averaged weights
predict). ``n_seeds`` members (own initialisation, own order of the rows) are trained
together as one batched network, so an ensemble costs about the kernel launches of one
model; their outputs are averaged. Deterministic for a given seed and device. ``threads`` -> ``torch.set_num_threads``;
``device: auto`` uses CUDA where there is a GPU.

Reaction-intermediate augmentation (``augment: k``): every training recipe gets k copies in
which 1-3 pairs of reactants A, B whose intermediate ``A@B`` is in the Uni-Mol table are
replaced by it, fully (the smaller amount is consumed) or in part (a random part of the
smaller amount moves to a new ``A@B`` token), labels unchanged, as in the paper. The copies
are drawn once per ``fit`` (shared by the members) from the rows given to it, so only ever from training rows (the
harness never gives a validation row to ``fit``). An intermediate's vector is its Uni-Mol
vector; its chem vector is the mean of A's and B's.

Identity: a chemical used in at least ``identity_min_count`` training recipes also gets a
learned embedding of its own (added to its token's), so that chemicals whose descriptors
coincide (or are missing) stay apart; any other chemical shares one "unseen" embedding.

Weak rows (``weak_tolerance``): a training row with fewer than ``weak_min_counted`` counted
particles counts in the loss only where its predicted median is off by more than that
relative error (the paper's use of its 2,769 weak recipes); null = every row counts fully.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from sklearn.base import BaseEstimator

from nanoforge.features.recipe import token_code

QUANTILES = (0.1, 0.5, 0.9)
TOKEN_MODES = ("chem", "uni", "both")
ROLE_PREFIX = "role_"
CHEM_PARTS = ("rd_", "comp_", "has_")
COND_DIM = 32


class TransformerError(ValueError):
    """The transformer cannot be fitted as configured or on these columns."""


def token_layout(feature_names) -> dict:
    """Column positions of the token block and the conditions in X:
    ``slots`` (``p``, ``r0``, ...), ``code`` [slot], ``mmol`` [slot] (None for the product),
    ``feats`` (the per-token feature names), ``vec`` [slot][feature], ``cond`` (positions)."""
    names = list(feature_names)
    index = {n: j for j, n in enumerate(names)}
    slots, feats = [], []
    for n in names:
        if not n.startswith("tok__"):
            continue
        _, slot, feat = n.split("__", 2)
        if slot not in slots:
            slots.append(slot)
        if slot == "p" and feat != "code":
            feats.append(feat)
    if "p" not in slots or len(slots) < 2:
        raise TransformerError("the transformer needs feature block tok (the product and reactant slots) "
                               "in the run's feature set")
    try:
        vec = [[index[f"tok__{s}__{f}"] for f in feats] for s in slots]
        code = [index[f"tok__{s}__code"] for s in slots]
    except KeyError as e:
        raise TransformerError(f"token column {e.args[0]} is missing from the feature table") from None
    mmol = [None] + [index.get(f"tok__{s}__mmol") for s in slots[1:]]
    if None in mmol[1:]:
        raise TransformerError("a reactant slot of block tok has no mmol column")
    cond = [j for j, n in enumerate(names) if n.startswith("cond__")]
    return {"slots": slots, "code": code, "mmol": mmol, "feats": feats, "vec": vec, "cond": cond}


def read_intermediates(unimol: dict[str, np.ndarray]) -> dict[int, dict[int, int]]:
    """code(A) -> {code(B): code(A@B)} for every name ``A@B`` of the Uni-Mol table."""
    out: dict[int, dict[int, int]] = {}
    for name in unimol:
        parts = name.split("@")
        if len(parts) == 2 and all(parts):
            out.setdefault(token_code(parts[0]), {})[token_code(parts[1])] = token_code(name)
    return out


def augment_recipes(codes, mmol, vecs, inter, pairs, copies: int, rng, merge, max_subs: int = 3):
    """``copies`` augmented versions of each recipe (rows of the token arrays): 1..max_subs
    substitutions of a pair (A, B) with a known intermediate (``pairs``) by ``A@B``; returns
    the new arrays and ``origin`` (the row each copy came from). ``merge(vec_a, vec_b, code)``
    gives the intermediate's vector. Recipes without such a pair get no copy."""
    out = {"codes": [], "mmol": [], "vecs": [], "inter": [], "origin": []}
    n_slots = codes.shape[1]
    for i in range(codes.shape[0]):
        for _ in range(copies):
            c, m, v, t = codes[i].copy(), mmol[i].copy(), vecs[i].copy(), inter[i].copy()
            done = 0
            for _ in range(int(rng.integers(1, max_subs + 1))):
                present = [j for j in range(1, n_slots) if m[j] > 0 and np.isfinite(c[j])]
                found = [(a, b) for a in present for b in present
                         if a != b and int(c[b]) in pairs.get(int(c[a]), {})]
                if not found:
                    break
                a, b = found[int(rng.integers(len(found)))]
                code_ab = pairs[int(c[a])][int(c[b])]
                vec_ab = merge(v[a], v[b], code_ab)
                empty = [j for j in range(1, n_slots) if not (m[j] > 0 and np.isfinite(c[j]))]
                if rng.random() < 0.5 and empty:  # a random part moves to a new token
                    part = rng.random() * min(m[a], m[b])
                    m[a] -= part
                    m[b] -= part
                    k = empty[0]
                    c[k], m[k], v[k], t[k] = code_ab, part, vec_ab, 1.0
                else:  # the smaller amount reacts fully
                    small, large = (a, b) if m[a] <= m[b] else (b, a)
                    m[large] -= m[small]
                    c[small], v[small], t[small] = code_ab, vec_ab, 1.0
                    if m[large] <= 0:
                        c[large], m[large] = np.nan, 0.0
                done += 1
            if done:
                for key, arr in zip(("codes", "mmol", "vecs", "inter"), (c, m, v, t)):
                    out[key].append(arr)
                out["origin"].append(i)
    if not out["origin"]:
        return (codes[:0], mmol[:0], vecs[:0], inter[:0], np.zeros(0, dtype=int))
    return (np.stack(out["codes"]), np.stack(out["mmol"]), np.stack(out["vecs"]), np.stack(out["inter"]),
            np.asarray(out["origin"]))


def _standardiser(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and standard deviations of ``a`` over its finite values (0 and 1 for a
    column with none, or a constant one)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a column without a finite value
        mean, sd = np.nanmean(a, axis=0), np.nanstd(a, axis=0)
    return np.nan_to_num(mean), np.where(np.isfinite(sd) & (sd > 0), sd, 1.0)


def _ensemble_net(members: int, n_in: int, n_cond: int, d: int, layers: int, heads: int, ffn: int,
                  dropout: float, n_out: int, n_ids: int):
    """``members`` independent token transformers computed together: every weight has a
    leading member axis and each layer is one batched matrix product over the members, so
    that an ensemble of seeds costs about as many kernel launches as one model. Inputs:
    tokens [M, B, S, F], identity indices [M, B, S], padding mask [M, B, S] (True = empty),
    conditions [M, B, C]; output [M, B, n_out]."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    def linear(fan_in, fan_out):
        bound = 1 / math.sqrt(fan_in)
        return (nn.Parameter(torch.empty(members, fan_in, fan_out).uniform_(-bound, bound)),
                nn.Parameter(torch.empty(members, 1, fan_out).uniform_(-bound, bound)))

    def apply(x, wb):  # x [M, ..., fan_in]
        w, bias = wb
        shape = x.shape
        return torch.baddbmm(bias, x.reshape(members, -1, shape[-1]), w).reshape(*shape[:-1], w.shape[-1])

    class EnsembleTokenNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed_w, self.embed_b = linear(n_in, d)
            self.identity = nn.Parameter(torch.zeros(members, n_ids, d))  # 0: no own embedding
            self.cls = nn.Parameter(torch.randn(members, 1, 1, d) * 0.02)
            self.layers = nn.ModuleList()
            for _ in range(layers):
                layer = nn.Module()
                layer.qkv_w, layer.qkv_b = linear(d, 3 * d)
                layer.out_w, layer.out_b = linear(d, d)
                layer.ff1_w, layer.ff1_b = linear(d, ffn)
                layer.ff2_w, layer.ff2_b = linear(ffn, d)
                layer.ln1_g, layer.ln1_b = nn.Parameter(torch.ones(members, 1, 1, d)), nn.Parameter(torch.zeros(members, 1, 1, d))
                layer.ln2_g, layer.ln2_b = nn.Parameter(torch.ones(members, 1, 1, d)), nn.Parameter(torch.zeros(members, 1, 1, d))
                self.layers.append(layer)
            self.cond_w, self.cond_b = linear(max(n_cond, 1), COND_DIM)
            self.head1_w, self.head1_b = linear(d + COND_DIM, d)
            self.head2_w, self.head2_b = linear(d, n_out)

        def encode(self, tokens, ids, pad, attention=False):
            """CLS output [M, B, d]; with ``attention``, also the last layer's attention of
            the CLS token over the recipe's tokens [M, B, S] (mean over heads)."""
            m, b, s, _ = tokens.shape
            member = torch.arange(m, device=tokens.device)[:, None, None]
            h = apply(tokens, (self.embed_w, self.embed_b)) + self.identity[member, ids]
            h = torch.cat([self.cls.expand(m, b, 1, d), h], 2)  # [M, B, S + 1, d]
            keep = torch.cat([torch.ones(m, b, 1, dtype=torch.bool, device=pad.device), ~pad], 2)
            mask = keep.reshape(m * b, 1, 1, s + 1)
            p = dropout if self.training else 0.0
            weights = None
            for k, layer in enumerate(self.layers):
                qkv = apply(h, (layer.qkv_w, layer.qkv_b)).reshape(m * b, s + 1, 3, heads, d // heads)
                q, kk, v = qkv.permute(2, 0, 3, 1, 4)  # each [M * B, heads, S + 1, d / heads]
                att = F.scaled_dot_product_attention(q, kk, v, attn_mask=mask, dropout_p=p)
                if attention and k == len(self.layers) - 1:
                    scores = (q[:, :, :1] @ kk.transpose(-1, -2)) / math.sqrt(d // heads)
                    scores = scores.masked_fill(~mask, float("-inf")).softmax(-1)  # [M*B, heads, 1, S+1]
                    weights = scores.mean(1)[:, 0, 1:].reshape(m, b, s)
                att = att.transpose(1, 2).reshape(m, b, s + 1, d)
                h = h + F.dropout(apply(att, (layer.out_w, layer.out_b)), p, self.training)
                h = F.layer_norm(h, (d,)) * layer.ln1_g + layer.ln1_b
                ff = apply(F.dropout(F.relu(apply(h, (layer.ff1_w, layer.ff1_b))), p, self.training),
                           (layer.ff2_w, layer.ff2_b))
                h = h + F.dropout(ff, p, self.training)
                h = F.layer_norm(h, (d,)) * layer.ln2_g + layer.ln2_b
            return (h[:, :, 0], weights) if attention else h[:, :, 0]

        def forward(self, tokens, ids, pad, cond):
            z = torch.cat([self.encode(tokens, ids, pad), F.relu(apply(cond, (self.cond_w, self.cond_b)))], 2)
            return apply(F.gelu(apply(z, (self.head1_w, self.head1_b))), (self.head2_w, self.head2_b))

    return EnsembleTokenNet()


class TokenTransformer(BaseEstimator):
    """Size regressor (``task: size``) or shape classifier (``task: shape``) over the
    recipe's chemical tokens; scikit-learn fit / predict (/ predict_proba,
    predict_interval). ``feature_names``: the names of X's columns (the harness's)."""

    def __init__(self, feature_names=(), task: str = "size", tokens: str = "chem", unimol=None,
                 d_model: int = 64, n_layers: int = 2, n_heads: int = 4, ffn: int = 128,
                 dropout: float = 0.0, epochs: int = 100, batch_size: int = 64, lr: float = 1e-3,
                 weight_decay: float = 0.01, warmup_epochs: int = 10, ema: float = 0.99,
                 size_loss: str = "quantile", huber_delta: float = 0.1, aux_size_weight: float = 0.5,
                 identity_min_count: int = 3, augment: int = 0, weak_tolerance: float | None = None, weak_min_counted: int = 300,
                 n_seeds: int = 1, seed: int = 0, threads: int = 1, device: str = "cpu"):
        self.feature_names = feature_names
        self.task = task
        self.tokens = tokens
        self.unimol = unimol
        self.d_model = d_model
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.ffn = ffn
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.warmup_epochs = warmup_epochs
        self.ema = ema
        self.size_loss = size_loss
        self.huber_delta = huber_delta
        self.aux_size_weight = aux_size_weight
        self.identity_min_count = identity_min_count
        self.augment = augment
        self.weak_tolerance = weak_tolerance
        self.weak_min_counted = weak_min_counted
        self.n_seeds = n_seeds
        self.seed = seed
        self.threads = threads
        self.device = device

    # -- inputs --------------------------------------------------------------------------
    def _check(self):
        if self.task not in ("size", "shape"):
            raise TransformerError(f"task must be size or shape, not {self.task!r}")
        if self.tokens not in TOKEN_MODES:
            raise TransformerError(f"tokens must be one of {TOKEN_MODES}, not {self.tokens!r}")
        if self.size_loss not in ("quantile", "huber"):
            raise TransformerError(f"size_loss must be quantile or huber, not {self.size_loss!r}")
        if (self.tokens != "chem" or self.augment) and not self.unimol:
            raise TransformerError("tokens uni/both and augment need params.unimol, the Uni-Mol table "
                                   "(config synthesis.unimol.path)")
        if self.d_model % self.n_heads:
            raise TransformerError(f"d_model {self.d_model} is not a multiple of n_heads {self.n_heads}")

    def _unimol_table(self) -> dict[int, np.ndarray]:
        from nanoforge.features.chemical import read_unimol

        table = read_unimol(self.unimol)
        self.pairs_ = read_intermediates(table)
        return {token_code(n): v for n, v in table.items()}

    def _split(self, X):
        """X -> codes [n, S], mmol [n, S] (product 0), raw vectors [n, S, F], cond [n, C]."""
        X = np.asarray(X, dtype=float)
        lay = self.layout_
        codes = X[:, lay["code"]]
        mmol = np.zeros_like(codes)
        mmol[:, 1:] = np.nan_to_num(X[:, lay["mmol"][1:]])
        feats = lay["feats"]
        role = [k for k, f in enumerate(feats) if f.startswith(ROLE_PREFIX)]
        chem = [k for k, f in enumerate(feats) if f.startswith(CHEM_PARTS)]
        vec_all = X[:, np.asarray(lay["vec"])]  # [n, S, F]
        parts = [vec_all[:, :, role]]
        if self.tokens in ("chem", "both"):
            parts.append(vec_all[:, :, chem])
        if self.tokens in ("uni", "both"):
            parts.append(self._uni_vectors(codes))
        return codes, mmol, np.concatenate(parts, axis=2), X[:, lay["cond"]]

    def _uni_vectors(self, codes):
        dim = len(next(iter(self.uni_.values()))) if self.uni_ else 512
        out = np.full(codes.shape + (dim + 1,), np.nan)
        for idx in np.ndindex(codes.shape):
            c = codes[idx]
            if np.isfinite(c):
                v = self.uni_.get(int(c))
                out[idx + (slice(None),)] = (np.append(v, 1.0) if v is not None
                                             else np.append(np.full(dim, np.nan), 0.0))
        return out

    def _merge(self, va, vb, code_ab):
        """The vector of intermediate A@B: A's role; the mean of A's and B's chem parts
        (presence flags: either's); the intermediate's own Uni-Mol vector."""
        n_role = self.n_role_
        out = va.copy()
        chem_end = n_role + (self.n_chem_ if self.tokens in ("chem", "both") else 0)
        if chem_end > n_role:
            pair = np.vstack([va[n_role:chem_end], vb[n_role:chem_end]])
            with warnings.catch_warnings():  # a descriptor neither has: NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                out[n_role:chem_end] = np.nanmean(pair, axis=0)
            flags = [n_role + k for k, f in enumerate(self.chem_feats_) if f.startswith("has_")]
            out[flags] = np.maximum(va[flags], vb[flags])
        if self.tokens in ("uni", "both"):
            v = self.uni_.get(int(code_ab))
            out[chem_end:-1] = v if v is not None else np.nan
            out[-1] = float(v is not None)
        return out

    def _fit_scalers(self, codes, mmol, vecs, cond):
        present = np.isfinite(codes)
        self.vec_mean_, self.vec_scale_ = _standardiser(vecs[present])
        amounts = np.log1p(mmol[:, 1:][present[:, 1:] & (mmol[:, 1:] > 0)])
        if amounts.size == 0:
            raise TransformerError("no reactant with a positive amount among the training rows")
        q1, self.amt_median_, q3 = np.percentile(amounts, [25, 50, 75])
        self.amt_scale_ = float(q3 - q1) if q3 > q1 else 1.0
        self.cond_mean_, self.cond_scale_ = _standardiser(cond)

    def _fit_identities(self, codes):
        """Chemicals (codes) in at least ``identity_min_count`` training recipes get their own
        learned embedding (index 1..); every other one, index 0 (0 = off)."""
        self.identities_ = {}
        if self.identity_min_count:
            found, counts = np.unique(codes[np.isfinite(codes)], return_counts=True)
            kept = found[counts >= int(self.identity_min_count)]
            self.identities_ = {int(c): k + 1 for k, c in enumerate(kept)}

    def _ids(self, codes) -> np.ndarray:
        out = np.zeros(codes.shape, dtype=np.int64)
        for idx in zip(*np.nonzero(np.isfinite(codes))):
            out[idx] = self.identities_.get(int(codes[idx]), 0)
        return out

    def _inputs(self, codes, mmol, vecs, inter, cond):
        """Scaled token inputs [n, S, F + 3 + C], identity indices [n, S], padding mask
        [n, S], conditions [n, C]."""
        n, s = codes.shape
        pad = ~(np.isfinite(codes) & ((mmol > 0) | (np.arange(s) == 0)))
        v = np.nan_to_num((vecs - self.vec_mean_) / self.vec_scale_)
        amt = np.where(mmol > 0, (np.log1p(np.maximum(mmol, 0)) - self.amt_median_) / self.amt_scale_, 0.0)
        prod = np.zeros((n, s))
        prod[:, 0] = 1.0
        c = np.nan_to_num((cond - self.cond_mean_) / self.cond_scale_) if cond.shape[1] else np.zeros((n, 0))
        tokens = np.concatenate([v, amt[..., None], prod[..., None], inter[..., None],
                                 np.repeat(c[:, None, :], s, axis=1)], axis=2)
        tokens[pad] = 0.0
        return (tokens.astype(np.float32), self._ids(codes), pad,
                (c if c.shape[1] else np.zeros((n, 1))).astype(np.float32))

    # -- fit / predict -------------------------------------------------------------------
    def _device(self):
        import torch

        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def fit(self, X, y, sample_weight=None, size=None, counted=None):
        import torch

        self._check()
        torch.set_num_threads(int(self.threads))
        self.layout_ = token_layout(self.feature_names)
        if np.asarray(X).shape[1] != len(self.feature_names):
            raise TransformerError(f"{len(self.feature_names)} feature names for {np.asarray(X).shape[1]} columns")
        feats = self.layout_["feats"]
        self.n_role_ = sum(f.startswith(ROLE_PREFIX) for f in feats)
        self.chem_feats_ = [f for f in feats if f.startswith(CHEM_PARTS)]
        self.n_chem_ = len(self.chem_feats_)
        self.uni_, self.pairs_ = {}, {}
        if self.unimol and (self.tokens != "chem" or self.augment):
            self.uni_ = self._unimol_table()
        codes, mmol, vecs, cond = self._split(X)
        n = codes.shape[0]
        y = np.asarray(y)
        if self.task == "size":
            target = np.log(y.astype(float))
            self.target_mean_ = float(target.mean())
            target = target - self.target_mean_
            self.classes_ = None
        else:
            self.classes_, target = np.unique(y.astype(str), return_inverse=True)
        aux = None
        if self.task == "shape" and size is not None and self.aux_size_weight:
            aux = np.log(np.asarray(size, dtype=float))
            self.aux_mean_ = float(aux.mean())
            aux = aux - self.aux_mean_
        weight = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        weak = np.zeros(n, dtype=bool)
        if self.weak_tolerance is not None and counted is not None:
            weak = np.nan_to_num(np.asarray(counted, dtype=float), nan=0.0) < self.weak_min_counted
        inter = np.zeros(codes.shape)
        self._fit_scalers(codes, mmol, vecs, cond)
        self._fit_identities(codes)
        device = self._device()
        torch.manual_seed(int(self.seed))
        rng = np.random.default_rng(int(self.seed))
        arrays = [codes, mmol, vecs, inter]
        origin = np.arange(n)
        if self.augment and self.pairs_:
            a_codes, a_mmol, a_vecs, a_inter, a_origin = augment_recipes(
                codes, mmol, vecs, inter, self.pairs_, int(self.augment), rng, self._merge)
            arrays = [np.concatenate([b, a]) for b, a in zip(arrays, (a_codes, a_mmol, a_vecs, a_inter))]
            origin = np.concatenate([origin, a_origin])
        self.origins_ = origin  # the fit row behind every training row (copies included)
        tokens, ids, pad, c = self._inputs(*arrays, cond[origin])
        self.net_, self.history_ = self._train(tokens, ids, pad, c, target[origin],
                                               None if aux is None else aux[origin], weight[origin],
                                               weak[origin], device)
        return self

    def _n_out(self, with_aux: bool) -> int:
        if self.task == "size":
            return len(QUANTILES) if self.size_loss == "quantile" else 1
        return len(self.classes_) + int(with_aux)

    def _train(self, tokens, ids, pad, cond, target, aux, weight, weak, device):
        """Train the ``n_seeds`` members together (each its own initialisation and order of
        the rows); returns the network holding the averaged (EMA) weights and the mean
        training loss per epoch."""
        import torch
        import torch.nn.functional as F

        n, m = tokens.shape[0], int(self.n_seeds)
        net = _ensemble_net(m, tokens.shape[2], cond.shape[1], int(self.d_model), int(self.n_layers),
                            int(self.n_heads), int(self.ffn), float(self.dropout), self._n_out(aux is not None),
                            len(self.identities_) + 1).to(device)
        T = torch.from_numpy(tokens).to(device)
        I = torch.from_numpy(ids).to(device)  # noqa: E741
        P = torch.from_numpy(pad).to(device)
        C = torch.from_numpy(cond).to(device)
        Y = torch.from_numpy(np.asarray(target, dtype=np.float32 if self.task == "size" else np.int64)).to(device)
        A = None if aux is None else torch.from_numpy(aux.astype(np.float32)).to(device)
        W = torch.from_numpy(weight.astype(np.float32)).to(device)
        K = torch.from_numpy(weak).to(device)
        tol = math.log1p(self.weak_tolerance) if self.weak_tolerance is not None else 0.0
        q = torch.tensor(QUANTILES, device=device)
        opt = torch.optim.AdamW(net.parameters(), lr=float(self.lr), weight_decay=float(self.weight_decay),
                                fused=device.type == "cuda")  # one kernel per step on a GPU
        bs = int(self.batch_size)
        per_epoch = max(1, math.ceil(n / bs))
        total, warm = int(self.epochs) * per_epoch, int(self.warmup_epochs) * per_epoch

        def lr_factor(step):
            if step < warm:
                return (step + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
        params = list(net.parameters())
        ema = [p.detach().clone() for p in params]
        gen = torch.Generator().manual_seed(int(self.seed))
        losses, step = [], 0
        for _ in range(int(self.epochs)):
            net.train()
            perm = torch.argsort(torch.rand(m, n, generator=gen), dim=1).to(device)  # per member
            epoch_loss = torch.zeros((), device=device)  # summed on the device: no sync per step
            for start in range(0, n, bs):
                b = perm[:, start:start + bs]  # [M, B]
                out = net(T[b], I[b], P[b], C[b])  # [M, B, out]
                w = W[b]
                if self.task == "size":
                    y = Y[b]
                    if self.size_loss == "quantile":
                        err = y[..., None] - out
                        per = torch.maximum(q * err, (q - 1) * err).sum(-1)
                        mid = err[..., 1]
                    else:
                        per = F.huber_loss(out[..., 0], y, delta=float(self.huber_delta), reduction="none")
                        mid = y - out[..., 0]
                    per = per * ((~K[b]) | (mid.detach().abs() > tol))
                else:
                    n_cls = len(self.classes_)
                    per = F.cross_entropy(out[..., :n_cls].reshape(-1, n_cls), Y[b].reshape(-1),
                                          reduction="none").reshape(b.shape)
                    if A is not None:
                        per = per + self.aux_size_weight * (out[..., n_cls] - A[b]).abs()
                loss = ((per * w).sum(1) / w.sum(1)).sum()  # members are independent: their sum
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                step += 1
                decay = min(float(self.ema), (1 + step) / (10 + step))
                with torch.no_grad():
                    torch._foreach_lerp_(ema, [p.detach() for p in params], 1 - decay)
                epoch_loss += loss.detach() * (b.shape[1] / m)
            losses.append(float(epoch_loss) / n)
        with torch.no_grad():
            for p, e in zip(params, ema):
                p.copy_(e)
        net.eval()
        return net, losses

    def _outputs(self, X, attention: bool = False):
        """Raw outputs of every member [members, n, outputs] (with ``attention``, also the
        CLS token's attention over the tokens [members, n, slots])."""
        import torch

        codes, mmol, vecs, cond = self._split(X)
        tokens, ids, pad, c = self._inputs(codes, mmol, vecs, np.zeros(codes.shape), cond)
        net, m = self.net_, int(self.n_seeds)
        device = next(net.parameters()).device
        outs, atts = [], []
        with torch.no_grad():
            for s in range(0, tokens.shape[0], 1024):
                t = torch.from_numpy(tokens[s:s + 1024]).to(device)
                args = [torch.from_numpy(a[s:s + 1024]).to(device) for a in (ids, pad, c)]
                t, i, p, cc = (x.unsqueeze(0).expand(m, *x.shape) for x in (t, *args))
                outs.append(net(t, i, p, cc).cpu().numpy())
                if attention:
                    atts.append(net.encode(t, i, p, attention=True)[1].cpu().numpy())
        empty = np.zeros((m, 0, 1))
        out = np.concatenate(outs, axis=1) if outs else empty
        return (out, np.concatenate(atts, axis=1) if atts else empty) if attention else out

    def _log_quantiles(self, X) -> np.ndarray:
        out = self._outputs(X)
        if self.size_loss == "quantile":
            return np.sort(out, axis=2).mean(axis=0) + self.target_mean_  # [n, 3]
        mid = out[:, :, 0]
        lo, hi = (np.quantile(mid, QUANTILES[0], axis=0), np.quantile(mid, QUANTILES[2], axis=0))
        return np.column_stack([lo, mid.mean(0), hi]) + self.target_mean_

    def predict(self, X):
        if self.task == "size":
            return np.exp(self._log_quantiles(X)[:, 1])
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def predict_proba(self, X):
        if self.task != "shape":
            raise AttributeError("predict_proba: a size model")
        logits = self._outputs(X)[:, :, :len(self.classes_)]
        e = np.exp(logits - logits.max(axis=2, keepdims=True))
        return (e / e.sum(axis=2, keepdims=True)).mean(axis=0)

    def attention_by_role(self, X) -> dict[str, float]:
        """The CLS token's attention in the last layer, summed per role of the tokens it
        attends to (``product`` and the roles of the chemicals table; mean over rows and
        members, renormalised over the recipe's tokens without the CLS token itself; the shares
        sum to 1 when every token has a role)."""
        _, att = self._outputs(X, attention=True)  # [M, n, S]
        X = np.asarray(X, dtype=float)
        feats = self.layout_["feats"]
        roles = [f for f in feats if f.startswith(ROLE_PREFIX)]
        role_cols = np.asarray(self.layout_["vec"])[:, [feats.index(r) for r in roles]]  # [S, R]
        onehot = np.nan_to_num(X[:, role_cols])  # [n, S, R]
        share = att.mean(axis=0)  # [n, S]
        share = share / np.maximum(share.sum(axis=1, keepdims=True), 1e-12)  # over the recipe's tokens
        out = {"product": float(share[:, 0].mean())}
        for k, role in enumerate(roles):
            out[role[len(ROLE_PREFIX):]] = float((share[:, 1:] * onehot[:, 1:, k]).sum(1).mean())
        return out

    def predict_interval(self, X):
        """(low, high) in nm: the 80 % prediction interval of the size of each row."""
        if self.task != "size":
            raise AttributeError("predict_interval: a shape model")
        lq = self._log_quantiles(X)
        return np.exp(lq[:, 0]), np.exp(lq[:, 2])
