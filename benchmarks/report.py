"""Render benchmark results: a markdown table and suboptimality-against-time plots."""

from __future__ import annotations

import math

__all__ = ["summary_rows", "write_markdown", "write_plot"]

TARGET = "softmaxreg:auto"


def _t(row, eps, i=0):
    """Wall (``i=0``) or CPU (``i=3``) seconds to ``eps``, or ``None``."""
    hit = row.get("reached", {}).get(eps) if row else None
    return hit[i] if hit else None


def _fmt(x, spec=".3f", none="—"):
    return none if x is None else format(x, spec)


def _fastest(rec, i):
    sk = [(r, _t(r, "1e-06", i)) for r in rec["rows"] if r["solver"].startswith("sklearn:")]
    sk = [(r, t) for r, t in sk if t is not None]
    return min(sk, key=lambda rt: rt[1]) if sk else (None, None)


def summary_rows(rec: dict) -> dict:
    """softmaxreg's default solver against scikit-learn's fastest solver to 1e-6."""
    ours = {r["solver"]: r for r in rec["rows"]}.get(TARGET)
    best, t_best = _fastest(rec, 0)
    best_cpu, c_best = _fastest(rec, 3)
    t_ours, c_ours = _t(ours, "1e-06"), _t(ours, "1e-06", 3)
    return {
        "ours": t_ours,
        "best": best["solver"] if best else None,
        "t_best": t_best,
        "ratio": t_best / t_ours if (t_best and t_ours) else None,
        "cpu_ours": c_ours,
        "best_cpu": best_cpu["solver"] if best_cpu else None,
        "cpu_best": c_best,
        "cpu_ratio": c_best / c_ours if (c_best and c_ours) else None,
        "mem_ours": ours.get("peak_mib") if ours else None,
        "mem_best": best.get("peak_mib") if best else None,
        "default_subopt": ours.get("default_subopt") if ours else None,
        "default_warnings": ours.get("default_warnings") if ours else None,
    }


def write_markdown(results: dict) -> str:
    """The whole report as markdown text."""
    env = results["environment"]
    lines = [
        "# softmaxreg benchmark results",
        "",
        f"Command: `{results['command']}` (scale {results['scale']}, median of "
        f"{results['repeats']} repeats, sweep budget {results['budget']} s per fit).",
        f"Python {env['python']}, {env['cpus']} CPUs, numpy {env['numpy']}, scipy "
        f"{env['scipy']}, scikit-learn {env['sklearn']}; BLAS: "
        + "; ".join(
            f"{b['prefix']} {b['version']} {b['architecture'] or ''} x{b['num_threads']}"
            for b in env["threadpools"]
        ),
        f"BLAS threads held at: {results.get('blas_threads') or 'library defaults'}; load "
        f"average (1, 5, 15 min) at start and after each problem: "
        + ", ".join(
            "(" + ", ".join(f"{x:.1f}" for x in la) + ")" for la in results.get("load_average", [])
        ),
        "",
        "## Summary: softmaxreg `auto` vs scikit-learn's fastest solver, time to 1e-6",
        "",
        "| problem | n x d, K | softmaxreg auto wall s | sklearn fastest (wall) | wall s "
        "| speed-up wall | CPU s ours / sklearn fastest (CPU) | speed-up CPU "
        "| peak MiB ours / theirs | auto at default tol: rel. subopt, warnings "
        "| predict_proba rows/s ours / sklearn |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for rec in results["problems"]:
        s = summary_rows(rec)
        thr = rec.get("predict_proba_rows_per_s", {})
        lines.append(
            f"| {rec['problem']} | {rec['n']:,} x {rec['d']:,}, {rec['K']} ({rec['dtype']}) "
            f"| {_fmt(s['ours'])} | {s['best'] or '—'} | {_fmt(s['t_best'])} "
            f"| {_fmt(s['ratio'], '.2f')}x | {_fmt(s['cpu_ours'])} / {_fmt(s['cpu_best'])} "
            f"({s['best_cpu'] or '—'}) | {_fmt(s['cpu_ratio'], '.2f')}x "
            f"| {_fmt(s['mem_ours'], '.1f')} / {_fmt(s['mem_best'], '.1f')} "
            f"| {_fmt(s['default_subopt'], '.1e')}, "
            f"{', '.join(s['default_warnings'] or []) or 'none'} "
            f"| {_fmt(thr.get('softmaxreg'), '.3g')} / {_fmt(thr.get('sklearn'), '.3g')} |"
        )
    for rec in results["problems"]:
        lines += _problem_table(rec)
    return "\n".join(lines) + "\n"


def _problem_table(rec: dict) -> list[str]:
    lines = [
        "",
        f"## {rec['problem']}: {rec['description']}",
        "",
        f"n={rec['n']:,}, d={rec['d']:,}, K={rec['K']}, C={rec['C']}, {rec['dtype']}, "
        f"one pass {rec['pass_seconds'] * 1e3:.2f} ms, f* = {rec['fstar']:.12g}",
        "",
        "| solver | default fit (s) | default rel. subopt | default warnings | t to 1e-3 (s) "
        "| t to 1e-6 (s) | CPU s to 1e-6 | max_iter to 1e-6 | pass-equiv. to 1e-6 | peak MiB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rec["rows"]:
        if "skipped" in r:
            lines.append(f"| {r['solver']} | skipped: {r['skipped']} ||||||||| ")
            continue
        t6 = _t(r, "1e-06")
        hit = r["reached"].get("1e-06")
        passes = t6 / rec["pass_seconds"] if t6 else None
        lines.append(
            f"| {r['solver']} | {r['default_seconds']:.3f} | {r['default_subopt']:.1e} "
            f"| {', '.join(r['default_warnings']) or 'none'} | {_fmt(_t(r, '1e-03'))} "
            f"| {_fmt(t6, '.3f', 'not reached')} | {_fmt(_t(r, '1e-06', 3))} "
            f"| {hit[1] if hit else '—'} "
            f"| {_fmt(passes, '.0f')} | {_fmt(r['peak_mib'], '.1f', 'not measured')} |"
        )
    return lines


def write_plot(rec: dict, path) -> None:
    """Relative suboptimality against time, one line per solver (log-log)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    fstar = rec["fstar"]
    for r in rec["rows"]:
        pts = [(t, (f - fstar) / abs(fstar)) for _, t, f in r.get("points", []) if math.isfinite(f)]
        if not pts:
            continue
        pts.sort()
        ax.plot(
            [t for t, _ in pts],
            [max(s, 1e-16) for _, s in pts],
            marker=".",
            label=r["solver"],
            lw=2.5 if r["solver"] == TARGET else 1,
        )
    for eps in (1e-3, 1e-6):
        ax.axhline(eps, color="grey", lw=0.5, ls="--")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="seconds",
        ylabel="relative suboptimality",
        title=f"{rec['problem']} ({rec['n']:,} x {rec['d']:,}, K={rec['K']})",
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    tmp = str(path) + ".tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    import os

    os.replace(tmp, path)
