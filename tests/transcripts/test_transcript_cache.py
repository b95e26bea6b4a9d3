"""The transcript JSON's entries cache: a read after a new entry extends the cached prefix, and the
answer is byte for byte the one built from scratch; a prefix that no longer matches is rebuilt; the
entries served stop at the credential's head."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

from app.reviews.service import adjust
from app.transcripts import service
from tests.transcripts.conftest import TERM2, YEAR, credited_stay, get


def _url(pupil, year=YEAR):
    return f"/api/v1/students/{pupil.id}/transcript?school_year={year}"


def _spy(monkeypatch) -> list:
    """Record the (first_seq, last_seq) of every entries query."""
    calls = []
    real = service._entry_rows

    def spy(student_id, school_year, first_seq, last_seq):
        calls.append((first_seq, last_seq))
        return real(student_id, school_year, first_seq, last_seq)

    monkeypatch.setattr(service, "_entry_rows", spy)
    return calls


def test_a_read_after_a_new_entry_formats_only_the_new_entry(app, client, school, db_session, monkeypatch):
    ming, teacher = school["ming"], school["teacher"]
    service.entries_cache.clear()
    first = get(client, teacher, _url(ming)).json
    head_seq = first["entries"][-1]["seq"]
    calls = _spy(monkeypatch)

    assert get(client, teacher, _url(ming)).json == first  # repeated read: no entries query at all
    assert calls == []

    credited_stay(ming, school["lecture"], TERM2 + timedelta(days=3), 60)
    incremental = get(client, teacher, _url(ming))
    assert calls == [(head_seq, head_seq + 1)]  # the prefix's last entry (checked) and the new one
    body = incremental.json
    assert len(body["entries"]) == len(first["entries"]) + 1 and body["total"] == "8.30"

    service.entries_cache.clear()
    scratch = get(client, teacher, _url(ming))  # same ledger, so the same (reused) credential
    assert calls[-1] == (None, head_seq + 1)
    assert scratch.data == incremental.data
    with app.test_request_context():
        expected = service.signed_transcript(ming, YEAR, actor_id=None)
    assert body == json.loads(json.dumps(expected))


def test_an_entry_of_another_year_in_between(app, client, school, db_session):
    """seq runs over every year of the pupil: the prefix check must not assume consecutive seqs."""
    ming, teacher, admin = school["ming"], school["teacher"], school["admin"]
    service.entries_cache.clear()
    before = get(client, teacher, _url(ming)).json
    adjust(student=ming, amount=Decimal("0.50"), reason="补录上学年活动", school_year="2024-2025", term=2,
           actor=admin)
    credited_stay(ming, school["workshop"], TERM2 + timedelta(days=6), 90)
    after = get(client, teacher, _url(ming)).json
    seqs = [e["seq"] for e in after["entries"]]
    assert len(seqs) == len(before["entries"]) + 1 and seqs[-1] == seqs[-2] + 2
    with app.test_request_context():
        expected = service.signed_transcript(ming, YEAR, actor_id=None)
    assert after == json.loads(json.dumps(expected))
    assert get(client, teacher, _url(ming, "2024-2025")).json["total"] == "0.50"


def test_a_prefix_that_no_longer_matches_is_built_again(app, client, school, db_session):
    ming, teacher = school["ming"], school["teacher"]
    service.entries_cache.clear()
    get(client, teacher, _url(ming))
    key = (ming.id, YEAR)
    cached = service.entries_cache.get(key)
    assert cached is not None and cached.count == 4
    # What a rolled-back test or a restored database would leave: the same seq, another entry.
    budget = app.config["TRANSCRIPT_CACHE_BYTES"]
    service.entries_cache.put(key, service._Serialised(cached.count, cached.last_seq, "0" * 64, b'{"stale":1}'), budget)
    credited_stay(ming, school["lecture"], TERM2 + timedelta(days=3), 60)
    body = get(client, teacher, _url(ming)).json
    assert all("stale" not in e for e in body["entries"]) and len(body["entries"]) == 5
    with app.test_request_context():
        expected = service.signed_transcript(ming, YEAR, actor_id=None)
    assert body == json.loads(json.dumps(expected))
    assert service.entries_cache.get(key).last_hash == body["entries"][-1]["hash"]


def test_entries_stop_at_the_head_the_credential_was_issued_for(app, client, school, db_session):
    """An entry committed while a transcript is being read is not in that answer's entries."""
    ming, teacher = school["ming"], school["teacher"]
    old = get(client, teacher, _url(ming)).json
    credited_stay(ming, school["lecture"], TERM2 + timedelta(days=3), 60)
    last = old["entries"][-1]
    with app.test_request_context():
        for _ in range(2):  # from scratch, then from the cache
            service.entries_cache.clear()
            body = service._serialised_entries(ming.id, YEAR, len(old["entries"]), last["seq"], last["hash"])
            assert json.loads(b"[" + body + b"]") == old["entries"]


def test_the_cache_keeps_one_prefix_per_pupil_and_year_within_its_budget():
    cache = service._EntriesCache()
    cache.put((1, YEAR), service._Serialised(1, 1, "a", b"x" * 60), 100)
    cache.put((1, YEAR), service._Serialised(2, 2, "b", b"x" * 70), 100)  # replaces the shorter prefix
    assert len(cache) == 1 and cache.get((1, YEAR)).count == 2
    cache.put((2, YEAR), service._Serialised(1, 1, "c", b"x" * 40), 100)  # over budget: the oldest goes
    assert cache.get((1, YEAR)) is None and cache.get((2, YEAR)).count == 1
    cache.put((3, YEAR), service._Serialised(1, 1, "d", b"x" * 101), 100)  # larger than the budget: not kept
    assert cache.get((3, YEAR)) is None and len(cache) == 1
    cache.put((2, YEAR), service._Serialised(2, 2, "e", b"x" * 101), 100)  # a replacement too large: dropped
    assert len(cache) == 0
