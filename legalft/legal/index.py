"""The statute index: every provision of the bundled and user-added legislation, in SQLite FTS5.

Sources are legislation files in the schemas the Dataset page's converter reads: one section per
line (``act_title``, ``section``, ``text``, ``id``/``source_url`` ...) or one Act per line
(``title``, ``year_number``, ``text``). A provision is keyed by Act, kind (section, schedule,
paragraph, regulation, article, part) and number; its kind comes from its legislation.gov.uk URL
where it has one (``.../schedule/1/paragraph/3``). Building is incremental: a file whose content
hash is already indexed is skipped, a changed one replaces its rows. The index lives in the state
database (``LEGALFT_HOME/legalft.db``), full text searchable with BM25.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from legalft.db import connect
from legalft.home import bundled_data_dir
from legalft.jobs import utc_now
from legalft.legal.citations import Citation, act_key

log = logging.getLogger(__name__)

BUNDLED_CORPUS = "uk_legislation_sections.jsonl.gz"
#: Provision texts kept in memory for checking (the bundled corpus fits whole: ~12 MB).
CACHE_PROVISIONS = 8000
_URL_PATH = re.compile(r"legislation\.gov\.uk/(?:[a-z]+)/(?:\d{4}|[A-Za-z0-9]+)/\d+(?P<rest>/.*)?$")
_SECTION_LINE = re.compile(r"^(?P<num>\d{1,3}[A-Z]{0,2})\s+(?P<heading>[A-Z][^\n]{2,160})\n(?=\(1\)|[A-Z])", re.M)


@dataclass(frozen=True)
class IndexedProvision:
    """One provision in the index, with its text and source link."""

    id: int
    act: str
    year: int | None
    chapter: str | None
    kind: str
    number: str
    schedule: str | None
    heading: str | None
    text: str
    url: str | None

    @property
    def label(self) -> str:
        core = {"section": "Section", "schedule": "Schedule", "regulation": "Regulation", "article": "Article",
                "part": "Part"}.get(self.kind)
        core = f"paragraph {self.number} of Schedule {self.schedule}" if self.kind == "paragraph" else \
            f"{core} {self.number}"
        return f"{core} of the {self.act}"


@dataclass
class IndexReport:
    """What adding one file did; every line read is accounted for."""

    path: str
    skipped_unchanged: bool = False
    lines: int = 0
    provisions: int = 0
    acts: int = 0
    dropped: Counter = field(default_factory=Counter)
    issues: list[str] = field(default_factory=list)

    def drop(self, line: int, reason: str, message: str) -> None:
        self.dropped[reason] += 1
        if len(self.issues) < 200:
            self.issues.append(f"line {line}: {message}")

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "skipped_unchanged": self.skipped_unchanged, "lines": self.lines,
                "provisions": self.provisions, "acts": self.acts, "dropped": dict(self.dropped),
                "issues": self.issues}


def _kind_from_url(url: str | None, section: str | None) -> tuple[str, str, str | None] | None:
    """(kind, number, schedule) from a legislation.gov.uk URL, else from the ``section`` label."""
    if url:
        match = _URL_PATH.search(url.rstrip("/"))
        if match and match.group("rest"):
            parts = match.group("rest").strip("/").split("/")
            if len(parts) >= 4 and parts[0] == "schedule" and parts[2] == "paragraph":
                return "paragraph", parts[3], parts[1]
            if len(parts) >= 2 and parts[0] in ("section", "schedule", "regulation", "article", "part"):
                return parts[0], parts[1], None
    if section:
        label = str(section).strip()
        sched = re.fullmatch(r"(?i)(?:schedule|sch\.?)\s*(\w+)(?:\s*,?\s*(?:paragraph|para\.?)\s*(\w+))?", label)
        if sched:
            return ("paragraph", sched.group(2), sched.group(1)) if sched.group(2) else ("schedule", sched.group(1), None)
        kind = re.fullmatch(r"(?i)(regulation|article|part|section)\s+(\w+)", label)
        if kind:
            return kind.group(1).lower(), kind.group(2), None
        return "section", re.sub(r"^(?:s\.?|section)\s*", "", label, flags=re.I), None
    return None


def _year_of(title: str, value: Any) -> int | None:
    if isinstance(value, int):
        return value
    text = str(value or "")
    if text[:4].isdigit():
        return int(text[:4])
    found = re.search(r"(1[2-9]\d\d|20\d\d)\s*$", title)
    return int(found.group(1)) if found else None


def _rows_of_act(value: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """An Act given whole: its numbered sections when the text shows them, else nothing per section."""
    text = str(value["text"])
    title = str(value["title"]).strip()
    year = _year_of(title, value.get("year_number"))
    marks = list(_SECTION_LINE.finditer(text))
    numbers = [m.group("num") for m in marks]
    # Only trust a split whose numbers run 1, 2, 3 ... (a table of contents or a list would not).
    if len(marks) >= 2 and numbers[:2] == ["1", "2"]:
        for mark, nxt in zip(marks, marks[1:] + [None]):
            body = text[mark.end(): nxt.start() if nxt else len(text)].strip()
            yield {"act": title, "year": year, "chapter": value.get("year_number"), "kind": "section",
                   "number": mark.group("num"), "schedule": None, "heading": mark.group("heading").strip(),
                   "text": body, "url": f"{str(value.get('id') or '').rstrip('/')}/section/{mark.group('num')}"
                   if value.get("id") else None}


class StatuteIndex:
    """The index, read through an in-memory catalogue of Acts and provision keys (cheap to check against)."""

    _lock = threading.Lock()

    def __init__(self) -> None:
        self._catalogue: dict[str, dict[str, Any]] | None = None
        self._version: tuple | None = None
        self._keys: dict[tuple, int] = {}
        self._cache: dict[int, IndexedProvision] = {}

    # -- building --

    def add_file(self, path: str | Path, *, name: str | None = None) -> IndexReport:
        """Index one legislation file (JSONL, optionally gzipped); unchanged content is skipped."""
        from legalft.data.readers import iter_records

        path = Path(path)
        raw = path.read_bytes()
        digest = hashlib.sha256(raw).hexdigest()
        report = IndexReport(path=str(path))
        with connect() as conn:
            row = conn.execute("SELECT id, sha256 FROM statute_sources WHERE path = ?", (str(path.resolve()),)).fetchone()
            if row and row["sha256"] == digest:
                report.skipped_unchanged = True
                return report
        source = _spill(gzip.decompress(raw)) if path.suffix == ".gz" else path
        rows: list[tuple] = []
        acts: dict[str, dict[str, Any]] = {}
        records = iter_records(source, fmt="jsonl" if path.suffix == ".gz" else None)
        for record in records:
            report.lines += 1
            value = None if record.error else record.value
            if not isinstance(value, dict):
                report.drop(record.line, "not_an_object", "not a JSON object" if value is not None else
                            f"not valid JSON ({record.error})")
                continue
            if "act_title" in value and "text" in value:
                title = str(value["act_title"]).strip()
                url = value.get("source_url") or value.get("id")
                kind = _kind_from_url(str(url) if url else None, value.get("section"))
                if not title or kind is None or not str(value.get("text") or "").strip():
                    report.drop(record.line, "incomplete", "a section needs act_title, section (or a URL) and text")
                    continue
                entries = [{"act": title, "year": _year_of(title, value.get("year")), "chapter": value.get("chapter"),
                            "kind": kind[0], "number": kind[1], "schedule": kind[2],
                            "heading": value.get("heading"), "text": str(value["text"]), "url": url}]
            elif "title" in value and "text" in value:
                entries = list(_rows_of_act(value))
                title = str(value["title"]).strip()
                acts.setdefault(act_key(title), {"title": title, "year": _year_of(title, value.get("year_number")),
                                                 "chapter": value.get("year_number"), "leg_type": value.get("leg_type"),
                                                 "kinds": set()})
                if not entries:
                    report.drop(record.line, "no_sections", f"the {title} has no numbered sections in its text "
                                "(indexed as an Act; its provisions cannot be checked)")
            else:
                report.drop(record.line, "unrecognized_record",
                            "neither a section (act_title, text) nor an Act (title, text)")
                continue
            for entry in entries:
                key = act_key(entry["act"])
                info = acts.setdefault(key, {"title": entry["act"], "year": entry["year"], "chapter": entry["chapter"],
                                             "leg_type": value.get("leg_type"), "kinds": set()})
                info["kinds"].add(entry["kind"])
                if entry["kind"] == "paragraph":
                    info["kinds"].add("schedule")
                rows.append((key, entry["act"], entry["year"], entry["chapter"], entry["kind"], str(entry["number"]),
                             entry["schedule"], entry["heading"], entry["text"], entry["url"], record.line))
        with StatuteIndex._lock, connect() as conn:
            conn.execute("DELETE FROM statute_sources WHERE path = ?", (str(path.resolve()),))
            source_id = conn.execute(
                "INSERT INTO statute_sources (path, name, sha256, lines, provisions, report_json, indexed_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (str(path.resolve()), name or path.name, digest, report.lines, len(rows), "{}", utc_now()),
            ).lastrowid
            conn.executemany(
                "INSERT INTO statute_acts (source_id, act_key, title, year, chapter, leg_type, kinds)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(source_id, key, a["title"], a["year"], a["chapter"], a["leg_type"], ",".join(sorted(a["kinds"])))
                 for key, a in acts.items()],
            )
            conn.executemany(
                "INSERT INTO statute_provisions (source_id, act_key, act, year, chapter, kind, number, schedule,"
                " heading, text, url, line) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(source_id, *row) for row in rows],
            )
            report.provisions, report.acts = len(rows), len(acts)
            import json

            conn.execute("UPDATE statute_sources SET report_json = ? WHERE id = ?",
                         (json.dumps(report.to_dict()), source_id))
        self._catalogue = None
        return report

    def ensure_bundled(self) -> IndexReport | None:
        """Index the bundled corpus unless it is already there (a no-op on every later call)."""
        path = bundled_data_dir() / BUNDLED_CORPUS
        with connect() as conn:
            row = conn.execute("SELECT 1 FROM statute_sources WHERE path = ?", (str(path.resolve()),)).fetchone()
        if row:
            return None
        return self.add_file(path, name="bundled: UK Public General Acts 2022–2024")

    def sources(self) -> list[dict[str, Any]]:
        with connect() as conn:
            rows = conn.execute("SELECT id, path, name, sha256, lines, provisions, indexed_at FROM statute_sources"
                                " ORDER BY id").fetchall()
        return [dict(r) for r in rows]

    # -- reading --

    def refresh_if_changed(self) -> None:
        """Drop the catalogue when another process (the CLI, another page) indexed or replaced a file."""
        with connect() as conn:
            version = tuple(conn.execute("SELECT COUNT(*), MAX(id), MAX(indexed_at) FROM statute_sources").fetchone())
        if version != self._version:
            self._catalogue, self._version = None, version
            self._cache.clear()

    def _load(self) -> dict[str, dict[str, Any]]:
        if self._catalogue is None:
            catalogue: dict[str, dict[str, Any]] = {}
            keys: dict[tuple, int] = {}
            with connect() as conn:
                for row in conn.execute("SELECT act_key, title, year, kinds FROM statute_acts ORDER BY id"):
                    info = catalogue.setdefault(row["act_key"], {"title": row["title"], "year": row["year"],
                                                                 "kinds": set()})
                    info["kinds"].update(k for k in row["kinds"].split(",") if k)
                for row in conn.execute("SELECT id, act_key, kind, number, schedule FROM statute_provisions"):
                    keys.setdefault((row["act_key"], row["kind"], row["number"].upper(), row["schedule"]), row["id"])
            self._catalogue, self._keys = catalogue, keys
        return self._catalogue

    def acts(self) -> list[dict[str, Any]]:
        """Indexed Acts: title, year, kinds of provision held."""
        return [{"title": a["title"], "year": a["year"], "kinds": sorted(a["kinds"])} for a in self._load().values()]

    def title_for(self, key: str) -> str | None:
        info = self._load().get(key)
        return info["title"] if info else None

    def covers(self, key: str, kind: str) -> bool | None:
        """None: the Act is not indexed; False: it is, but not that kind of provision; True: it is."""
        info = self._load().get(key)
        if info is None:
            return None
        return kind in info["kinds"]

    def _id_of(self, citation: Citation) -> int | None:
        if not citation.act:
            return None
        self._load()
        kind = "section" if citation.kind == "subsection" else citation.kind
        schedule = citation.schedule if kind == "paragraph" else None
        return self._keys.get((act_key(citation.act), kind, citation.number.upper(), schedule))

    def find(self, citation: Citation) -> IndexedProvision | None:
        provision_id = self._id_of(citation)
        return self.provision(provision_id) if provision_id is not None else None

    def prefetch(self, citations: list[Citation]) -> None:
        """Load the texts of the cited provisions not yet cached, in one query."""
        wanted = {i for i in (self._id_of(c) for c in citations) if i is not None and i not in self._cache}
        if not wanted:
            return
        marks = ", ".join("?" * len(wanted))
        with connect() as conn:
            rows = conn.execute("SELECT id, act, year, chapter, kind, number, schedule, heading, text, url"
                                f" FROM statute_provisions WHERE id IN ({marks})", sorted(wanted)).fetchall()
        if len(self._cache) + len(rows) > CACHE_PROVISIONS:
            self._cache.clear()
        for row in rows:
            self._cache[row["id"]] = IndexedProvision(**dict(row))

    def provision(self, provision_id: int) -> IndexedProvision | None:
        if provision_id in self._cache:
            return self._cache[provision_id]
        with connect() as conn:
            row = conn.execute("SELECT id, act, year, chapter, kind, number, schedule, heading, text, url"
                               " FROM statute_provisions WHERE id = ?", (provision_id,)).fetchone()
        if row is None:
            return None
        provision = IndexedProvision(**dict(row))
        if len(self._cache) >= CACHE_PROVISIONS:
            self._cache.clear()
        self._cache[provision_id] = provision
        return provision

    def search(self, query: str, k: int = 5, *, act: str | None = None) -> list[tuple[IndexedProvision, float]]:
        """The ``k`` provisions that best match ``query`` (BM25; lower score is better), optionally of one Act."""
        terms = [t for t in re.findall(r"[A-Za-z0-9]+", query.lower()) if t not in _STOPWORDS and len(t) > 1]
        if not terms:
            return []
        match = " OR ".join(f'"{t}"' for t in dict.fromkeys(terms))
        sql = ("SELECT p.id, p.act, p.year, p.chapter, p.kind, p.number, p.schedule, p.heading, p.text, p.url,"
               " bm25(statute_fts, 2.0, 4.0, 1.0) AS score FROM statute_fts JOIN statute_provisions p"
               " ON p.id = statute_fts.rowid WHERE statute_fts MATCH ?")
        args: list[Any] = [match]
        if act:
            sql += " AND p.act_key = ?"
            args.append(act_key(act))
        sql += " ORDER BY score LIMIT ?"
        args.append(int(k))
        with connect() as conn:
            rows = conn.execute(sql, args).fetchall()
        out = []
        for row in rows:
            data = dict(row)
            score = data.pop("score")
            out.append((IndexedProvision(**data), float(score)))
        return out


def _spill(raw: bytes) -> Path:
    """The readers take a path: a decompressed bundle goes to a file under the home, once."""
    from legalft.home import subdir

    target = subdir("statutes") / (hashlib.sha256(raw).hexdigest()[:16] + ".jsonl")
    if not target.exists():
        target.write_bytes(raw)
    return target


_STOPWORDS = set(
    "a an and are as at be by can could did do does for from has have how i if in into is it its may must "
    "no not of on or shall should than that the their them then there these they this those to under "
    "was what when where whether which who whom why will with would act section sections provide provides "
    "say says mean means".split()
)

_default: StatuteIndex | None = None


def default_index(*, build: bool = True) -> StatuteIndex:
    """The process's index over ``LEGALFT_HOME``, with the bundled corpus indexed on first use."""
    global _default
    from legalft.home import home_dir

    home = str(home_dir())
    if _default is None or getattr(_default, "_home", None) != home:
        _default = StatuteIndex()
        _default._home = home  # type: ignore[attr-defined]
    if build:
        _default.ensure_bundled()
    _default.refresh_if_changed()
    return _default
