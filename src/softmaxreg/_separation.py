r"""Separation and rank-deficiency diagnostics for unpenalised fits.

**Separation.** The maximum-likelihood estimate of a softmax regression exists if and only if
no direction :math:`V` (class rows, the reference row zero) satisfies
:math:`(v_c - v_k)^T \phi_n \ge 0` for every observation ``n``, every class ``c`` it was
observed in and every class ``k``, with strict inequality somewhere (Albert & Anderson, 1984,
extended to several classes). Along such a direction the log-likelihood never decreases, so
unpenalised coefficients run to infinity: *complete* separation when every inequality is
strict, *quasi-complete* otherwise. :func:`find_separation` decides this exactly by linear
programming (maximise the sum of the margins over a box, all margins non-negative, HiGHS)
with constraint generation: the LP is solved on a working set of rows; a working set that is not
separable proves the whole data set is not; a separating direction of the working set is
checked on all rows in one pass and the violated rows join the working set.

**Rank deficiency.** :func:`collinear_columns` finds the design columns (intercept included)
that are linear combinations of earlier ones, from the weighted Gram matrix, in one pass.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

from ._exceptions import SeparationWarning
from ._sources import ArraySource

__all__ = [
    "Separation",
    "check_fit",
    "collinear_columns",
    "collinearity_message",
    "find_separation",
    "fingerprint",
    "search_separation",
]

_MAX_NNZ = 4_000_000  # LP size limit (non-zeros of the margin matrix); beyond, give up


@dataclass
class Separation:
    """A certified separating direction.

    Attributes
    ----------
    complete : bool
        Every observation is strictly separated by the direction found (complete
        separation; a quasi-complete result may still hide a complete one).
    class_pairs : list of (str, str, int)
        ``(class a, class b, n)``: ``n`` observations of one of the two classes are strictly
        separated from the other.
    features : list of str
        Design columns the separating direction uses (``"intercept"`` included).
    n_boundary : int
        Observations on the separating boundary, not strictly separated from any class
        (quasi-complete separation).
    """

    complete: bool
    class_pairs: list
    features: list
    n_boundary: int

    def message(self, for_inference: bool = False) -> str:
        kind = "Complete separation" if self.complete else "Separation"
        pairs = ", ".join(f"{a!r} and {b!r} ({n} obs.)" for a, b, n in self.class_pairs[:8])
        if len(self.class_pairs) > 8:
            pairs += f" and {len(self.class_pairs) - 8} more pairs"
        feats = ", ".join(repr(f) for f in self.features[:12])
        if len(self.features) > 12:
            feats += f" and {len(self.features) - 12} more"
        tail = (
            "Standard errors and tests would be meaningless, so none are reported. "
            if for_inference
            else "The reported coefficients are arbitrary large numbers. "
        )
        boundary = (
            f"; {self.n_boundary} observations lie on the separating boundary "
            "(quasi-complete separation)"
            if self.n_boundary
            else ""
        )
        return (
            f"{kind}: a combination of the features {feats} perfectly separates the "
            f"classes {pairs}{boundary}. The maximum-likelihood estimate does "
            "not exist (unpenalised coefficients run to infinity). " + tail + "Remedies: fit "
            "with a penalty (penalty='l2'), drop or merge the features or classes involved, "
            "or collect more data."
        )


def _scaled_design(X, fit_intercept, scale):
    Q = X.toarray() if sp.issparse(X) else np.asarray(X)
    Q = Q.astype(np.float64) / scale[: Q.shape[1]]
    if fit_intercept:
        Q = np.hstack([Q, np.ones((Q.shape[0], 1))])
    return Q


def _positive_classes(targets, rows):
    """(row, class) pairs where the row was observed in the class."""
    if targets.ndim == 1:
        return rows, targets[rows]
    r, c = np.nonzero(targets[rows] > 0)
    return rows[r], c


def _solve_lp(Q, pr, pc, K):
    """Maximise the sum of the pair margins ``(v_c - v_k)^T phi_n`` over the box
    ``|V| <= 1`` subject to every margin being non-negative; returns (V rows 1.., value)."""
    n_pairs, p = pr.size * (K - 1), Q.shape[1]
    other = np.array([[k for k in range(K) if k != c] for c in range(K)])[pc].ravel()
    obs = np.repeat(pc, K - 1)
    q = np.repeat(Q[pr], K - 1, axis=0)
    cols = np.arange(p)
    parts = []  # (rows, columns, values) of the margins in the reference-form variables
    for cls, sign in ((obs, 1.0), (other, -1.0)):
        keep = np.flatnonzero(cls > 0)
        parts.append((np.repeat(keep, p), ((cls[keep] - 1)[:, None] * p + cols).ravel(),
                      sign * q[keep].ravel()))  # fmt: skip
    r, c, v = (np.concatenate(x) for x in zip(*parts, strict=True))
    D = sp.csr_matrix((v, (r, c)), shape=(n_pairs, (K - 1) * p))
    res = linprog(
        -D.sum(axis=0),
        A_ub=-sp.csr_matrix(D),
        b_ub=np.zeros(n_pairs),
        bounds=(-1.0, 1.0),
        method="highs",
    )
    if res.status != 0:
        return None, 0.0
    return res.x.reshape(K - 1, p), -res.fun


def _margins(source, Z, fit_intercept, scale):
    """Per row, the pair margins ``A_c - A_k`` under the direction ``Z``, as blocks.

    Yields ``(rows, r, c, M)``: for each (row ``r``, observed class ``c``) pair the margins
    ``M`` of shape (n_pairs, K) against every class (the own class set to ``+inf``).
    """
    V = np.vstack([np.zeros((1, Z.shape[1])), Z])
    for start in range(0, source.n_samples, source.block_rows):
        rows = np.arange(start, min(start + source.block_rows, source.n_samples))
        A = _scaled_design(source.X[rows], fit_intercept, scale) @ V.T
        r, c = _positive_classes(source.targets, rows)
        M = A[r - start, c][:, None] - A[r - start]
        M[np.arange(r.size), c] = np.inf
        yield rows, r, c, M


def _gaps(source, Z, fit_intercept, scale):
    """Per row: the worst pair margin, negated (> 0 violates the direction), and the best
    pair margin (> 0: the row is strictly separated from some class)."""
    gaps = np.full(source.n_samples, -np.inf)
    best = np.full(source.n_samples, -np.inf)
    for _, r, _, M in _margins(source, Z, fit_intercept, scale):
        np.maximum.at(gaps, r, -M.min(axis=1))
        M[~np.isfinite(M)] = -np.inf
        np.maximum.at(best, r, M.max(axis=1))
    return gaps, best


def _own_probability(objective, coef):
    """Per row, the smallest fitted probability among the classes the row was observed in."""
    from ._kernel import block_loss_grad

    W, b = objective._split(coef)
    source = objective.source
    own = np.empty(source.n_samples)
    starts = range(0, source.n_samples, source.block_rows)
    for start, blk in zip(starts, source.blocks(), strict=True):
        with np.errstate(over="ignore", invalid="ignore"):
            P = block_loss_grad(blk, W, b)[3]
        if blk.targets.ndim == 1:
            own[start : start + P.shape[0]] = P[np.arange(P.shape[0]), blk.targets]
        else:
            own[start : start + P.shape[0]] = np.where(blk.targets > 0, P, np.inf).min(axis=1)
    return own


def _initial_rows(objective, coef, rng):
    """A stratified working set: per class ``max(100, 3 p)`` rows, those the fitted model
    finds hardest (lowest probability of their own class) when ``coef`` is given, else
    random ones. Hard rows are the ones that stop a direction from separating the classes."""
    source = objective.source
    per_class = max(100, 3 * objective.coef_shape[1])
    pos = np.flatnonzero(source.weights > 0)
    score = _own_probability(objective, coef)[pos] if coef is not None else rng.random(pos.size)
    labels = source.targets if source.targets.ndim == 1 else source.targets.argmax(axis=1)
    rows = []
    for k in range(source.n_classes):
        members = np.flatnonzero(labels[pos] == k)
        if members.size:
            take = members[np.argsort(score[members], kind="stable")[:per_class]]
            rows.append(pos[take])
    return np.unique(np.concatenate(rows)) if rows else pos[:0]


def search_separation(objective, feature_names, class_labels, coef=None, max_rounds=25):
    """Decide whether the data of ``objective`` are (quasi-)completely separated.

    Parameters
    ----------
    objective : Objective
        With an in-memory :class:`ArraySource` (other sources are not checked: ``None``).
    feature_names : sequence of str
    class_labels : sequence
        Labels in class-code order.
    coef : ndarray of shape (n_coef,), optional
        Fitted coefficients (objective order): the starting working set is then the rows the
        model finds hardest, which usually proves non-separation in one small LP.

    Returns
    -------
    separation : Separation or None
        ``None`` when the maximum-likelihood estimate exists, or when the check could not
        decide (an LP of more than about 4 million non-zeros, or a numerical stalemate).
    decided : bool
        Whether the answer is proven (``False``: not separated as far as checked).
    """
    source = objective.source
    if not isinstance(source, ArraySource) or source.n_classes < 2:
        return None, False
    fi, K = objective.fit_intercept, source.n_classes
    X = source.X
    if sp.issparse(X):
        scale = np.asarray(abs(X).max(axis=0).toarray(), float).ravel()
    else:  # no |X| temporary: the data may be large
        scale = np.maximum(X.max(axis=0), -X.min(axis=0)).astype(float)
    scale[~(scale > 0)] = 1.0
    rows = _initial_rows(objective, coef, np.random.default_rng(0))
    for _ in range(max_rounds):
        pr, pc = _positive_classes(source.targets, rows)
        if pr.size * (K - 1) * 2 * (X.shape[1] + fi) > _MAX_NNZ:
            return None, False
        Z, value = _solve_lp(_scaled_design(X[pr], fi, scale), np.arange(pr.size), pc, K)
        if Z is None:
            return None, False
        tol = 1e-7 * Z.shape[1]
        if value <= 100 * tol:  # the working set is not separable, so neither is the data
            return None, True
        gaps, best = _gaps(source, Z, fi, scale)
        gaps[source.weights <= 0] = -np.inf
        bad = np.flatnonzero(gaps > tol)
        if bad.size == 0:
            if not np.any(best[source.weights > 0] > tol):
                return None, False
            sep = _describe(Z, gaps, best, tol, source, feature_names, class_labels, fi, scale)
            return sep, True
        extra = np.setdiff1d(bad[np.argsort(gaps[bad])[::-1][: max(500, rows.size)]], rows)
        if extra.size == 0:  # violations the LP tolerates numerically: undecided
            return None, False
        rows = np.union1d(rows, extra)
    return None, False


def find_separation(objective, feature_names, class_labels, coef=None):
    """:func:`search_separation`'s separation (or ``None``)."""
    return search_separation(objective, feature_names, class_labels, coef)[0]


def _describe(Z, gaps, best, tol, source, feature_names, class_labels, fi, scale):
    V = np.vstack([np.zeros((1, Z.shape[1])), Z])
    spread = V.max(axis=0) - V.min(axis=0)
    names = [str(f) for f in feature_names] + (["intercept"] if fi else [])
    used = [names[m] for m in np.flatnonzero(spread > 1e-6 * spread.max())]
    live = source.weights > 0
    K = source.n_classes
    counts = np.zeros((K, K), dtype=np.int64)
    for _, r, c, M in _margins(source, Z, fi, scale):
        hit = np.isfinite(M) & (M > tol) & live[r][:, None]
        np.add.at(
            counts,
            (np.minimum(c[:, None], np.arange(K)), np.maximum(c[:, None], np.arange(K))),
            hit,
        )
    pairs = [
        (str(class_labels[i]), str(class_labels[j]), int(counts[i, j]))
        for i in range(K)
        for j in range(i + 1, K)
        if counts[i, j]
    ]
    return Separation(
        complete=bool(np.all(gaps[live] < -tol)),
        class_pairs=pairs,
        features=used,
        n_boundary=int(np.sum(live & ~(best > tol))),
    )


def collinear_columns(objective, feature_names, rtol=1e-9):
    """Design columns that are (numerically) linear combinations of earlier columns.

    The intercept is taken first, then the features in order. Returns a list of
    ``(column, [columns it depends on])``; an empty dependency list means the column is zero
    on every weighted row.
    """
    fi = objective.fit_intercept

    def kernel(blk, i):
        Q = _scaled_design(blk.X, fi, np.ones(blk.X.shape[1]))
        return ((Q * blk.weights.astype(np.float64)[:, None]).T @ Q,)

    (G,) = objective.source.map_reduce(kernel)
    names = [str(f) for f in feature_names] + (["intercept"] if fi else [])
    order = ([len(names) - 1] if fi else []) + list(range(len(feature_names)))
    keep, out = [], []
    for j in order:
        gjj = G[j, j]
        if not gjj > 0:
            out.append((names[j], []))
            continue
        if keep:
            c = np.linalg.lstsq(G[np.ix_(keep, keep)], G[keep, j], rcond=None)[0]
            resid = gjj - G[j, keep] @ c
            if resid <= rtol * gjj:
                scale = np.sqrt(np.diag(G)[keep] / gjj)
                deps = [names[keep[i]] for i in np.flatnonzero(np.abs(c) * scale > 1e-6)]
                out.append((names[j], deps))
                continue
        keep.append(j)
    return out


def collinearity_message(objective, feature_names) -> str:
    """A sentence naming the collinear design columns (or saying there are none)."""
    found = collinear_columns(objective, feature_names)
    if not found:
        return (
            "No exactly collinear columns were found: the singularity comes from "
            "near-collinear features or from (quasi-)separated classes."
        )
    parts = []
    for col, deps in found:
        if not deps:
            parts.append(f"{col!r} is zero on every weighted row")
        elif deps == ["intercept"]:
            parts.append(f"{col!r} is constant (collinear with the intercept)")
        else:
            parts.append(f"{col!r} is a linear combination of {', '.join(map(repr, deps))}")
    return "Collinear columns: " + "; ".join(parts) + "."


def fingerprint(source, fit_intercept) -> str:
    """A digest of the data of an :class:`ArraySource` (a random projection of ``X``, the
    targets and the weights): equal digests mean the same data, so a separation check need
    not be repeated."""
    X = source.X
    r = np.random.default_rng(20261127).standard_normal(X.shape[1]).astype(X.dtype)
    h = hashlib.sha256(repr((X.shape, str(X.dtype), bool(fit_intercept))).encode())
    for a in (np.asarray(X @ r).ravel(), source.targets, source.weights):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def check_fit(est, objective) -> None:
    """The fit hook: for unpenalised in-memory fits, warn with :class:`SeparationWarning` if
    the classes are separated; remember data proven not separated (``_separation_checked_``)
    so that :meth:`SoftmaxRegression.inference` on the same data skips the check."""
    from ._inference import feature_names

    est._separation_checked_ = None
    if est.penalty is not None or not isinstance(objective.source, ArraySource):
        return
    M = est._coef_matrix(objective)
    coef = None if M is None else M.astype(np.float64).ravel()
    sep, decided = search_separation(objective, feature_names(est), est.classes_, coef)
    if sep is not None:
        warnings.warn(sep.message(), SeparationWarning, stacklevel=3)
    elif decided:
        est._separation_checked_ = fingerprint(objective.source, objective.fit_intercept)
