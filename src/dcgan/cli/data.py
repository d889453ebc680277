"""`dcgan data list|prepare|show|info`: the known datasets and what is cached, preparing a set or
folder ahead of training, a grid of real images, and a prepared set's facts."""

from __future__ import annotations

import sys
from pathlib import Path

from .options import bar, positive_int


def register(sub) -> None:
    p = sub.add_parser(
        "data",
        help="list, prepare, show or describe datasets",
        description="Standard datasets (downloaded into --data-dir) and image folders are "
        "converted once into a prepared uint8 cache that training memory-maps.",
    )
    actions = p.add_subparsers(dest="action", required=True, parser_class=type(p))
    listing = actions.add_parser("list", help="the known datasets and what is cached")
    _dirs(listing)
    listing.set_defaults(func=run_list)
    for name, func, text in (
        ("prepare", run_prepare, "download (if needed) and prepare a dataset or folder"),
        ("show", run_show, "write a grid of real images"),
        ("info", run_info, "count, size, channels, source, cache path and bytes"),
    ):
        q = actions.add_parser(name, help=text, description=text)
        q.add_argument("data", help="a dataset name (see `dcgan data list`), 'digits' or a folder")
        q.add_argument("--split", help="train (default), test, ... (standard datasets only)")
        q.add_argument("--image-size", type=positive_int, help="side in px (default: the set's)")
        q.add_argument("--channels", type=int, choices=(1, 3), help="1 or 3 (default: the set's)")
        _dirs(q)
        q.add_argument("--no-progress", dest="progress", action="store_false")
        if name == "show":
            q.add_argument("--num", type=positive_int, default=64, help="images (default 64)")
            q.add_argument(
                "--out", type=Path, default=Path("real_grid.png"), help="a .png or .jpg to write"
            )
        q.set_defaults(func=func)


def _dirs(p) -> None:
    p.add_argument("--data-dir", type=Path, help="downloads (default $DCGAN_HOME/datasets)")
    p.add_argument(
        "--cache-dir", type=Path, help="prepared cache (default $DCGAN_HOME or ~/.cache/dcgan)"
    )


def _load(args):
    from ..config import DCGAN_SIZES, default_image_size
    from ..datasets import load_source
    from ..errors import UsageError

    size = args.image_size or default_image_size(args.data)
    if size not in DCGAN_SIZES:
        # the sizes the DCGAN trains on; a --model mlp run at another size prepares its own data
        sizes = ", ".join(map(str, DCGAN_SIZES))
        raise UsageError(f"--image-size {size} is not one of {sizes} (the sizes dcgan trains on)")
    return load_source(
        args.data,
        size,
        args.channels,
        args.cache_dir,
        bar(args.progress, "preparing"),
        data_dir=args.data_dir,
        split=args.split,
        on_bytes=download_bar(args.progress),
    )


def run_list(args) -> int:
    from ..prepared import cache_bytes, list_prepared
    from ..standard_sets import describe_standard

    print("datasets (dcgan data prepare NAME; files go in FOLDER):")
    for row in describe_standard(args.data_dir, args.cache_dir):
        state = "prepared" if row["prepared"] else "files on disk" if row["files"] else "-"
        splits = "/".join(row["splits"])
        print(f"  {row['name']:<14} {splits:<37} {state:<13} {row['about']}  [{row['folder']}]")
    print("  digits         (bundled MNIST test set, always available)")
    caches = list_prepared(args.cache_dir)
    if caches:
        print("prepared caches:")
    for path, meta in caches:
        shape = "x".join(map(str, meta.get("shape", [])[1:]))
        mb = cache_bytes(path) / 1e6
        print(
            f"  {meta.get('name', '?'):<24} {meta.get('count', 0):>7} x {shape:<10} {mb:8.1f} MB  {path}"
        )
    return 0


def run_prepare(args) -> int:
    data = _load(args)
    print(describe(data))
    return 0


def run_info(args) -> int:
    from ..prepared import cache_bytes

    data = _load(args)
    n, c, h, w = data.images.shape
    print(f"name      {data.name}")
    print(f"count     {n}")
    print(f"size      {h}x{w}")
    print(f"channels  {c}")
    source = data.source or {"kind": "bundled", "path": "dcgan/assets/mnist"}
    print("source    " + ", ".join(f"{k}={v}" for k, v in source.items() if k != "files"))
    print(f"cache     {data.cache_path or '(bundled, not cached)'}")
    if data.cache_path is not None:
        print(f"bytes     {cache_bytes(data.cache_path)}")
    if data.num_classes:
        names = ", ".join(data.class_names[:10]) + (", ..." if data.num_classes > 10 else "")
        print(f"classes   {data.num_classes}: {names}")
    else:
        print(f"classes   none ({data.unlabelled_reason or 'no labels'})")
    if data.skipped:
        print(f"skipped   {len(data.skipped)} (listed in {data.cache_path / 'skipped.txt'})")
    return 0


def run_show(args) -> int:
    import numpy as np

    from ..errors import UsageError
    from ..images import make_grid, save_png, to_pil

    suffix = args.out.suffix.lower()
    if suffix not in (".png", ".jpg", ".jpeg"):
        raise UsageError(f"--out {args.out} must end in .png, .jpg or .jpeg")
    data = _load(args)
    pick = np.linspace(0, len(data) - 1, min(args.num, len(data))).astype(int)
    grid = make_grid(np.asarray(data.images[pick]))
    if suffix == ".png":
        save_png(args.out, grid)
    else:  # the format the name promises: real JPEG bytes, not PNG under a .jpg name
        args.out.parent.mkdir(parents=True, exist_ok=True)
        to_pil(grid).save(args.out, format="JPEG", quality=95)
    print(f"wrote {len(pick)} images of {data.name} to {args.out}", file=sys.stderr)
    return 0


def describe(data) -> str:
    """One line about a loaded set, plus a line per warning (also used by `dcgan train`)."""
    n, c, h, w = data.images.shape
    text = f"data: {data.name}, {n} images, {c}x{h}x{w}"
    text += f", {data.num_classes} classes" if data.num_classes else ""
    if data.cache_path is not None:
        text += f" ({'prepared cache' if data.from_cache else 'prepared into'} {data.cache_path})"
    if data.skipped:
        report = data.cache_path / "skipped.txt" if data.cache_path else None
        text += f"; skipped {len(data.skipped)} unreadable file(s), e.g. {data.skipped[0]}"
        text += f" (all listed in {report})" if report else ""
    return "\n".join([text] + [f"warning: {w}" for w in data.warnings])


def download_bar(enabled: bool):
    """on_bytes(name, done, total) -> one tqdm bar per file."""
    if not enabled:
        return None
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def update(name: str, done: int, total: int | None) -> None:
        bar = bars.get(name)
        if bar is None:
            bar = bars[name] = tqdm(
                total=total, desc=name, unit="B", unit_scale=True, leave=False, file=sys.stderr
            )
        bar.update(done - bar.n)
        if total is not None and done >= total:
            bar.close()

    return update
