"""The credit rule engine against every number of SPEC §5, the school calendar of §3, and the rule file."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.credits.rules import (
    ACTIVITY_KINDS,
    AWARDS,
    COMPETITION_LEVELS,
    CREDIT_KINDS,
    SHANGHAI,
    VENUE_KINDS,
    VENUE_LEVELS,
    CompetitionHistory,
    Progress,
    Requirement,
    RuleSet,
    RuleSetError,
    Stay,
    StayHistory,
    activity_min_minutes,
    default_rule_path,
    evaluate_competition,
    evaluate_stay,
    load_rule_file,
    local_date,
    local_day_bounds,
    money,
    parse_rule_set,
    progress,
    requirement_for_grade,
    school_year_bounds,
    school_year_of,
    stay_minutes,
    term_bounds,
    term_of,
)

D = Decimal
RULES = load_rule_file(default_rule_path())
DOCUMENT = copy.deepcopy(RULES.document)
FAST = settings(max_examples=150, deadline=None, database=None)


def with_changes(**changes: object) -> dict:
    """A copy of the default document with dotted paths set (``activity__level_multipliers__city="1.25"``)."""
    doc = copy.deepcopy(DOCUMENT)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = doc
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        index = int(last) if isinstance(node, list) else last
        if value is DELETE:
            del node[index]
        else:
            node[index] = value
    return doc


DELETE = object()


def credit(kind: str, minutes: int, *, level: str = "city", venue: str = "science_base",
           rules: RuleSet = RULES, min_minutes: int | None = None, day: str = "0", stays: int = 0):
    stay = Stay(activity_kind=kind, venue_kind=venue, venue_level=level, minutes=minutes,
                min_minutes=min_minutes)
    return evaluate_stay(rules, stay, StayHistory(day_activity_total=D(day), venue_stays_this_term=stays))


def assert_json_exact(obj: object) -> None:
    """JSON-serialisable with no float anywhere."""
    json.dumps(obj)

    def walk(x: object) -> None:
        assert not isinstance(x, float), x
        if isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(obj)


# --------------------------------------------------------------------------------------------------
# The default rule file


def test_default_file_is_sz_2025():
    assert default_rule_path().name == "sz-2025.yaml"
    assert RULES.version == "sz-2025"
    assert RULES.effective_from == date(2025, 9, 1)
    assert RULES.activity_per_day == D("4.00")
    assert RULES.stays_per_venue_per_term == 3
    assert RULES.competition_per_school_year == D("16.00")
    assert RULES.shared_device_students == 3
    assert RULES.shared_device_window_minutes == 10
    assert RULES.impossible_travel_max_kmh == D("60")


def test_default_document_is_exact_json():
    assert_json_exact(RULES.document)
    assert json.loads(json.dumps(RULES.document)) == RULES.document
    again = parse_rule_set(json.loads(json.dumps(RULES.document)))
    assert again == RULES
    assert hash(again) == hash(RULES)


def test_json_rule_file_loads_like_yaml(tmp_path):
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(RULES.document, ensure_ascii=False), encoding="utf-8")
    assert load_rule_file(path) == RULES


@pytest.mark.parametrize(("kind", "minutes"), [
    ("visit", 30), ("lecture", 45), ("workshop", 60), ("research", 180), ("volunteer", 60),
])
def test_default_min_minutes(kind, minutes):
    assert activity_min_minutes(RULES, kind) == minutes


def test_unknown_activity_kind_min_minutes():
    with pytest.raises(ValueError):
        activity_min_minutes(RULES, "picnic")


# --------------------------------------------------------------------------------------------------
# Activity credit: each kind at each level (SPEC §5 tables)

LEVEL_TABLE = {
    # kind, minutes: national, provincial, city, district, campus
    ("visit", 30): ("0.75", "0.60", "0.50", "0.40", "0.25"),
    ("visit", 120): ("3.00", "2.40", "2.00", "1.60", "1.00"),
    ("lecture", 45): ("1.50", "1.20", "1.00", "0.80", "0.50"),
    ("workshop", 60): ("2.25", "1.80", "1.50", "1.20", "0.75"),
    ("research", 180): ("3.00", "2.40", "2.00", "1.60", "1.00"),
    ("volunteer", 60): ("0.75", "0.60", "0.50", "0.40", "0.25"),
    ("volunteer", 240): ("3.00", "2.40", "2.00", "1.60", "1.00"),
}


@pytest.mark.parametrize(("kind", "minutes", "level", "expected"), [
    (kind, minutes, level, amounts[i])
    for (kind, minutes), amounts in LEVEL_TABLE.items()
    for i, level in enumerate(VENUE_LEVELS)
])
def test_level_multiplier(kind, minutes, level, expected):
    result = credit(kind, minutes, level=level)
    assert result.amount == D(expected)
    assert str(result.amount) == expected


@pytest.mark.parametrize(("kind", "minutes", "level", "expected"), [
    (kind, minutes, level, amounts[4])
    for (kind, minutes), amounts in LEVEL_TABLE.items()
    for level in VENUE_LEVELS
])
def test_campus_multiplier_replaces_level(kind, minutes, level, expected):
    result = credit(kind, minutes, level=level, venue="campus")
    assert str(result.amount) == expected
    assert "校内场所 0.5" in result.explanation["summary"]


@pytest.mark.parametrize("venue", [v for v in VENUE_KINDS if v != "campus"])
def test_other_venue_kinds_use_the_level(venue):
    assert str(credit("lecture", 45, level="national", venue=venue).amount) == "1.50"
    assert str(credit("lecture", 45, level="district", venue=venue).amount) == "0.80"


# --------------------------------------------------------------------------------------------------
# Minutes: below / at / above each min_minutes and each block boundary, and the 2.0 base max (city 1.0)

MINUTES_TABLE = [
    ("visit", 0, "0.00"), ("visit", 29, "0.00"), ("visit", 30, "0.50"), ("visit", 31, "0.50"),
    ("visit", 59, "0.50"), ("visit", 60, "1.00"), ("visit", 75, "1.00"), ("visit", 89, "1.00"),
    ("visit", 90, "1.50"), ("visit", 119, "1.50"), ("visit", 120, "2.00"), ("visit", 149, "2.00"),
    ("visit", 150, "2.00"), ("visit", 600, "2.00"),
    ("lecture", 44, "0.00"), ("lecture", 45, "1.00"), ("lecture", 46, "1.00"), ("lecture", 600, "1.00"),
    ("workshop", 59, "0.00"), ("workshop", 60, "1.50"), ("workshop", 61, "1.50"), ("workshop", 600, "1.50"),
    ("research", 179, "0.00"), ("research", 180, "2.00"), ("research", 181, "2.00"),
    ("research", 900, "2.00"),
    ("volunteer", 59, "0.00"), ("volunteer", 60, "0.50"), ("volunteer", 61, "0.50"),
    ("volunteer", 119, "0.50"), ("volunteer", 120, "1.00"), ("volunteer", 179, "1.00"),
    ("volunteer", 180, "1.50"), ("volunteer", 239, "1.50"), ("volunteer", 240, "2.00"),
    ("volunteer", 299, "2.00"), ("volunteer", 300, "2.00"), ("volunteer", 900, "2.00"),
]


@pytest.mark.parametrize(("kind", "minutes", "expected"), MINUTES_TABLE)
def test_minutes_boundaries(kind, minutes, expected):
    result = credit(kind, minutes)
    assert str(result.amount) == expected
    assert result.explanation["amount"] == expected


@pytest.mark.parametrize(("kind", "minutes"), [
    ("visit", 29), ("lecture", 44), ("workshop", 59), ("research", 179), ("volunteer", 59),
])
def test_below_min_minutes_says_why(kind, minutes):
    result = credit(kind, minutes, day="0", stays=5)
    assert result.amount == D("0.00")
    expl = result.explanation
    assert expl["reason"] == "below_min_minutes"
    assert expl["caps"] == []
    min_minutes = activity_min_minutes(RULES, kind)
    assert f"未满最低 {min_minutes} 分钟" in expl["summary"]
    assert expl["factors"][0]["name"] == "min_minutes"
    assert expl["factors"][0]["value"] == str(min_minutes)


@pytest.mark.parametrize(("kind", "min_minutes", "minutes", "expected", "reason"), [
    ("visit", 45, 44, "0.00", "below_min_minutes"),
    ("visit", 45, 45, "0.50", None),
    ("visit", 20, 25, "0.00", "no_full_block"),   # an activity minimum below one block: no full block yet
    ("visit", 20, 19, "0.00", "below_min_minutes"),
    ("lecture", 90, 60, "0.00", "below_min_minutes"),
    ("lecture", 90, 90, "1.00", None),
    ("lecture", 0, 0, "1.00", None),
    ("research", 120, 150, "2.00", None),
    ("volunteer", 30, 59, "0.00", "no_full_block"),
])
def test_activity_own_min_minutes(kind, min_minutes, minutes, expected, reason):
    result = credit(kind, minutes, min_minutes=min_minutes)
    assert str(result.amount) == expected
    assert result.explanation["reason"] == reason
    assert result.explanation["inputs"]["min_minutes"] == min_minutes
    assert result.explanation["inputs"]["min_minutes_source"] == "activity"


def test_explanation_of_a_visit():
    expl = credit("visit", 75).explanation
    assert expl["rule_version"] == "sz-2025"
    assert expl["inputs"] == {
        "activity_kind": "visit", "venue_kind": "science_base", "venue_level": "city", "minutes": 75,
        "min_minutes": 30, "min_minutes_source": "rule_default", "day_activity_total": "0.00",
        "venue_stays_this_term": 0,
    }
    assert [(f["name"], f["value"]) for f in expl["factors"]] == [("base", "1.00"), ("multiplier", "1.00")]
    assert expl["caps"] == []
    assert expl["amount"] == "1.00"
    assert expl["summary"] == "参观 75 分钟：每满 30 分钟 0.5 学分 → 1.00 × 市级 1.0 = 1.00 学分"
    assert_json_exact(expl)


def test_base_max_is_applied_before_the_multiplier():
    expl = credit("visit", 300, level="national").explanation
    assert expl["amount"] == "3.00"
    assert expl["factors"][0]["value"] == "2.00"
    assert "封顶 2.0" in expl["summary"]


@pytest.mark.parametrize("bad", [
    {"activity_kind": "picnic"}, {"venue_kind": "park"},
    {"venue_level": "school"}, {"venue_level": "galactic"},
])
def test_unknown_stay_values(bad):
    fields = {"activity_kind": "visit", "venue_kind": "museum", "venue_level": "city", "minutes": 60, **bad}
    with pytest.raises(ValueError):
        evaluate_stay(RULES, Stay(**fields), StayHistory())


@pytest.mark.parametrize(("stay", "history", "error"), [
    (Stay("visit", "museum", "city", -1), StayHistory(), ValueError),
    (Stay("visit", "museum", "city", 30, min_minutes=-5), StayHistory(), ValueError),
    (Stay("visit", "museum", "city", 30), StayHistory(venue_stays_this_term=-1), ValueError),
    (Stay("visit", "museum", "city", 30.0), StayHistory(), TypeError),  # type: ignore[arg-type]
    (Stay("visit", "museum", "city", 30), StayHistory(day_activity_total=1.5), TypeError),  # type: ignore
])
def test_bad_stay_inputs(stay, history, error):
    with pytest.raises(error):
        evaluate_stay(RULES, stay, history)


def test_negative_totals_count_as_zero_toward_the_caps():
    assert str(credit("visit", 120, level="national", day="-3.00").amount) == "3.00"
    history = CompetitionHistory(year_competition_total=D("-5"))
    assert str(evaluate_competition(RULES, "national", "first", history).amount) == "8.00"
    history = CompetitionHistory(year_competition_total=D("-5"), same_work_best=D("-1"))
    with pytest.raises(ValueError):
        evaluate_competition(RULES, "national", "first", history)


def test_history_defaults_to_nothing_earned():
    assert evaluate_stay(RULES, Stay("lecture", "museum", "city", 45)).amount == D("1.00")


# --------------------------------------------------------------------------------------------------
# Half-up rounding to 0.01 (custom multipliers)


@pytest.mark.parametrize(("multiplier", "kind", "minutes", "expected"), [
    ("1.25", "visit", 30, "0.63"),      # 0.625 → 0.63 (banker's rounding would give 0.62)
    ("1.25", "lecture", 45, "1.25"),
    ("1.25", "workshop", 60, "1.88"),   # 1.875
    ("1.01", "visit", 30, "0.51"),      # 0.505 → 0.51 (banker's: 0.50)
    ("1.005", "visit", 30, "0.50"),     # 0.5025
    ("0.333", "visit", 30, "0.17"),     # 0.1665
    ("0.333", "lecture", 45, "0.33"),   # 0.333
    ("0.333", "workshop", 60, "0.50"),  # 0.4995
    ("0.333", "research", 180, "0.67"),  # 0.666
    ("0.333", "volunteer", 120, "0.33"),  # 0.333
    ("0.1", "visit", 30, "0.05"),
    ("0", "lecture", 45, "0.00"),
])
def test_half_up_rounding(multiplier, kind, minutes, expected):
    rules = parse_rule_set(with_changes(activity__level_multipliers__city=multiplier))
    result = credit(kind, minutes, rules=rules)
    assert str(result.amount) == expected
    names = [f["name"] for f in result.explanation["factors"]]
    raw = (D(result.explanation["factors"][0]["value"]) * D(multiplier))
    assert ("rounding" in names) == (raw != raw.quantize(D("0.01")))
    assert_json_exact(result.explanation)


def test_custom_campus_multiplier_and_more_precise_factor_values():
    rules = parse_rule_set(with_changes(activity__venue_kind_multipliers={"campus": "0.333", "museum": "2"}))
    assert str(credit("research", 180, venue="campus", rules=rules).amount) == "0.67"
    campus = credit("lecture", 45, venue="campus", rules=rules).explanation
    assert campus["factors"][1]["value"] == "0.333"
    assert str(credit("lecture", 45, venue="museum", level="district", rules=rules).amount) == "2.00"


def test_per_minutes_base_without_max():
    rules = parse_rule_set(with_changes(activity__kinds__visit__base={"per_minutes": 30, "amount": "0.5"}))
    assert str(credit("visit", 600, rules=rules).amount) == "4.00"  # 20 blocks = 10.0, then the daily cap


# --------------------------------------------------------------------------------------------------
# Caps: the venue cap, then the daily cap


@pytest.mark.parametrize(("stays", "expected"), [
    (0, "1.50"), (1, "1.50"), (2, "1.50"), (3, "0.00"), (4, "0.00"),
])
def test_venue_cap_fourth_stay_earns_nothing(stays, expected):
    result = credit("workshop", 60, stays=stays)
    assert str(result.amount) == expected
    if stays >= 3:
        assert result.explanation["caps"] == [{
            "cap": "stays_per_venue_per_term", "limit": "3", "capped": "1.50",
            "note": result.explanation["caps"][0]["note"],
        }]
        assert result.explanation["reason"] == "venue_cap"
        assert "同一场馆" in result.explanation["summary"]
    else:
        assert result.explanation["caps"] == []


@pytest.mark.parametrize(("day", "kind", "minutes", "level", "expected", "capped"), [
    ("0.00", "workshop", 60, "city", "1.50", None),
    ("2.50", "workshop", 60, "city", "1.50", None),       # exactly reaches 4.00
    ("3.00", "workshop", 60, "city", "1.00", "0.50"),     # partly capped
    ("3.99", "visit", 120, "national", "0.01", "2.99"),
    ("1.00", "visit", 120, "national", "3.00", None),
    ("1.50", "visit", 120, "national", "2.50", "0.50"),
    ("4.00", "lecture", 45, "city", "0.00", "1.00"),      # fully capped
    ("5.00", "lecture", 45, "city", "0.00", "1.00"),      # over the cap already (floored at 0)
    ("3.50", "lecture", 45, "campus", "0.50", None),
])
def test_daily_cap(day, kind, minutes, level, expected, capped):
    venue = "campus" if level == "campus" else "science_base"
    result = credit(kind, minutes, level="city" if level == "campus" else level, venue=venue, day=day)
    assert str(result.amount) == expected
    caps = result.explanation["caps"]
    if capped is None:
        assert caps == []
    else:
        assert [(c["cap"], c["limit"], c["capped"]) for c in caps] == [("activity_per_day", "4.00", capped)]
        assert D(result.explanation["subtotal"]) - D(capped) == result.amount
        assert "每日上限 4.00" in result.explanation["summary"]
    assert result.explanation["reason"] == ("daily_cap" if expected == "0.00" else None)


def test_venue_cap_comes_before_the_daily_cap():
    result = credit("workshop", 60, stays=3, day="4.00")
    assert [c["cap"] for c in result.explanation["caps"]] == ["stays_per_venue_per_term"]
    assert result.amount == D("0.00")


def test_below_minimum_records_no_cap():
    result = credit("workshop", 30, stays=3, day="4.00")
    assert result.explanation["caps"] == []
    assert result.explanation["reason"] == "below_min_minutes"


# --------------------------------------------------------------------------------------------------
# Competition credit: the whole table, same work once, the yearly cap

COMPETITION_TABLE = {
    "national": ("8", "7", "6", "0.5"),
    "provincial": ("5", "4", "3", "0.5"),
    "city": ("3", "2", "1.5", "0.5"),
    "district": ("1.5", "1", "0.5", "0.5"),
    "school": ("0.5", "0.5", "0.5", "0.5"),
}


@pytest.mark.parametrize(("level", "award", "expected"), [
    (level, award, row[i]) for level, row in COMPETITION_TABLE.items() for i, award in enumerate(AWARDS)
])
def test_competition_table(level, award, expected):
    result = evaluate_competition(RULES, level, award, CompetitionHistory())
    assert result.amount == D(expected)
    assert result.amount.as_tuple().exponent == -2
    assert result.replaces_previous is False
    assert result.explanation["amount"] == str(money(expected))
    assert result.explanation["caps"] == []
    assert_json_exact(result.explanation)


def test_competition_table_is_complete():
    assert len(COMPETITION_TABLE) * len(AWARDS) == 20
    assert set(COMPETITION_TABLE) == set(COMPETITION_LEVELS)


@pytest.mark.parametrize(("level", "award"), [("galactic", "first"), ("city", "gold"), ("city", None)])
def test_competition_unknown_level_or_award(level, award):
    with pytest.raises(ValueError):
        evaluate_competition(RULES, level, award, CompetitionHistory())


@pytest.mark.parametrize(("year", "level", "award", "expected", "capped"), [
    ("0", "national", "first", "8.00", None),
    ("8.00", "national", "first", "8.00", None),      # exactly 16.00
    ("10.00", "national", "first", "6.00", "2.00"),
    ("15.50", "school", "first", "0.50", None),
    ("15.75", "school", "first", "0.25", "0.25"),
    ("16.00", "city", "third", "0.00", "1.50"),
    ("20.00", "district", "second", "0.00", "1.00"),
])
def test_competition_yearly_cap(year, level, award, expected, capped):
    result = evaluate_competition(RULES, level, award, CompetitionHistory(year_competition_total=D(year)))
    assert str(result.amount) == expected
    caps = result.explanation["caps"]
    if capped is None:
        assert caps == []
    else:
        assert [(c["cap"], c["limit"], c["capped"]) for c in caps] == [
            ("competition_per_school_year", "16.00", capped)]
    assert result.explanation["reason"] == ("competition_cap" if expected == "0.00" else None)


@pytest.mark.parametrize(("year", "best", "level", "award", "expected", "replaces", "capped"), [
    # a later, lower or equal award for the same work earns nothing
    ("3.00", "3.00", "city", "second", "0.00", False, None),
    ("3.00", "3.00", "city", "first", "0.00", False, None),
    ("8.00", "8.00", "school", "participation", "0.00", False, None),
    ("16.00", "5.00", "provincial", "second", "0.00", False, None),
    # a higher award replaces the earlier one, the yearly cap reckoned without the old entry
    ("3.00", "3.00", "provincial", "first", "5.00", True, None),
    ("0.50", "0.50", "national", "first", "8.00", True, None),
    ("14.00", "3.00", "provincial", "first", "5.00", True, None),     # 11 + 5 = 16
    ("15.00", "3.00", "national", "first", "4.00", True, "4.00"),    # 12 + 4 = 16
    ("16.00", "3.00", "national", "first", "3.00", True, "5.00"),    # 13 + 3 = 16: higher award, same credit
    # a year already over the cap: never replace with less than what is credited
    ("18.00", "3.00", "national", "first", "0.00", False, "7.00"),
])
def test_same_work_counts_once(year, best, level, award, expected, replaces, capped):
    history = CompetitionHistory(year_competition_total=D(year), same_work_best=D(best))
    result = evaluate_competition(RULES, level, award, history)
    assert str(result.amount) == expected
    assert result.replaces_previous is replaces
    expl = result.explanation
    assert expl["replaces_previous"] is replaces
    assert expl["previous_amount"] == best
    net_change = money(D(expected) - D(best)) if replaces else D("0.00")
    assert expl["net_change"] == str(net_change)
    caps = expl["caps"]
    assert [c["capped"] for c in caps] == ([] if capped is None else [capped])
    assert any(f["name"] == "same_work" for f in expl["factors"])
    if expected == "0.00" and capped is None:
        assert expl["reason"] == "same_work_not_higher"
        assert "同一作品" in expl["summary"]
    assert_json_exact(expl)


def test_competition_history_rejects_float():
    with pytest.raises(TypeError):
        evaluate_competition(RULES, "city", "first", CompetitionHistory(same_work_best=1.5))  # type: ignore


def test_competition_summary():
    history = CompetitionHistory(year_competition_total=D("10"))
    result = evaluate_competition(RULES, "national", "first", history)
    assert result.explanation["summary"] == (
        "国家级一等奖：8.00 学分；本学年竞赛学分已计 10.00，上限 16.00，扣减 2.00 → 6.00 学分")


# --------------------------------------------------------------------------------------------------
# Yearly requirement and progress


@pytest.mark.parametrize(("grade", "credits", "min_kinds", "one_of"), [
    (1, "4.00", 1, ()), (2, "4.00", 1, ()),
    (3, "6.00", 2, ()), (4, "6.00", 2, ()),
    (5, "8.00", 2, ()), (6, "8.00", 2, ()),
    (7, "10.00", 3, ("workshop", "research", "competition")),
    (8, "10.00", 3, ("workshop", "research", "competition")),
    (9, "10.00", 3, ("workshop", "research", "competition")),
])
def test_requirement_for_grade(grade, credits, min_kinds, one_of):
    req = requirement_for_grade(RULES, grade)
    assert req == Requirement(credits=D(credits), min_kinds=min_kinds, one_of=one_of)
    assert str(req.credits) == credits


@pytest.mark.parametrize("grade", [0, 10, -1, True, "3", 3.0, None])
def test_requirement_grade_out_of_range(grade):
    with pytest.raises(ValueError):
        requirement_for_grade(RULES, grade)
    with pytest.raises(ValueError):
        progress(RULES, grade, {})


WORKSHOP_RESEARCH_COMPETITION = ("workshop", "research", "competition")

PROGRESS_TABLE = [
    # grade, credits by kind, met, kinds, missing credits, missing kinds, missing one_of, hint
    (1, {}, False, (), "4.00", 1, (), "还差 4.00 学分、1 类活动"),
    (1, {"visit": "4.00"}, True, ("visit",), "0.00", 0, (), "已达到年度要求：4.00 / 4.00 学分，1 类活动"),
    (2, {"visit": "3.99"}, False, ("visit",), "0.01", 0, (), "还差 0.01 学分"),
    (2, {"competition": "5"}, True, ("competition",), "0.00", 0, (), None),
    (3, {"visit": "6.00"}, False, ("visit",), "0.00", 1, (), "还差 1 类活动"),
    (4, {"visit": "5.00", "lecture": "1.00"}, True, ("visit", "lecture"), "0.00", 0, (), None),
    (4, {"visit": "5.00", "lecture": "0.50"}, False, ("visit", "lecture"), "0.50", 0, (), "还差 0.50 学分"),
    (5, {"visit": "7.00", "competition": "1.00"}, True, ("visit", "competition"), "0.00", 0, (), None),
    (6, {"visit": "8.00", "lecture": "0.00"}, False, ("visit",), "0.00", 1, (), "还差 1 类活动"),
    (6, {"visit": "9.00", "lecture": "-1.00"}, False, ("visit",), "0.00", 1, (), "还差 1 类活动"),
    (7, {"visit": "4", "lecture": "4", "volunteer": "4"}, False, ("visit", "lecture", "volunteer"),
     "0.00", 0, WORKSHOP_RESEARCH_COMPETITION, "还差 1 项实验/工作坊、研学或竞赛类活动"),
    (7, {"visit": "5.00", "lecture": "2.50"}, False, ("visit", "lecture"), "2.50", 1,
     WORKSHOP_RESEARCH_COMPETITION, "还差 2.50 学分、1 类活动（需含实验/工作坊、研学或竞赛）"),
    (8, {"visit": "4", "lecture": "4", "workshop": "2"}, True, ("visit", "lecture", "workshop"),
     "0.00", 0, (), None),
    (8, {"visit": "4", "lecture": "4", "research": "2"}, True, ("visit", "lecture", "research"),
     "0.00", 0, (), None),
    (9, {"visit": "5", "lecture": "5", "competition": "0.5"}, True, ("visit", "lecture", "competition"),
     "0.00", 0, (), None),
    (9, {"workshop": "4", "research": "4", "competition": "1"}, False, WORKSHOP_RESEARCH_COMPETITION,
     "1.00", 0, (), "还差 1.00 学分"),
    (9, {"visit": "7.50"}, False, ("visit",), "2.50", 2, WORKSHOP_RESEARCH_COMPETITION,
     "还差 2.50 学分、2 类活动（需含实验/工作坊、研学或竞赛）"),
    (9, {"workshop": "10.00"}, False, ("workshop",), "0.00", 2, (), "还差 2 类活动"),
]


@pytest.mark.parametrize(
    ("grade", "by_kind", "met", "kinds", "missing", "missing_kinds", "missing_one_of", "hint"),
    PROGRESS_TABLE,
)
def test_progress(grade, by_kind, met, kinds, missing, missing_kinds, missing_one_of, hint):
    result = progress(RULES, grade, {k: D(v) for k, v in by_kind.items()})
    assert isinstance(result, Progress)
    assert result.met is met
    assert result.kinds == kinds
    assert str(result.missing_credits) == missing
    assert result.missing_kinds == missing_kinds
    assert result.missing_one_of == missing_one_of
    assert result.total == money(sum((D(v) for v in by_kind.values()), D(0)))
    assert result.required == requirement_for_grade(RULES, grade).credits
    if hint is not None:
        assert result.hint == hint
    assert result.hint.startswith("已达到" if met else "还差")


def test_progress_unknown_kind():
    with pytest.raises(ValueError):
        progress(RULES, 5, {"picnic": D("1")})


# --------------------------------------------------------------------------------------------------
# School calendar (Asia/Shanghai)


@pytest.mark.parametrize(("day", "school_year", "term"), [
    (date(2025, 8, 31), "2024-2025", 2),
    (date(2025, 9, 1), "2025-2026", 1),
    (date(2025, 12, 31), "2025-2026", 1),
    (date(2026, 1, 1), "2025-2026", 1),
    (date(2026, 1, 31), "2025-2026", 1),
    (date(2026, 2, 1), "2025-2026", 2),
    (date(2026, 8, 31), "2025-2026", 2),
    (date(2026, 9, 1), "2026-2027", 1),
    (date(2028, 2, 29), "2027-2028", 2),
])
def test_school_year_and_term(day, school_year, term):
    assert school_year_of(day) == school_year
    assert term_of(day) == term
    first, last = school_year_bounds(school_year)
    assert first <= day <= last
    term_first, term_last = term_bounds(school_year, term)
    assert term_first <= day <= term_last


@pytest.mark.parametrize(("moment", "local", "school_year", "term"), [
    (datetime(2026, 1, 31, 15, 59, 59, tzinfo=UTC), date(2026, 1, 31), "2025-2026", 1),
    (datetime(2026, 1, 31, 16, 0, 0, tzinfo=UTC), date(2026, 2, 1), "2025-2026", 2),   # midnight in Shanghai
    (datetime(2025, 8, 31, 15, 59, 59, tzinfo=UTC), date(2025, 8, 31), "2024-2025", 2),
    (datetime(2025, 8, 31, 16, 0, 0, tzinfo=UTC), date(2025, 9, 1), "2025-2026", 1),
    (datetime(2025, 9, 1, 0, 0, tzinfo=SHANGHAI), date(2025, 9, 1), "2025-2026", 1),
    (datetime(2025, 9, 1, 0, 30, tzinfo=timezone(timedelta(hours=9))), date(2025, 8, 31), "2024-2025", 2),
    (datetime(2026, 1, 31, 23, 59, tzinfo=timezone(timedelta(hours=-5))), date(2026, 2, 1), "2025-2026", 2),
])
def test_calendar_from_an_aware_time(moment, local, school_year, term):
    assert local_date(moment) == local
    assert school_year_of(moment) == school_year
    assert term_of(moment) == term


def test_naive_datetime_is_refused():
    with pytest.raises(ValueError):
        local_date(datetime(2025, 9, 1, 12, 0))
    with pytest.raises(TypeError):
        local_date("2025-09-01")  # type: ignore[arg-type]


@pytest.mark.parametrize("school_year", [
    "2025-2027", "2025-2025", "2025/2026", "25-26", "", " 2025-2026", "2025-2026 ", "２０２５-２０２６",
    "abcd-efgh", None, 2025,
])
def test_school_year_bounds_refuses(school_year):
    with pytest.raises(ValueError):
        school_year_bounds(school_year)


def test_school_year_and_term_bounds():
    assert school_year_bounds("2025-2026") == (date(2025, 9, 1), date(2026, 8, 31))
    assert term_bounds("2025-2026", 1) == (date(2025, 9, 1), date(2026, 1, 31))
    assert term_bounds("2025-2026", 2) == (date(2026, 2, 1), date(2026, 8, 31))
    with pytest.raises(ValueError):
        term_bounds("2025-2026", 3)


def test_local_day_bounds():
    start, end = local_day_bounds(datetime(2026, 1, 31, 16, 30, tzinfo=UTC))
    assert start == datetime(2026, 2, 1, tzinfo=SHANGHAI)
    assert end - start == timedelta(days=1)
    assert start.astimezone(UTC) == datetime(2026, 1, 31, 16, 0, tzinfo=UTC)


def test_stay_minutes():
    entered = datetime(2026, 5, 1, 9, 0, 0, tzinfo=SHANGHAI)
    assert stay_minutes(entered, entered + timedelta(minutes=74, seconds=59)) == 74
    assert stay_minutes(entered, entered + timedelta(minutes=75)) == 75
    assert stay_minutes(entered, datetime(2026, 5, 1, 1, 30, tzinfo=UTC)) == 30
    with pytest.raises(ValueError):
        stay_minutes(entered, entered - timedelta(seconds=1))
    with pytest.raises(ValueError):
        stay_minutes(datetime(2026, 5, 1, 9, 0), entered)


# --------------------------------------------------------------------------------------------------
# money


@pytest.mark.parametrize(("value", "expected"), [
    (D("0.005"), "0.01"), (D("0.004"), "0.00"), (D("1.235"), "1.24"), (D("1.245"), "1.25"),
    (D("2"), "2.00"), (3, "3.00"), ("0.125", "0.13"), (D("-0.005"), "-0.01"),
])
def test_money(value, expected):
    assert str(money(value)) == expected


@pytest.mark.parametrize(("value", "error"), [(0.5, TypeError), (True, TypeError), ("abc", ValueError),
                                              (D("NaN"), ValueError), ("Infinity", ValueError)])
def test_money_refuses(value, error):
    with pytest.raises(error):
        money(value)


# --------------------------------------------------------------------------------------------------
# parse_rule_set: every error at once, each at its precise path


def test_several_errors_at_once():
    doc = with_changes(
        activity__kinds__visit__min_minutes=-5,
        activity__level_multipliers__city=1.0,
        competition__credits__national__first="abc",
        caps__stays_per_venue_per_term="3",
        requirements__3__one_of=["workshop", "picnic"],
        integrity__shared_device__students=1,
        effective_from="2025-02-30",
    )
    with pytest.raises(RuleSetError) as info:
        parse_rule_set(doc)
    errors = info.value.errors
    assert set(errors) == {
        "activity.kinds.visit.min_minutes",
        "activity.level_multipliers.city",
        "competition.credits.national.first",
        "caps.stays_per_venue_per_term",
        "requirements.3.one_of.1",
        "integrity.shared_device.students",
        "effective_from",
    }
    assert "字符串" in errors["activity.level_multipliers.city"]  # write "1.0", not the float 1.0
    assert "-5" in errors["activity.kinds.visit.min_minutes"]
    assert isinstance(info.value, ValueError)
    assert "activity.kinds.visit.min_minutes" in str(info.value)


@pytest.mark.parametrize(("changes", "paths"), [
    ({"caps": DELETE}, {"caps"}),
    ({"version": ""}, {"version"}),
    ({"version": "sz 2025"}, {"version"}),
    ({"effective_from": "2025/09/01"}, {"effective_from"}),
    ({"effective_from": 20250901}, {"effective_from"}),
    ({"title": 5}, {"title"}),
    ({"surprise": 1}, {"surprise"}),
    ({"activity": None}, {"activity"}),
    ({"activity__kinds__research": DELETE}, {"activity.kinds.research"}),
    ({"activity__kinds__picnic": {"min_minutes": 10, "base": {"fixed": "1"}}}, {"activity.kinds.picnic"}),
    ({"activity__kinds__lecture__base": {"fixed": "1.0", "max": "2.0"}}, {"activity.kinds.lecture.base.max"}),
    ({"activity__kinds__lecture__base": {"fixed": "1.0", "per_minutes": 30}},
     {"activity.kinds.lecture.base"}),
    ({"activity__kinds__lecture__base": "1.0"}, {"activity.kinds.lecture.base"}),
    ({"activity__kinds__visit__base__per_minutes": 0}, {"activity.kinds.visit.base.per_minutes"}),
    ({"activity__kinds__visit__base__amount": DELETE}, {"activity.kinds.visit.base.amount"}),
    ({"activity__kinds__visit__base__max": "-2.0"}, {"activity.kinds.visit.base.max"}),
    ({"activity__kinds__visit__base__max": "2.0.0"}, {"activity.kinds.visit.base.max"}),
    ({"activity__kinds__visit__base__max": "1e3"}, {"activity.kinds.visit.base.max"}),
    ({"activity__kinds__visit__base__max": "1234567"}, {"activity.kinds.visit.base.max"}),
    ({"activity__kinds__visit__min_minutes": "30"}, {"activity.kinds.visit.min_minutes"}),
    ({"activity__kinds__visit__min_minutes": True}, {"activity.kinds.visit.min_minutes"}),
    ({"activity__level_multipliers__district": DELETE}, {"activity.level_multipliers.district"}),
    ({"activity__level_multipliers__school": "0.5"}, {"activity.level_multipliers.school"}),
    ({"activity__venue_kind_multipliers__park": "0.5"}, {"activity.venue_kind_multipliers.park"}),
    ({"activity__venue_kind_multipliers__campus": None}, {"activity.venue_kind_multipliers.campus"}),
    ({"competition__credits__school": DELETE}, {"competition.credits.school"}),
    ({"competition__credits__city__gold": "9"}, {"competition.credits.city.gold"}),
    ({"competition__credits__city__third": "1.555"}, {"competition.credits.city.third"}),
    ({"caps__activity_per_day": "4.001"}, {"caps.activity_per_day"}),
    ({"caps__competition_per_school_year": 16.0}, {"caps.competition_per_school_year"}),
    ({"caps__stays_per_venue_per_term": 0}, {"caps.stays_per_venue_per_term"}),
    ({"requirements": []}, {"requirements"}),
    ({"requirements": {"grades": [1]}}, {"requirements"}),
    ({"requirements__3": DELETE}, {"requirements"}),
    ({"requirements__1__grades": [2, 3, 4]}, {"requirements.1.grades"}),
    ({"requirements__1__grades": [3, 3, 4]}, {"requirements.1.grades"}),
    ({"requirements__1__grades": [3, 4, 10]}, {"requirements.1.grades.2"}),
    ({"requirements__1__grades": []}, {"requirements.1.grades"}),
    ({"requirements__2__min_kinds": 7}, {"requirements.2.min_kinds"}),
    ({"requirements__2__credits": "8.005"}, {"requirements.2.credits"}),
    ({"requirements__3__one_of": "workshop"}, {"requirements.3.one_of"}),
    ({"requirements__3__one_of": ["workshop", "workshop"]}, {"requirements.3.one_of.1"}),
    ({"requirements__0__extra": 1}, {"requirements.0.extra"}),
    ({"integrity__impossible_travel__max_kmh": "0"}, {"integrity.impossible_travel.max_kmh"}),
    ({"integrity__shared_device": DELETE}, {"integrity.shared_device"}),
])
def test_parse_error_paths(changes, paths):
    with pytest.raises(RuleSetError) as info:
        parse_rule_set(with_changes(**changes))
    assert set(info.value.errors) == paths
    assert all(isinstance(m, str) and m for m in info.value.errors.values())


@pytest.mark.parametrize("document", [[], "sz-2025", None])
def test_document_must_be_a_mapping(document):
    with pytest.raises(RuleSetError) as info:
        parse_rule_set(document)
    assert set(info.value.errors) == {"document"}


def test_accepted_variations():
    doc = with_changes(competition__credits__national__first=8, integrity__impossible_travel__max_kmh=60,
                       activity__venue_kind_multipliers=DELETE, description="测试")
    rules = parse_rule_set(doc)
    assert rules.competition_credits["national"]["first"] == D("8.00")
    assert str(credit("lecture", 45, venue="campus", level="national", rules=rules).amount) == "1.50"
    assert parse_rule_set(with_changes(requirements__3__one_of=[])).requirements[7].one_of == ()


def test_yaml_date_and_json_document(tmp_path):
    text = default_rule_path().read_text(encoding="utf-8").replace('"2025-09-01"', "2025-09-01")
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    rules = load_rule_file(path)
    assert rules.effective_from == date(2025, 9, 1)
    assert rules.document["effective_from"] == "2025-09-01"  # normalised: the document stays JSON
    assert rules == RULES


@pytest.mark.parametrize(("text", "path"), [
    ("version: a\nversion: b\n", "document"),             # duplicate key
    ("version: [unclosed\n", "document"),
    ('{"version": ', "document"),
    ("- 1\n- 2\n", "document"),
])
def test_load_rule_file_errors(tmp_path, text, path):
    file = tmp_path / "bad.yaml"
    file.write_text(text, encoding="utf-8")
    with pytest.raises(RuleSetError) as info:
        load_rule_file(file)
    assert set(info.value.errors) == {path}


def test_yaml_bare_float_is_reported_at_its_path(tmp_path):
    text = default_rule_path().read_text(encoding="utf-8").replace('city: "1.0"', "city: 1.0")
    file = tmp_path / "float.yaml"
    file.write_text(text, encoding="utf-8")
    with pytest.raises(RuleSetError) as info:
        load_rule_file(file)
    assert set(info.value.errors) == {"activity.level_multipliers.city"}


# --------------------------------------------------------------------------------------------------
# Properties

ROUND_TRIPPED = parse_rule_set(json.loads(json.dumps(RULES.document)))

stays = st.builds(
    Stay,
    activity_kind=st.sampled_from(ACTIVITY_KINDS),
    venue_kind=st.sampled_from(VENUE_KINDS),
    venue_level=st.sampled_from(VENUE_LEVELS),
    minutes=st.integers(min_value=0, max_value=1000),
    min_minutes=st.none() | st.integers(min_value=0, max_value=300),
)
histories = st.builds(
    StayHistory,
    day_activity_total=st.decimals(min_value=0, max_value=6, places=2),
    venue_stays_this_term=st.integers(min_value=0, max_value=5),
)
competition_histories = st.builds(
    CompetitionHistory,
    year_competition_total=st.decimals(min_value=0, max_value=20, places=2),
    same_work_best=st.none()
    | st.sampled_from(sorted({D(v) for row in COMPETITION_TABLE.values() for v in row}))
    | st.decimals(min_value=0, max_value=10, places=2),
)


@FAST
@given(stays, histories)
def test_stay_properties(stay, history):
    result = evaluate_stay(RULES, stay, history)
    amount = result.amount
    assert amount >= 0
    assert amount <= max(D("4.00") - history.day_activity_total, D(0))
    assert amount.as_tuple().exponent == -2
    if history.venue_stays_this_term >= 3:
        assert amount == 0
    uncapped = evaluate_stay(RULES, stay, StayHistory())
    assert amount <= uncapped.amount
    assert D(result.explanation["subtotal"]) == uncapped.amount
    removed = sum((D(c["capped"]) for c in result.explanation["caps"]), D(0))
    assert uncapped.amount - removed == amount
    assert result.explanation["amount"] == str(amount)
    assert_json_exact(result.explanation)
    assert evaluate_stay(RULES, stay, history) == result
    assert evaluate_stay(ROUND_TRIPPED, stay, history) == result


@FAST
@given(stays)
def test_uncapped_amount_is_base_times_multiplier(stay):
    result = evaluate_stay(RULES, stay, StayHistory())
    minimum = stay.min_minutes
    if minimum is None:
        minimum = activity_min_minutes(RULES, stay.activity_kind)
    if stay.minutes < minimum:
        assert result.amount == 0
        return
    rule = RULES.kinds[stay.activity_kind]
    blocks = 0 if rule.per_minutes is None else stay.minutes // rule.per_minutes
    base = rule.fixed if rule.fixed is not None else min(rule.amount * blocks, rule.max)
    multiplier = RULES.venue_kind_multipliers.get(stay.venue_kind, RULES.level_multipliers[stay.venue_level])
    expected = (base * multiplier).quantize(D("0.01"), rounding=ROUND_HALF_UP)
    assert result.amount == min(expected, D("4.00"))


@settings(max_examples=40, deadline=None, database=None)
@given(st.decimals(min_value=0, max_value=3, places=3), stays)
def test_custom_multiplier_rounds_half_up(multiplier, stay):
    multipliers = {level: str(multiplier) for level in VENUE_LEVELS}
    rules = parse_rule_set(
        with_changes(activity__level_multipliers=multipliers, activity__venue_kind_multipliers={}))
    result = evaluate_stay(rules, stay, StayHistory())
    assert result.amount >= 0
    assert result.amount.as_tuple().exponent == -2
    assert result.amount <= D("4.00")
    assert_json_exact(result.explanation)


@FAST
@given(st.sampled_from(COMPETITION_LEVELS), st.sampled_from(AWARDS), competition_histories)
def test_competition_properties(level, award, history):
    result = evaluate_competition(RULES, level, award, history)
    table = RULES.competition_credits[level][award]
    assert D(0) <= result.amount <= table
    assert result.amount.as_tuple().exponent == -2
    best = history.same_work_best
    counted = history.year_competition_total - (best if result.replaces_previous else 0)
    assert result.amount == 0 or counted + result.amount <= D("16.00")
    if best is not None and table <= best:
        assert result.amount == 0 and not result.replaces_previous
    if result.replaces_previous:
        assert best is not None and result.amount >= best
    if best is None:
        assert not result.replaces_previous
    assert_json_exact(result.explanation)
    assert evaluate_competition(RULES, level, award, history) == result
    assert evaluate_competition(ROUND_TRIPPED, level, award, history) == result


@FAST
@given(st.integers(min_value=1, max_value=9),
       st.dictionaries(st.sampled_from(CREDIT_KINDS), st.decimals(min_value=-2, max_value=12, places=2)))
def test_progress_properties(grade, by_kind):
    result = progress(RULES, grade, by_kind)
    req = requirement_for_grade(RULES, grade)
    assert result.total == money(sum(by_kind.values(), D(0)))
    nothing_missing = result.missing_credits == 0 and result.missing_kinds == 0 and not result.missing_one_of
    assert result.met == nothing_missing
    assert result.missing_credits == max(req.credits - result.total, D(0))
    assert set(result.kinds) == {k for k, v in by_kind.items() if v > 0}
    assert result.hint
    assert progress(ROUND_TRIPPED, grade, by_kind) == result


@FAST
@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)))
def test_calendar_properties(moment):
    day = local_date(moment)
    assert day == moment.astimezone(SHANGHAI).date()
    first, last = school_year_bounds(school_year_of(moment))
    assert first <= day <= last
    term_first, term_last = term_bounds(school_year_of(moment), term_of(moment))
    assert term_first <= day <= term_last
    start, end = local_day_bounds(moment)
    assert start <= moment < end
