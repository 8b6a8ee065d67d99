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
predict), ``n_seeds`` members with seeds ``seed * 1000 + k`` whose predictions are averaged.
Deterministic for a given seed and device. ``threads`` -> ``torch.set_num_threads``;
``device: auto`` uses CUDA where there is a GPU.

Reaction-intermediate augmentation (``augment: k``): every training recipe gets k copies in
which 1-3 pairs of reactants A, B whose intermediate ``A@B`` is in the Uni-Mol table are
replaced by it, fully (the smaller amount is consumed) or in part (a random part of the
smaller amount moves to a new ``A@B`` token), labels unchanged, as in the paper. The copies
are drawn inside ``fit`` from the rows given to it, so only ever from training rows (the
harness never gives a validation row to ``fit``). An intermediate's vector is its Uni-Mol
vector; its chem vector is the mean of A's and B's.

Weak rows (``weak_tolerance``): a training row with fewer than ``weak_min_counted`` counted
particles counts in the loss only where its predicted median is off by more than that
relative error (the paper's use of its 2,769 weak recipes); null = every row counts fully.
"""

from __future__ import annotations

import math

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


def _net(n_in: int, n_cond: int, d: int, layers: int, heads: int, ffn: int, dropout: float, n_out: int):
    import torch
    from torch import nn

    class TokenNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Linear(n_in, d)
            self.cls = nn.Parameter(torch.randn(1, 1, d) * 0.02)
            layer = nn.TransformerEncoderLayer(d, heads, ffn, dropout, batch_first=True, norm_first=False)
            self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            self.cond = nn.Linear(max(n_cond, 1), COND_DIM)
            self.head = nn.Sequential(nn.Linear(d + COND_DIM, d), nn.GELU(), nn.Linear(d, n_out))

        def forward(self, tokens, pad, cond):
            b = tokens.shape[0]
            h = torch.cat([self.cls.expand(b, -1, -1), self.embed(tokens)], 1)
            mask = torch.cat([torch.zeros(b, 1, dtype=torch.bool, device=pad.device), pad], 1)
            h = self.encoder(h, src_key_padding_mask=mask)
            return self.head(torch.cat([h[:, 0], torch.relu(self.cond(cond))], 1))

    return TokenNet()


class TokenTransformer(BaseEstimator):
    """Size regressor (``task: size``) or shape classifier (``task: shape``) over the
    recipe's chemical tokens; scikit-learn fit / predict (/ predict_proba,
    predict_interval). ``feature_names``: the names of X's columns (the harness's)."""

    def __init__(self, feature_names=(), task: str = "size", tokens: str = "chem", unimol=None,
                 d_model: int = 64, n_layers: int = 2, n_heads: int = 4, ffn: int = 128,
                 dropout: float = 0.0, epochs: int = 100, batch_size: int = 64, lr: float = 1e-3,
                 weight_decay: float = 0.01, warmup_epochs: int = 10, ema: float = 0.99,
                 size_loss: str = "quantile", huber_delta: float = 0.1, aux_size_weight: float = 0.5,
                 augment: int = 0, weak_tolerance: float | None = None, weak_min_counted: int = 300,
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
            with np.errstate(all="ignore"):
                out[n_role:chem_end] = np.where(np.isnan(pair).all(0), np.nan, np.nanmean(pair, axis=0))
            flags = [n_role + k for k, f in enumerate(self.chem_feats_) if f.startswith("has_")]
            out[flags] = np.maximum(va[flags], vb[flags])
        if self.tokens in ("uni", "both"):
            v = self.uni_.get(int(code_ab))
            out[chem_end:-1] = v if v is not None else np.nan
            out[-1] = float(v is not None)
        return out

    def _fit_scalers(self, codes, mmol, vecs, cond):
        present = np.isfinite(codes)
        v = vecs[present]
        with np.errstate(all="ignore"):
            self.vec_mean_ = np.nan_to_num(np.nanmean(v, axis=0))
            sd = np.nanstd(v, axis=0)
        self.vec_scale_ = np.where(np.isfinite(sd) & (sd > 0), sd, 1.0)
        amounts = np.log1p(mmol[:, 1:][present[:, 1:] & (mmol[:, 1:] > 0)])
        if amounts.size == 0:
            raise TransformerError("no reactant with a positive amount among the training rows")
        q1, self.amt_median_, q3 = np.percentile(amounts, [25, 50, 75])
        self.amt_scale_ = float(q3 - q1) if q3 > q1 else 1.0
        with np.errstate(all="ignore"):
            self.cond_mean_ = np.nan_to_num(np.nanmean(cond, axis=0)) if cond.shape[1] else np.zeros(0)
            sd = np.nanstd(cond, axis=0) if cond.shape[1] else np.zeros(0)
        self.cond_scale_ = np.where(np.isfinite(sd) & (sd > 0), sd, 1.0)

    def _inputs(self, codes, mmol, vecs, inter, cond):
        """Scaled token inputs [n, S, F + 3 + C], padding mask [n, S], conditions [n, C]."""
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
        return tokens.astype(np.float32), pad, (c if c.shape[1] else np.zeros((n, 1))).astype(np.float32)

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
        device = self._device()
        self.members_ = []
        self.origins_ = []  # per member: the fit row behind every training row (copies included)
        self.history_ = []
        for k in range(int(self.n_seeds)):
            member_seed = int(self.seed) * 1000 + k
            rng = np.random.default_rng(member_seed)
            torch.manual_seed(member_seed)
            arrays = [codes, mmol, vecs, inter]
            origin = np.arange(n)
            if self.augment and self.pairs_:
                a_codes, a_mmol, a_vecs, a_inter, a_origin = augment_recipes(
                    codes, mmol, vecs, inter, self.pairs_, int(self.augment), rng, self._merge)
                arrays = [np.concatenate([b, a]) for b, a in zip(arrays, (a_codes, a_mmol, a_vecs, a_inter))]
                origin = np.concatenate([origin, a_origin])
            self.origins_.append(origin)
            tokens, pad, c = self._inputs(*arrays, cond[origin])
            net, losses = self._train(tokens, pad, c, target[origin], None if aux is None else aux[origin],
                                      weight[origin], weak[origin], device)
            self.members_.append(net)
            self.history_.append(losses)
        return self

    def _n_out(self, with_aux: bool) -> int:
        if self.task == "size":
            return len(QUANTILES) if self.size_loss == "quantile" else 1
        return len(self.classes_) + int(with_aux)

    def _train(self, tokens, pad, cond, target, aux, weight, weak, device):
        import torch
        import torch.nn.functional as F

        n = tokens.shape[0]
        net = _net(tokens.shape[2], cond.shape[1], int(self.d_model), int(self.n_layers), int(self.n_heads),
                   int(self.ffn), float(self.dropout), self._n_out(aux is not None)).to(device)
        T = torch.from_numpy(tokens).to(device)
        P = torch.from_numpy(pad).to(device)
        C = torch.from_numpy(cond).to(device)
        Y = torch.from_numpy(np.asarray(target, dtype=np.float32 if self.task == "size" else np.int64)).to(device)
        A = None if aux is None else torch.from_numpy(aux.astype(np.float32)).to(device)
        W = torch.from_numpy(weight.astype(np.float32)).to(device)
        K = torch.from_numpy(weak).to(device)
        tol = math.log1p(self.weak_tolerance) if self.weak_tolerance is not None else 0.0
        q = torch.tensor(QUANTILES, device=device)
        opt = torch.optim.AdamW(net.parameters(), lr=float(self.lr), weight_decay=float(self.weight_decay))
        bs = int(self.batch_size)
        per_epoch = max(1, math.ceil(n / bs))
        total, warm = int(self.epochs) * per_epoch, int(self.warmup_epochs) * per_epoch

        def lr_factor(step):
            if step < warm:
                return (step + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
        ema = {k: v.detach().clone() for k, v in net.state_dict().items()}
        gen = torch.Generator().manual_seed(int(torch.initial_seed()) % (2**63))
        losses, step = [], 0
        for _ in range(int(self.epochs)):
            net.train()
            perm = torch.randperm(n, generator=gen).to(device)
            epoch_loss = 0.0
            for start in range(0, n, bs):
                b = perm[start:start + bs]
                out = net(T[b], P[b], C[b])
                if self.task == "size":
                    err = Y[b, None] - (out if self.size_loss == "quantile" else out[:, :1])
                    if self.size_loss == "quantile":
                        per = torch.maximum(q * err, (q - 1) * err).sum(1)
                        mid = err[:, 1]
                    else:
                        per = F.huber_loss(out[:, 0], Y[b], delta=float(self.huber_delta), reduction="none")
                        mid = err[:, 0]
                    keep = (~K[b]) | (mid.detach().abs() > tol)
                    loss = (per * W[b] * keep).sum() / W[b].sum()
                else:
                    n_cls = len(self.classes_)
                    per = F.cross_entropy(out[:, :n_cls], Y[b], reduction="none")
                    if A is not None:
                        per = per + self.aux_size_weight * (out[:, n_cls] - A[b]).abs()
                    loss = (per * W[b]).sum() / W[b].sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                step += 1
                decay = min(float(self.ema), (1 + step) / (10 + step))
                with torch.no_grad():
                    for key, value in net.state_dict().items():
                        if value.dtype.is_floating_point:
                            ema[key].mul_(decay).add_(value.detach(), alpha=1 - decay)
                        else:
                            ema[key].copy_(value)
                epoch_loss += float(loss.detach()) * b.numel()
            losses.append(epoch_loss / n)
        net.load_state_dict(ema)
        net.eval()
        return net, losses

    def _outputs(self, X) -> np.ndarray:
        """Raw outputs of every member: [members, n, outputs]."""
        import torch

        codes, mmol, vecs, cond = self._split(X)
        tokens, pad, c = self._inputs(codes, mmol, vecs, np.zeros(codes.shape), cond)
        outs = []
        for net in self.members_:
            device = next(net.parameters()).device
            parts = []
            with torch.no_grad():
                for s in range(0, tokens.shape[0], 1024):
                    parts.append(net(torch.from_numpy(tokens[s:s + 1024]).to(device),
                                     torch.from_numpy(pad[s:s + 1024]).to(device),
                                     torch.from_numpy(c[s:s + 1024]).to(device)).cpu().numpy())
            outs.append(np.concatenate(parts) if parts else np.zeros((0, 1)))
        return np.stack(outs)

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

    def predict_interval(self, X):
        """(low, high) in nm: the 80 % prediction interval of the size of each row."""
        if self.task != "size":
            raise AttributeError("predict_interval: a shape model")
        lq = self._log_quantiles(X)
        return np.exp(lq[:, 0]), np.exp(lq[:, 2])
