"""The ``softmaxreg`` command: fit, predict, evaluate, summarise, plot and export from data files.

Conventions (those of the best command-line tools of the ecosystem): results on stdout, logs,
warnings and progress on stderr; ``--json`` where the output is data; a progress line per
iteration only when stderr is a terminal; exit status 0 on success, 2 for usage errors and 1
for data errors (one line on stderr, no traceback unless ``--debug``).

This module holds the parser and the error handling; the commands are in ``_commands.py``.
To add an estimator option: add the flag in :func:`add_estimator_options` and one line in
:func:`estimator_kwargs` (or :func:`fit_kwargs` for per-row data passed to ``fit``).
"""

from __future__ import annotations

import argparse
import sys
import traceback
import warnings
from pathlib import Path

__all__ = ["build_parser", "estimator_kwargs", "fit_kwargs", "main"]

PROG = "softmaxreg"


class UsageError(Exception):
    """The command line is inconsistent (exit status 2)."""


# -- options shared by several commands -----------------------------------------------------------
def _common_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the full traceback of an error",
    )
    parent.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS,
        help="no logs or progress on stderr (warnings and errors still show)",
    )
    return parent


def _format_option(p):
    p.add_argument(
        "--format",
        choices=["csv", "parquet", "libsvm"],
        default=None,
        help="data file format (default: from the extension: .csv, .csv.gz, "
        ".parquet, .pq, .libsvm, .svm, .svmlight)",
    )


def add_estimator_options(p) -> None:
    """The ``SoftmaxRegression`` options of ``fit`` (see :func:`estimator_kwargs`)."""
    from ._solvers import SOLVERS
    from ._solvers.proximal import PROX_SOLVERS
    from ._stochastic import STOCHASTIC_SOLVERS

    g = p.add_argument_group("model")
    g.add_argument(
        "--C",
        type=float,
        default=1.0,
        metavar="C",
        help="inverse penalty strength, as in scikit-learn (default 1.0)",
    )
    g.add_argument(
        "--penalty",
        choices=["l2", "none", "l1", "elasticnet", "group"],
        default="l2",
        help="'none' fits the unpenalised maximum-likelihood model (needed by `summary`)",
    )
    g.add_argument(
        "--l1-ratio",
        type=float,
        default=None,
        metavar="R",
        help="mixing of the L1 and L2 parts for elasticnet and group penalties",
    )
    g.add_argument(
        "--solver",
        default="auto",
        choices=["auto", *SOLVERS, *PROX_SOLVERS, *STOCHASTIC_SOLVERS],
        help="the optimiser (default auto: exact Newton for few parameters, else Newton-CG; "
        "fista and prox-newton for the l1, elasticnet and group penalties)",
    )
    g.add_argument(
        "--tol",
        type=float,
        default=None,
        help="gradient tolerance of the optimality certificate (default: the estimator's, 1e-6)",
    )
    g.add_argument("--max-iter", type=int, default=100, help="solver iterations (default 100)")
    g.add_argument("--no-intercept", action="store_true", help="fit without intercepts")
    g.add_argument(
        "--basis",
        default=None,
        metavar="SPEC",
        help="basis functions phi: poly:D, rbf:N, fourier:N or spline:N",
    )
    g.add_argument(
        "--class-weight",
        choices=["balanced"],
        default=None,
        help="weight classes inversely to their frequency",
    )


def estimator_kwargs(args) -> dict:
    """The ``SoftmaxRegression`` keyword arguments given by the command line."""
    kwargs = {
        "C": args.C,
        "penalty": None if args.penalty == "none" else args.penalty,
        "l1_ratio": args.l1_ratio,
        "basis": args.basis,
        "solver": args.solver,
        "tol": args.tol,
        "max_iter": args.max_iter,
        "fit_intercept": not args.no_intercept,
        "class_weight": args.class_weight,
        "verbose": int(sys.stderr.isatty() and not getattr(args, "quiet", False)),
    }
    return {key: value for key, value in kwargs.items() if key != "tol" or value is not None}


def fit_kwargs(args, data) -> dict:
    """Per-row keyword arguments of ``fit`` (arrays of length n_samples, split with the rows)."""
    kwargs = {}
    if data.sample_weight is not None:
        kwargs["sample_weight"] = data.sample_weight
    if getattr(data, "offset", None) is not None:
        kwargs["offset"] = data.offset
    return kwargs


# -- the commands -------------------------------------------------------------------------------
_EXAMPLES = {
    "fit": """examples:
  softmaxreg fit train.csv --target species -o iris.softmaxreg
  softmaxreg fit train.parquet --target y --C 0.5 --test-size 0.25 --json
  softmaxreg fit data.libsvm -o model.softmaxreg --index-base 1""",
    "predict": """examples:
  softmaxreg predict iris.softmaxreg new.csv                 # CSV on stdout
  softmaxreg predict iris.softmaxreg new.csv --proba --id id -o predictions.parquet""",
    "evaluate": """examples:
  softmaxreg evaluate iris.softmaxreg test.csv
  softmaxreg evaluate iris.softmaxreg test.csv --json | jq .accuracy""",
    "summary": """The model must be unpenalised (fitted with --penalty none): classical standard
errors do not hold for a penalised fit.

examples:
  softmaxreg fit train.csv --target species --penalty none -o mle.softmaxreg
  softmaxreg summary mle.softmaxreg train.csv
  softmaxreg summary mle.softmaxreg train.csv --cov-type HC1 --json""",
    "plot": """examples:
  softmaxreg plot iris.softmaxreg test.csv --kind confusion -o confusion.png
  softmaxreg plot iris.softmaxreg test.csv --kind boundary \\
      --features petal_length petal_width -o boundary.svg
  softmaxreg plot iris.softmaxreg --kind loss -o loss.png""",
    "export": """examples:
  softmaxreg export iris.softmaxreg --onnx iris.onnx
  softmaxreg export iris.softmaxreg --onnx iris.onnx --sample test.csv""",
    "demo": """examples:
  softmaxreg demo
  softmaxreg demo -o /tmp/wine-demo""",
    "gradcheck": """examples:
  softmaxreg gradcheck
  softmaxreg gradcheck --seed 3 --json""",
}


def _sub(subparsers, name, help_text, common):
    return subparsers.add_parser(
        name,
        help=help_text,
        description=help_text[:1].upper() + help_text[1:] + ".",
        epilog=_EXAMPLES[name],
        parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _add_fit(subparsers, common):
    p = _sub(subparsers, "fit", "fit a model to a data file and write the model file", common)
    p.add_argument("data", help="training data: CSV (also .gz), Parquet or LIBSVM")
    p.add_argument("--target", help="the label column (CSV/Parquet)")
    p.add_argument(
        "-o",
        "--output",
        help="model file to write (default: DATA's name + .softmaxreg, in the current directory)",
    )
    p.add_argument(
        "--features",
        nargs="+",
        metavar="COL",
        help="feature columns (default: every column but the target and weights)",
    )
    p.add_argument(
        "--exclude",
        nargs="+",
        metavar="COL",
        default=[],
        help="columns that are not features (ids, free text)",
    )
    p.add_argument(
        "--categorical",
        nargs="+",
        metavar="COL",
        default=[],
        help="treat these columns as categories even if they hold numbers",
    )
    p.add_argument("--sample-weight", metavar="COL", help="column of sample weights")
    from ._cli_targets import column_list

    p.add_argument(
        "--target-columns",
        type=column_list,
        metavar="C1,C2,...",
        help="instead of --target: one column per class of probabilities or counts; the "
        "column names are the classes (sorted)",
    )
    p.add_argument(
        "--offset-columns",
        type=column_list,
        metavar="O1,...",
        help="fixed logit offsets, one column per class (in the order of --target-columns, "
        "or of the sorted labels); one column for two classes",
    )
    p.add_argument(
        "--impute",
        choices=["mean", "median"],
        default=None,
        help="fill missing numbers (categories: the most frequent); default: error",
    )
    p.add_argument(
        "--index-base",
        choices=["0", "1", "auto"],
        default="auto",
        help="LIBSVM feature index base (auto: 0 if index 0 occurs, else 1)",
    )
    p.add_argument(
        "--test-size",
        type=float,
        default=None,
        metavar="F",
        help="hold out this fraction of the rows (stratified) and report on it; "
        "the model is fitted on the rest",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed of the held-out split")
    p.add_argument("--json", action="store_true", help="print the fit report as JSON")
    _streaming_options(p)
    p.add_argument(
        "--checkpoint",
        metavar="PATH",
        help="write the solver state to PATH (atomically) as "
        "the fit goes (solvers auto, lbfgs, newton-cg, newton, sgd, adam)",
    )
    p.add_argument(
        "--resume", action="store_true", help="continue the fit from the --checkpoint file"
    )
    _format_option(p)
    add_estimator_options(p)


def _streaming_options(p):
    p.add_argument(
        "--memory-budget",
        metavar="SIZE",
        default=None,
        help="stream CSV/Parquet data (in row blocks, exactly) when its in-memory form would "
        "exceed SIZE, e.g. 512MB or 4GB (default: half the available memory)",
    )


def _add_predict_like(subparsers, common):
    p = _sub(subparsers, "predict", "predict the label (and probabilities) of every row", common)
    p.add_argument("model", help="model file written by `softmaxreg fit`")
    p.add_argument("data", help="data file with the model's feature columns")
    p.add_argument(
        "-o",
        "--output",
        help="output file, .csv (or .txt), .csv.gz or .parquet (default: CSV on stdout)",
    )
    p.add_argument("--proba", action="store_true", help="add one probability column per class")
    p.add_argument("--id", metavar="COL", help="copy this column into the output")
    from ._cli_targets import column_list

    p.add_argument(
        "--offset-columns",
        type=column_list,
        metavar="O1,...",
        help="logit offsets, in the same column order as for `fit` (default: none)",
    )
    _format_option(p)
    _streaming_options(p)

    for name, text in (
        (
            "evaluate",
            "accuracy, log-loss, Brier score, per-class scores, "
            "confusion matrix and calibration error on a labelled file",
        ),
        ("summary", "the coefficient table with standard errors, tests and intervals"),
    ):
        p = _sub(subparsers, name, text, common)
        p.add_argument("model", help="model file written by `softmaxreg fit`")
        p.add_argument("data", help="labelled data file")
        p.add_argument("--target", help="label column (default: the training target)")
        p.add_argument(
            "--target-columns",
            type=column_list,
            metavar="C1,...",
            help="instead of --target: one column per class (default: the fit's, if any)",
        )
        p.add_argument(
            "--offset-columns",
            type=column_list,
            metavar="O1,...",
            help="logit offsets, in the same column order as for `fit` (default: the fit's)",
        )
        p.add_argument(
            "--sample-weight",
            metavar="COL",
            help="column of sample weights (default: "
            + ("the fit's --sample-weight column)" if name == "summary" else "unweighted)"),
        )
        p.add_argument("--json", action="store_true", help="print the results as JSON")
        _format_option(p)
        if name == "summary":
            p.add_argument(
                "--cov-type",
                choices=["nonrobust", "HC0", "HC1"],
                default="nonrobust",
                help="covariance of the estimates",
            )
            p.add_argument(
                "--reference-class",
                metavar="LABEL",
                help="the class whose logits are zero (default: the first)",
            )


def _add_other(subparsers, common):
    p = _sub(subparsers, "plot", "draw a diagnostic plot to a PNG, SVG or PDF file", common)
    p.add_argument("model", help="model file written by `softmaxreg fit`")
    p.add_argument(
        "data",
        nargs="?",
        help="data file (labelled for confusion, boundary and "
        "calibration; not needed for loss and coef)",
    )
    p.add_argument(
        "--kind", required=True, choices=["confusion", "boundary", "loss", "calibration", "coef"]
    )
    p.add_argument("-o", "--output", required=True, help="image file (.png, .svg, .pdf)")
    p.add_argument(
        "--features",
        nargs=2,
        metavar=("A", "B"),
        help="boundary: the two features (names or 0-based positions; default 0 1)",
    )
    p.add_argument("--target", help="label column (default: the training target)")
    _format_option(p)

    p = _sub(
        subparsers, "export", "export the model as an ONNX graph, checked at export time", common
    )
    p.add_argument("model", help="model file written by `softmaxreg fit`")
    p.add_argument("--onnx", required=True, metavar="OUT", help="ONNX file to write")
    p.add_argument(
        "--sample",
        metavar="DATA",
        help="data file whose rows check the export (default: random rows)",
    )
    _format_option(p)

    p = _sub(subparsers, "demo", "fit, evaluate and plot on the bundled wine data set", common)
    p.add_argument(
        "-o",
        "--output",
        default="softmaxreg-demo",
        metavar="DIR",
        help="directory for the files it writes (default: ./softmaxreg-demo)",
    )

    p = _sub(
        subparsers,
        "gradcheck",
        "check the analytic derivatives against finite differences on random problems",
        common,
    )
    p.add_argument("--seed", type=int, default=0, help="random seed of the problems")
    p.add_argument(
        "--threshold",
        type=float,
        default=1e-6,
        help="largest relative error allowed (default 1e-6)",
    )
    p.add_argument("--json", action="store_true", help="print the errors as JSON")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``softmaxreg`` command."""
    from . import __version__

    common = _common_options()
    parser = argparse.ArgumentParser(
        prog=PROG,
        parents=[common],
        description="Exact multinomial logistic (softmax) regression from data files.",
        epilog="Run `softmaxreg COMMAND --help` for a command's options and examples; "
        "`softmaxreg demo` shows the whole workflow.",
    )
    parser.add_argument("--version", action="version", version=f"softmaxreg {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_fit(subparsers, common)
    _add_predict_like(subparsers, common)
    _add_other(subparsers, common)
    return parser


def _check_usage(args) -> None:
    if args.command == "fit" and args.test_size is not None and not 0 < args.test_size < 1:
        raise UsageError(f"--test-size must be between 0 and 1, got {args.test_size}")
    if (
        args.command == "plot"
        and args.data is None
        and args.kind in ("confusion", "boundary", "calibration")
    ):
        raise UsageError(f"--kind {args.kind} needs a DATA file")
    if args.command == "fit" and args.target is not None and args.target_columns:
        raise UsageError("give --target (labels) or --target-columns (targets), not both")
    if args.command == "fit":
        from ._io import DataError, detect_format

        try:
            fmt = detect_format(args.data, args.format)
        except DataError:
            fmt = None  # reported as a data error when the file is read
        if fmt in ("csv", "parquet") and args.target is None and not args.target_columns:
            raise UsageError("--target COL is required for CSV and Parquet data")
        if fmt == "libsvm" and args.target is not None:
            raise UsageError("--target does not apply to LIBSVM data (the label starts each line)")
    output = getattr(args, "output", None)
    if args.command in ("fit", "predict") and output and not Path(output).parent.is_dir():
        raise UsageError(f"-o {output}: there is no directory {str(Path(output).parent)!r}")
    if args.command == "fit" and args.resume and not args.checkpoint:
        raise UsageError("--resume needs --checkpoint PATH")
    if args.command == "fit":  # option values and their combinations, before any data is read
        from ._estimator import SoftmaxRegression

        try:
            SoftmaxRegression(**estimator_kwargs(args))._check_params()
        except (TypeError, ValueError) as exc:
            raise UsageError(_one_line(exc)) from None
    if getattr(args, "memory_budget", None):
        from ._stream_cli import parse_size

        try:
            parse_size(args.memory_budget)
        except ValueError as exc:
            raise UsageError(f"--memory-budget: {exc}") from None
    if args.command == "gradcheck" and not args.threshold > 0:
        raise UsageError("--threshold must be positive")


# -- running ------------------------------------------------------------------------------------
def _one_line(exc) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"{PROG}: warning: {_one_line(message)}", file=sys.stderr)


def _run(args) -> int:
    from . import _commands

    with warnings.catch_warnings():
        warnings.simplefilter("default")
        for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
            warnings.simplefilter("ignore", category)
        warnings.showwarning = _show_warning
        return getattr(_commands, "cmd_" + args.command)(args) or 0


def main(argv=None) -> int:
    """Run the ``softmaxreg`` command with ``argv`` (default ``sys.argv[1:]``); the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else 2
    debug = getattr(args, "debug", False)
    try:
        _check_usage(args)
        return _run(args)
    except UsageError as exc:
        print(
            f"{PROG} {args.command}: error: {exc} (see `{PROG} {args.command} --help`)",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `softmaxreg predict ... | head`
        return 0
    except Exception as exc:  # a data error: one line, no traceback unless --debug
        if debug:
            traceback.print_exc()
        from ._io import DataError
        from ._modelfile import ModelFileError

        known = (DataError, ModelFileError, ValueError, OSError, ImportError)
        prefix = "" if isinstance(exc, known) else f"internal error ({type(exc).__name__}): "
        hint = "" if debug or isinstance(exc, known) else " (rerun with --debug for details)"
        print(f"{PROG}: error: {prefix}{_one_line(exc)}{hint}", file=sys.stderr)
        return 1
