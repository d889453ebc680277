"""A zip archive of images -> the prepared uint8 cache, read in place (nothing is extracted):
entry by entry through the folders' safe decoder, hostile entries skipped with a reason, labels
from stylegan2-ada's dataset.json or from class subfolders (issue 24)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .classes import Labelling, class_folders, unlabelled
from .errors import DataError
from .files import slug
from .folders import IMAGE_EXTENSIONS, Sized, collect_decoded, decode_image, skip_reason
from .prepared import (
    PREPARE_VERSION,
    ImageSet,
    PreparedWriter,
    commit_decoded,
    interruptible,
    prepared_dir,
    read_prepared,
)

MAX_ENTRY_BYTES = 256 << 20  # an image entry declaring more is skipped (a zip bomb, or no image)
MAX_RATIO = 1000  # ... and so is one that inflates over 1000x past BOMB_FLOOR bytes
BOMB_FLOOR = 16 << 20
MAX_JSON_BYTES = 64 << 20  # dataset.json (FFHQ's 70k labels take 3 MB)
MAX_CLASSES = 65536
DATASET_JSON = "dataset.json"  # stylegan2-ada's labels file, at the archive's root
_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED}  # bzip2/LZMA inflate without a bound


class Entry(NamedTuple):
    """One image entry: its name in the archive (the sort key and its name in reports)."""

    rel: str
    info: zipfile.ZipInfo


def is_archive(path: Path) -> bool:
    """Whether --data names a zip file (by its suffix or its bytes)."""
    return path.is_file() and (path.suffix.lower() == ".zip" or zipfile.is_zipfile(path))


def load_archive(
    path: Path,
    image_size: int,
    channels: int | None = None,
    cache_dir: Path | None = None,
    progress: Callable | None = None,
    *,
    crop: int | None = None,
    name: str | None = None,
) -> ImageSet:
    """Decode every image inside the zip at `path` into uint8 (N, C, S, S), cached by a
    fingerprint of its entries (names, sizes, CRCs), as `folders.load_folder` does for a folder.

    Entries are read one at a time (memory stays bounded); unsafe ones (names with .. or an
    absolute path, symbolic links, encrypted, declared too large, bzip2/LZMA) and undecodable
    ones are skipped and listed. Labels: dataset.json at the root when present, else class
    subfolders (`classes.class_folders`).
    """
    path = Path(path)
    with _open_zip(path) as archive:
        entries, problems, labels_info = scan_archive(archive)
        if not entries:
            _no_images(path, problems)
        settings = f"{image_size}|{channels}|{crop}"
        key = archive_fingerprint(entries, labels_info, settings)
        cache = prepared_dir(cache_dir, slug(name or path.stem, "zip"), key)
        cached = read_prepared(cache)
        if cached is not None:
            return cached
        shape = (3, image_size, image_size)
        with interruptible(str(path)), PreparedWriter(cache, len(entries), shape) as decoded:
            results = _decode_entries(archive, entries, decoded.images, image_size, crop)
            if progress is not None:
                results = progress(Sized(results, len(entries)))
            gray, skipped = collect_decoded(results, entries, problems, path)
            rels = [entries[i].rel for i in sorted(gray)]
            if labels_info is None:
                labelling = class_folders(rels, "zip archive")
            else:
                labelling = dataset_json_labels(_read_json(archive, labels_info), rels)
            source = {"kind": "zip", "path": str(path.resolve()), "files": len(entries)}
            source |= {"image_size": image_size, "channels": channels, "crop": crop}
            return commit_decoded(decoded, gray, name or path.stem, source, skipped, labelling)


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except FileNotFoundError:
        raise DataError(f"data archive {path} does not exist") from None
    except Exception as e:  # a corrupt central directory: BadZipFile, struct.error, ...
        raise DataError(f"{path} is not a readable zip archive ({skip_reason(e)})") from None


def _no_images(path: Path, problems: list[tuple[str, str]]) -> None:
    if problems:
        name, reason = problems[0]
        raise DataError(
            f"none of the {len(problems)} image entries in the zip archive {path} can be read "
            f"safely (e.g. {name}: {reason})"
        )
    exts = ", ".join(sorted(e.lstrip(".") for e in IMAGE_EXTENSIONS))
    raise DataError(f"no images ({exts}) found in the zip archive {path}")


def scan_archive(
    archive: zipfile.ZipFile,
) -> tuple[list[Entry], list[tuple[str, str]], zipfile.ZipInfo | None]:
    """The image entries, sorted by name; the image entries refused, with a reason; and the
    root dataset.json's entry if there is one. Folders, non-images and macOS's __MACOSX/ and ._
    resource forks are passed over silently."""
    entries, problems, labels_info = [], [], None
    for info in archive.infolist():
        name = info.filename
        base = name.rsplit("/", 1)[-1]
        if info.is_dir() or name.startswith("__MACOSX/") or base.startswith("._"):
            continue
        if name == DATASET_JSON:
            labels_info = info
            continue
        if os.path.splitext(base)[1].lower() not in IMAGE_EXTENSIONS:
            continue
        reason = unsafe_entry(info)
        if reason:
            problems.append((name, reason))
        else:
            entries.append(Entry(name, info))
    entries.sort(key=lambda e: e.rel)
    return entries, sorted(problems), labels_info


def unsafe_entry(info: zipfile.ZipInfo, limit: int | None = None) -> str | None:
    """Why an entry is refused, or None: it is never extracted, but its name becomes a label and
    its bytes (at most `limit`, default MAX_ENTRY_BYTES) are inflated into memory."""
    name, limit = info.filename, MAX_ENTRY_BYTES if limit is None else limit
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or "\\" in name:
        return "refused: an absolute or Windows-style path name"
    if ".." in name.split("/"):
        return "refused: a name that climbs out of the archive (..)"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "refused: a symbolic link"
    if info.flag_bits & 0x1:
        return "refused: encrypted"
    if info.compress_type not in _METHODS:
        return f"refused: compression method {info.compress_type} (only stored or deflate)"
    if info.file_size > limit:
        return f"refused: declares {info.file_size} bytes uncompressed (limit {limit}; a zip bomb?)"
    if info.file_size > BOMB_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
        return f"refused: inflates {info.file_size // max(info.compress_size, 1)}x (a zip bomb?)"
    return None


def archive_fingerprint(
    entries: list[Entry], labels_info: zipfile.ZipInfo | None, settings: str
) -> str:
    """A hash of every image entry's name, size and CRC, dataset.json's, and the settings: the
    same archive anywhere on disk reuses its cache; any changed entry or label prepares anew."""
    h = hashlib.sha256(f"v{PREPARE_VERSION}|zip|{settings}".encode())
    for e in entries + ([Entry(DATASET_JSON, labels_info)] if labels_info else []):
        h.update(f"|{e.rel}|{e.info.file_size}|{e.info.CRC}".encode("utf-8", "surrogateescape"))
    return h.hexdigest()[:16]


def _decode_entries(
    archive: zipfile.ZipFile,
    entries: list[Entry],
    out: np.ndarray,
    image_size: int,
    crop: int | None,
) -> Iterator[tuple]:
    """Decode entry i into out[i] (N, 3, S, S); yields (i, is_gray) or (i, None, reason), as
    `folders.decode_all` does. One entry's bytes in memory at a time."""
    for i, entry in enumerate(entries):
        try:
            with archive.open(entry.info) as f:
                raw = f.read(MAX_ENTRY_BYTES + 1)  # zipfile stops at the declared size too
            pixels, gray = decode_image(io.BytesIO(raw), image_size, crop)
        # a hostile entry (bad CRC, broken deflate stream, undecodable image) is skipped
        except Exception as e:
            yield i, None, skip_reason(e)
            continue
        out[i] = pixels.transpose(2, 0, 1)
        yield i, gray


def _read_json(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Any:
    """dataset.json's content, or a str saying why it could not be read."""
    reason = unsafe_entry(info, MAX_JSON_BYTES)
    if reason:
        return f"a zip archive whose {DATASET_JSON} is {reason}"
    try:
        with archive.open(info) as f:
            return json.loads(f.read(MAX_JSON_BYTES + 1))
    except Exception as e:
        return f"a zip archive whose {DATASET_JSON} cannot be read: {skip_reason(e)}"


def dataset_json_labels(meta: Any, rels: list[str]) -> Labelling:
    """stylegan2-ada's convention: {"labels": [["00000/img00000000.png", 6], ...]} or null.
    Labels are class numbers (a one-element list counts as its element); class names are "0" to
    the largest label. Every image must have one, else the set is unlabelled."""
    if isinstance(meta, str):  # a reason from _read_json
        return unlabelled(meta)
    pairs = meta.get("labels") if isinstance(meta, dict) else None
    if not isinstance(pairs, list):
        return unlabelled(f"a zip archive whose {DATASET_JSON} has no labels (labels: null)")
    given: dict[str, Any] = {}
    for pair in pairs:
        if isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str):
            label = pair[1][0] if isinstance(pair[1], list) and len(pair[1]) == 1 else pair[1]
            given[pair[0].replace("\\", "/")] = label
    missing = [r for r in rels if r not in given]
    if missing:
        return unlabelled(
            f"a zip archive whose {DATASET_JSON} gives no label for {len(missing)} of its "
            f"{len(rels)} images (e.g. {missing[0]})"
        )
    labels = [given[r] for r in rels]
    bad = next((x for x in labels if type(x) is not int or not 0 <= x < MAX_CLASSES), None)
    if bad is not None or not labels:
        return unlabelled(
            f"a zip archive whose {DATASET_JSON} labels are not class numbers 0 to "
            f"{MAX_CLASSES - 1} (found {json.dumps(bad)[:40]})"
        )
    count = max(labels) + 1
    return Labelling(np.array(labels, np.int64), tuple(map(str, range(count))), None)
