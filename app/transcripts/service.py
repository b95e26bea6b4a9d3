"""Transcript assembly: a student's school year from the ledger, against the yearly requirement,
and the signed credential that travels with it (app/transcripts/credential.py).

A year can hold hundreds of entries, each with an explanation of a kilobyte or more: the JSON
route uses `transcript_json` (totals from aggregate queries, plain column values, explanations spliced
in as stored, and a per-process cache of the serialised entries that a new entry extends rather than
invalidates), the PDF route
`signed_head` and `pdf.table_entries`; `transcript()` and `signed_transcript()` build the same content
as dicts with ORM objects (the seed, tests, anything that wants the whole year at once).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from flask import current_app
from sqlalchemy import BigInteger, DateTime, Text, bindparam, case, cast, func, inspect, or_, select, type_coerce

from app.common import fmt_credits, iso
from app.credits.models import GENESIS_HASH, LedgerEntry
from app.credits.rules import progress, school_year_bounds
from app.credits.service import active_rules
from app.errors import field_error
from app.extensions import db
from app.orgs.models import School, SchoolClass, Student


def entry_view(entry: LedgerEntry) -> dict:
    """A ledger entry as the API shows it (every field of SPEC §6)."""
    return {
        "id": entry.id,
        "student_id": entry.student_id,
        "seq": entry.seq,
        "kind": entry.kind,
        "amount": fmt_credits(entry.amount),
        "activity_kind": entry.activity_kind,
        "competition": entry.competition,
        "source": entry.source,
        "source_id": entry.source_id,
        "reverses_id": entry.reverses_id,
        "venue_id": entry.venue_id,
        "occurred_at": iso(entry.occurred_at),
        "school_year": entry.school_year,
        "term": entry.term,
        "rule_version": entry.rule_version,
        "explanation": entry.explanation,
        "created_at": iso(entry.created_at),
        "created_by": entry.created_by,
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    }


def kind_of(entry: LedgerEntry) -> str:
    """The requirement kind an entry counts toward: an activity kind, competition, or other."""
    if entry.activity_kind:
        return entry.activity_kind
    if entry.source == "claim" or entry.competition:
        return "competition"
    return "other"


def check_school_year(school_year: str) -> str:
    try:
        school_year_bounds(school_year)
    except ValueError:
        raise field_error("school_year", "学年格式应为 2025-2026。") from None
    return school_year


def standing(rules, grade: int, by_kind: dict[str, Decimal], total: Decimal) -> dict:
    """Total, requirement, met, kinds done and what is missing: the same numbers for a transcript,
    a class-progress row, a guardian's view and a spreadsheet. `total` counts every entry of the
    year; the requirement looks at the kinds (entries of no kind, "other", count in the total only)."""
    state = progress(rules, grade, {k: v for k, v in by_kind.items() if k != "other"})
    return {
        "total": fmt_credits(total),
        "required": fmt_credits(state.required),
        "met": state.met,
        "kinds": list(state.kinds),
        "missing": {
            "credits": fmt_credits(state.missing_credits),
            "kinds": state.missing_kinds,
            "one_of": list(state.missing_one_of),
            "hint": state.hint,
        },
    }


def _kind(activity_kind: str | None, source: str, competition: str | None) -> str:
    """kind_of, for plain column values."""
    if activity_kind:
        return activity_kind
    if source == "claim" or competition:
        return "competition"
    return "other"


def _names_select(student: Student):
    """(class name, school name) of the pupil as scalar subqueries, for one small Core query (rather
    than two lazy ORM loads)."""
    return (select(SchoolClass.name).where(SchoolClass.id == student.class_id).scalar_subquery(),
            select(School.name).where(School.id == student.school_id).scalar_subquery())


def _names(student: Student) -> tuple[str, str]:
    """The pupil's class and school names (from the session when it holds both already)."""
    state = inspect(student)
    if "school_class" not in state.unloaded and "school" not in state.unloaded:
        return student.school_class.name, student.school.name
    return tuple(db.session.execute(select(*_names_select(student))).one())


def _head(student: Student, school_year: str, amounts: list[tuple[str, int, Decimal]],
          names: tuple[str, str] | None = None) -> dict:
    """Everything of the transcript but its entries and credential, from (kind, term, amount) triples
    (and the class and school names when the caller has read them)."""
    check_school_year(school_year)
    by_kind: dict[str, Decimal] = defaultdict(Decimal)
    by_term: dict[str, Decimal] = {"1": Decimal("0"), "2": Decimal("0")}
    for kind, term, amount in amounts:
        by_kind[kind] += amount
        by_term[str(term)] += amount
    rules = active_rules()
    total = sum(by_term.values(), Decimal("0"))
    class_name, school_name = names or _names(student)
    return {
        "student": {
            "id": student.id,
            "name": student.name,
            "student_number": student.student_number,
            "grade": student.grade,
            "class_id": student.class_id,
            "class_name": class_name,
            "school_id": student.school_id,
            "school_name": school_name,
        },
        "school_year": school_year,
        "rule_version": rules.version,
        **standing(rules, student.grade, by_kind, total),
        "by_kind": {kind: fmt_credits(amount) for kind, amount in sorted(by_kind.items())},
        "by_term": {term: fmt_credits(amount) for term, amount in by_term.items()},
    }


def _issue(data: dict, count: int, last_hash: str | None, actor_id: int | None) -> dict:
    from app.transcripts import credential

    chain = {"entries": count, "ledger_head": last_hash or GENESIS_HASH}
    return credential.credential_view(credential.issue(data, chain, actor_id=actor_id))


def _year(student_id: int, school_year: str):
    return (LedgerEntry.student_id == student_id) & (LedgerEntry.school_year == school_year)


def _entries(student_id: int, school_year: str) -> list[LedgerEntry]:
    return db.session.scalars(select(LedgerEntry).where(_year(student_id, school_year)).order_by(LedgerEntry.seq)).all()


def transcript(student: Student, school_year: str) -> dict:
    """The yearly transcript (SPEC §8) without its credential: totals, requirement, entries."""
    check_school_year(school_year)
    entries = _entries(student.id, school_year)
    data = _head(student, school_year, [(kind_of(e), e.term, e.amount) for e in entries])
    return {**data, "entries": [entry_view(e) for e in entries], "credential": None}


def signed_transcript(student: Student, school_year: str, *, actor_id: int | None) -> dict:
    """The transcript with its "credential": the signed VC-JWT of these totals, issued now or reused
    while nothing it says has changed (added to the session; the caller commits)."""
    check_school_year(school_year)
    entries = _entries(student.id, school_year)
    data = _head(student, school_year, [(kind_of(e), e.term, e.amount) for e in entries])
    data["entries"] = [entry_view(e) for e in entries]
    data["credential"] = _issue(data, len(entries), entries[-1].hash if entries else None, actor_id)
    return data


# --------------------------------------------------------------------------------------------------
# The JSON answer, fast: a year of 500 entries is ~800 KB of JSON.
#
# Entries never change (append-only, hash-chained), and a new one always comes after the ones
# before it (seq), so the year's entries serialised once stay valid as a *prefix* for good: a
# small per-process cache (TRANSCRIPT_CACHE_BYTES, 32 MiB by default; 0 turns it off) keeps, per
# pupil and year, the serialised entries up to the year's last entry then, with that entry's seq and
# hash. A repeated read serves it as it is; the read after a new entry (a scan) reads and formats
# only the entries after it and appends them. The hash of the prefix's last entry is checked against
# the database in the same query (its hash covers, through prev_hash, every entry before it), so a
# prefix that no longer matches is built again from scratch. Building (a cache miss) reads plain
# values, integer cents, naive UTC datetimes and the explanation as stored text, and formats each
# entry with one string template (entry_view's keys, explanation last).
#
# Totals, count and head come from one aggregate statement, and the entries read are bounded by the
# head's seq: the entries, the totals and the credential always describe the same ledger, even when
# a scan commits while the transcript is being read.

# The SQL twin of kind_of.
KIND_CASE = case(
    (LedgerEntry.activity_kind.is_not(None), LedgerEntry.activity_kind),
    (or_(LedgerEntry.source == "claim", LedgerEntry.competition.is_not(None)), "competition"),
    else_="other",
)
_RAW_COLUMNS = (
    LedgerEntry.id, LedgerEntry.student_id, LedgerEntry.seq, LedgerEntry.kind,
    type_coerce(LedgerEntry.amount, BigInteger).label("cents"), LedgerEntry.activity_kind,
    LedgerEntry.competition, LedgerEntry.source, LedgerEntry.source_id, LedgerEntry.reverses_id,
    LedgerEntry.venue_id, type_coerce(LedgerEntry.occurred_at, DateTime).label("occurred_at"),
    LedgerEntry.school_year, LedgerEntry.term, LedgerEntry.rule_version,
    type_coerce(LedgerEntry.created_at, DateTime).label("created_at"), LedgerEntry.created_by,
    LedgerEntry.prev_hash, LedgerEntry.hash, cast(LedgerEntry.explanation, Text).label("explanation"),
)
_SEQ, _YEAR, _HASH = 2, 12, 18  # positions in _RAW_COLUMNS
_ENTRY_TEMPLATE = (
    '{"id":%d,"student_id":%d,"seq":%d,"kind":%s,"amount":"%s","activity_kind":%s,"competition":%s,'
    '"source":%s,"source_id":%s,"reverses_id":%s,"venue_id":%s,"occurred_at":"%s","school_year":%s,"term":%d,'
    '"rule_version":%s,"created_at":"%s","created_by":%s,"prev_hash":"%s","hash":"%s","explanation":%s}'
)
_SHANGHAI_OFFSET = timedelta(hours=8)  # Asia/Shanghai has kept UTC+8 all year since 1991

# The statements every transcript read runs, built once: SQLAlchemy memoises a statement's cache key,
# so executing one costs the lookup of its compiled form only.
_THE_YEAR = (LedgerEntry.student_id == bindparam("student_id")) & (LedgerEntry.school_year == bindparam("school_year"))
# One statement, so one snapshot: sums per kind and term with their count and last seq, and on every
# row the class and school names and the hash of the year's last entry.
_HEAD_SUMS = (
    select(KIND_CASE, LedgerEntry.term, func.sum(type_coerce(LedgerEntry.amount, BigInteger)), func.count(),
           func.max(LedgerEntry.seq),
           select(SchoolClass.name).where(SchoolClass.id == bindparam("class_id")).scalar_subquery(),
           select(School.name).where(School.id == bindparam("school_id")).scalar_subquery(),
           select(LedgerEntry.hash).where(_THE_YEAR).order_by(LedgerEntry.seq.desc()).limit(1).scalar_subquery())
    .where(_THE_YEAR).group_by(KIND_CASE, LedgerEntry.term)
)
_YEAR_ENTRIES = select(*_RAW_COLUMNS).where(_THE_YEAR & (LedgerEntry.seq <= bindparam("last_seq"))).order_by(LedgerEntry.seq)
_SEQ_RANGE = (
    select(*_RAW_COLUMNS)
    .where(LedgerEntry.student_id == bindparam("student_id"),
           LedgerEntry.seq.between(bindparam("first_seq"), bindparam("last_seq")))
    .order_by(LedgerEntry.seq)
)
DEFAULT_CACHE_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class _Serialised:
    """A year's entries up to one of them, serialised: the comma-separated JSON objects (no brackets)."""

    count: int
    last_seq: int
    last_hash: str
    body: bytes


class _EntriesCache:
    """Least-recently-used (student, year) → _Serialised, within a byte budget."""

    def __init__(self):
        self._items: OrderedDict[tuple, _Serialised] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple) -> _Serialised | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: tuple, value: _Serialised, budget: int) -> None:
        """Keep `value` for `key` (replacing an older prefix); a value over the budget is not kept."""
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= len(old.body)
            if len(value.body) > budget:
                return
            self._items[key] = value
            self._bytes += len(value.body)
            while self._bytes > budget:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= len(dropped.body)

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


entries_cache = _EntriesCache()


def _js(value) -> str:
    return "null" if value is None else json.dumps(value, ensure_ascii=False)


def _num(value) -> str:
    return "null" if value is None else str(int(value))


def _cents(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(int(cents)), 100)
    return f"{sign}{whole}.{part:02d}"


def _local_iso(moment: datetime) -> str:
    """A naive UTC datetime as iso() writes it: Asia/Shanghai with its +08:00 offset."""
    if moment.tzinfo is not None:  # (datetime.replace costs more than the rest together)
        moment = moment.replace(tzinfo=None)
    return (moment + _SHANGHAI_OFFSET).isoformat() + "+08:00"


def _entry_rows(student_id: int, school_year: str, first_seq: int | None, last_seq: int) -> list[tuple]:
    """The year's entries with first_seq ≤ seq ≤ last_seq (from the first when first_seq is None), as
    plain tuples in _RAW_COLUMNS order: Core on the session's connection, no ORM result layer.

    A seq range (the entries after a cached prefix) is read through the (student_id, seq) key, every
    year's, and the other years' dropped here: a few rows, where the (student_id, school_year) index
    would walk the whole year."""
    connection = db.session.connection()
    if first_seq is None:
        return connection.execute(_YEAR_ENTRIES, {"student_id": student_id, "school_year": school_year,
                                                  "last_seq": last_seq}).all()
    rows = connection.execute(_SEQ_RANGE, {"student_id": student_id, "first_seq": first_seq, "last_seq": last_seq})
    return [row for row in rows if row[_YEAR] == school_year]


def _format(rows) -> bytes:
    """Entries as comma-separated JSON objects (entry_view of each), from plain column values."""
    words: dict = {}  # kinds, sources, years, rule versions: a handful of distinct strings

    def word(value) -> str:
        found = words.get(value)
        if found is None:
            found = words[value] = _js(value)
        return found

    # Positional unpacking: a Row's attribute access by name costs more than the formatting itself.
    return ",".join([
        _ENTRY_TEMPLATE % (
            id_, student, seq, word(kind), _cents(cents), word(activity_kind), _js(competition), word(source),
            _num(source_id), _num(reverses_id), _num(venue_id), _local_iso(occurred_at), word(year), term,
            word(rule_version), _local_iso(created_at), _num(created_by), prev_hash, hash_, explanation or "null",
        )
        for (id_, student, seq, kind, cents, activity_kind, competition, source, source_id, reverses_id, venue_id,
             occurred_at, year, term, rule_version, created_at, created_by, prev_hash, hash_, explanation) in rows
    ]).encode()


def _serialised_entries(student_id: int, school_year: str, count: int, last_seq: int | None,
                        last_hash: str | None) -> bytes:
    """The year's `count` entries up to seq `last_seq` (hash `last_hash`), serialised without
    brackets: from the cache, the cached prefix plus what came after it, or built from scratch."""
    if not count:
        return b""
    budget = int(current_app.config.get("TRANSCRIPT_CACHE_BYTES", DEFAULT_CACHE_BYTES))
    key = (student_id, school_year)
    cached = entries_cache.get(key) if budget else None
    if cached is not None and cached.last_seq == last_seq and cached.last_hash == last_hash \
            and cached.count == count:
        return cached.body
    body = None
    if cached is not None and cached.last_seq < last_seq:
        # The prefix's last entry comes back first: its hash proves the prefix is still the ledger's.
        rows = _entry_rows(student_id, school_year, cached.last_seq, last_seq)
        if (rows and rows[0][_SEQ] == cached.last_seq and rows[0][_HASH] == cached.last_hash
                and cached.count + len(rows) - 1 == count and rows[-1][_HASH] == last_hash):
            body = cached.body + b"," + _format(rows[1:])
    if body is None:
        rows = _entry_rows(student_id, school_year, None, last_seq)
        body = _format(rows)
        if len(rows) != count or rows[-1][_HASH] != last_hash:
            return body  # (a ledger rewritten under the read: served as read, never kept)
    if budget:
        entries_cache.put(key, _Serialised(count, last_seq, last_hash, body), budget)
    return body


def _signed_head(student: Student, school_year: str, *, actor_id: int | None) -> tuple[dict, int | None]:
    """(signed_head's answer, the seq of the year's last entry or None)."""
    check_school_year(school_year)
    sums = db.session.execute(_HEAD_SUMS, {"student_id": student.id, "school_year": school_year,
                                           "class_id": student.class_id, "school_id": student.school_id}).all()
    count = sum(row[3] for row in sums)
    last_seq = max((row[4] for row in sums), default=None)
    class_name, school_name, last_hash = sums[0][5:] if sums else (*_names(student), None)
    data = _head(student, school_year, [(row[0], row[1], Decimal(row[2]).scaleb(-2)) for row in sums],
                 (class_name, school_name))
    data["entries"] = None
    data["credential"] = _issue(data, count, last_hash, actor_id)
    return data, last_seq


def signed_head(student: Student, school_year: str, *, actor_id: int | None) -> dict:
    """The transcript without its entries ("entries": None) but with its credential, from one small
    aggregate statement (sums, count and last seq per kind and term, with the class and school names
    and the last entry's hash)."""
    return _signed_head(student, school_year, actor_id=actor_id)[0]


def transcript_json(student: Student, school_year: str, *, actor_id: int | None) -> bytes:
    """signed_transcript serialised as UTF-8 JSON (the JSON route's fast path; same content)."""
    data, last_seq = _signed_head(student, school_year, actor_id=actor_id)
    summary = data["credential"]
    entries = _serialised_entries(student.id, school_year, summary["entries"], last_seq,
                                  summary["ledger_head"] if last_seq is not None else None)
    before, after = json.dumps(data, ensure_ascii=False, separators=(",", ":")).split('"entries":null', 1)
    return b"".join((before.encode(), b'"entries":[', entries, b"]", after.encode()))
