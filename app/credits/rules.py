"""The credit rule engine (SPEC §3, §5, §6): pure functions over plain values.

Knows nothing of Flask or SQLAlchemy and imports nothing else from the app: it takes a parsed rule set
(``config/rules/*.yaml`` — every number of the rules is data there, none is written here), the stay or
the competition award, and what the student already earned that day / term / school year, and returns
an exact ``Decimal`` amount with a JSON-serialisable explanation for the ledger entry.

Decisions where the spec is silent (written down here, as SPEC asks):

* Amounts are ``Decimal`` quantised to 0.01 with ROUND_HALF_UP (:func:`money`); floats are refused
  everywhere (``TypeError``), because a float has already lost the exact value.
* A per-minutes base counts only full blocks and is capped at its ``max`` *before* the multiplier.
* A venue kind listed in ``venue_kind_multipliers`` (``campus``) *replaces* the level multiplier.
* Caps are applied only to a positive amount, in this order: the per-venue-per-term cap (the stay
  earns 0.00), then the daily cap (the amount is cut to what is left of the day's 4.00). Each cap
  applied is listed in ``explanation["caps"]`` with the part it removed.
* The remaining room under a cap is rounded *down* to 0.01, so a cap is never exceeded.
* Competition, same work: a later award that is not higher than the credited one earns 0.00; a
  higher one replaces it (the caller writes a reversal of the old entry and a credit of the new
  amount), the yearly cap being reckoned without the old entry. In the anomalous case where the cap
  would leave the replacement *below* the amount already credited (only possible when the year is
  already over the cap, e.g. after a rule change), the old entry is kept: 0.00, no replacement.
* A negative day or year total (a data error, or adjustments) counts as 0 toward a cap, so the room
  under a cap is never more than the cap; a negative ``same_work_best``, count or minutes is a
  ``ValueError``.
* A naive datetime is refused by the calendar helpers (the caller says which zone it means; the wire
  rule "no offset means Asia/Shanghai" belongs to the API layer).
* A stay's ``min_minutes`` is the activity's own value when it has one, else the kind's
  default from the rule set.
"""

from __future__ import annotations

import json
import pathlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

import yaml

__all__ = [
    "ACTIVITY_KINDS",
    "ACTIVITY_KIND_LABELS",
    "AWARDS",
    "AWARD_LABELS",
    "COMPETITION",
    "COMPETITION_LEVELS",
    "CREDIT_KINDS",
    "LEVEL_LABELS",
    "SHANGHAI",
    "VENUE_KINDS",
    "VENUE_KIND_LABELS",
    "VENUE_LEVELS",
    "CompetitionCredit",
    "CompetitionHistory",
    "Credit",
    "KindRule",
    "Progress",
    "Requirement",
    "RuleSet",
    "RuleSetError",
    "Stay",
    "StayHistory",
    "activity_min_minutes",
    "default_rule_path",
    "evaluate_competition",
    "evaluate_stay",
    "load_default_rules",
    "load_rule_file",
    "local_date",
    "local_day_bounds",
    "money",
    "parse_rule_set",
    "progress",
    "requirement_for_grade",
    "school_year_bounds",
    "school_year_of",
    "stay_minutes",
    "term_bounds",
    "term_of",
]

# --------------------------------------------------------------------------------------------------
# Vocabulary (names and the words pupils read — SPEC §3, §11). Numbers live in the rule file.

ACTIVITY_KINDS: tuple[str, ...] = ("visit", "lecture", "workshop", "research", "volunteer")
COMPETITION = "competition"
CREDIT_KINDS: tuple[str, ...] = (*ACTIVITY_KINDS, COMPETITION)
VENUE_KINDS: tuple[str, ...] = (
    "science_base", "demo_site", "enterprise_hall", "science_museum", "museum", "campus",
)
VENUE_LEVELS: tuple[str, ...] = ("national", "provincial", "city", "district")
COMPETITION_LEVELS: tuple[str, ...] = (*VENUE_LEVELS, "school")
AWARDS: tuple[str, ...] = ("first", "second", "third", "participation")

ACTIVITY_KIND_LABELS: Mapping[str, str] = MappingProxyType({
    "visit": "参观", "lecture": "讲座", "workshop": "实验/工作坊", "research": "研学",
    "volunteer": "科普志愿服务", "competition": "竞赛",
})
VENUE_KIND_LABELS: Mapping[str, str] = MappingProxyType({
    "science_base": "科普教育基地", "demo_site": "科普示范点", "enterprise_hall": "企业科技传播馆",
    "science_museum": "科技馆", "museum": "博物馆", "campus": "校内场所",
})
LEVEL_LABELS: Mapping[str, str] = MappingProxyType({
    "national": "国家级", "provincial": "省级", "city": "市级", "district": "区级", "school": "校级",
})
AWARD_LABELS: Mapping[str, str] = MappingProxyType({
    "first": "一等奖", "second": "二等奖", "third": "三等奖", "participation": "参与奖",
})

SHANGHAI = ZoneInfo("Asia/Shanghai")

_CENT = Decimal("0.01")
_ZERO = Decimal("0.00")

# --------------------------------------------------------------------------------------------------
# Decimals


def money(x: Decimal | int | str) -> Decimal:
    """Quantise to 0.01 with ROUND_HALF_UP (``Decimal``, ``int`` or a decimal string; never a float)."""
    d = _to_decimal(x, "amount")
    try:
        return d.quantize(_CENT, rounding=ROUND_HALF_UP)
    except InvalidOperation as exc:
        raise ValueError(f"金额超出范围：{d}") from exc


def _to_decimal(x: Any, what: str) -> Decimal:
    if isinstance(x, (bool, float)):
        raise TypeError(f"{what} must be a Decimal, int or decimal string, not {type(x).__name__} {x!r}")
    if isinstance(x, Decimal):
        d = x
    elif isinstance(x, int):
        d = Decimal(x)
    elif isinstance(x, str):
        try:
            d = Decimal(x.strip())
        except InvalidOperation as exc:
            raise ValueError(f"{what}: 不是有效的十进制数 {x!r}") from exc
    else:
        raise TypeError(f"{what} must be a Decimal, int or decimal string, not {type(x).__name__}")
    if not d.is_finite():
        raise ValueError(f"{what}: 必须是有限的数 {x!r}")
    return d


def _non_negative_decimal(x: Any, what: str) -> Decimal:
    d = _to_decimal(x, what)
    if d < 0:
        raise ValueError(f"{what} 不能为负数：{d}")
    return d


def _non_negative_int(x: Any, what: str) -> int:
    if isinstance(x, bool) or not isinstance(x, int):
        raise TypeError(f"{what} must be an int, not {type(x).__name__} {x!r}")
    if x < 0:
        raise ValueError(f"{what} 不能为负数：{x}")
    return x


def _floor_cent(d: Decimal) -> Decimal:
    """Room left under a cap, rounded down so the cap is never exceeded."""
    return max(d, Decimal(0)).quantize(_CENT, rounding=ROUND_DOWN)


def _fmt(d: Decimal) -> str:
    """Two places ("1.50"); a value that needs more places (a custom multiplier "0.333") is shown exactly."""
    q = d.quantize(_CENT, rounding=ROUND_HALF_UP)
    if q == d:
        return str(q)
    return format(d.normalize(), "f")


# --------------------------------------------------------------------------------------------------
# The rule set


class RuleSetError(ValueError):
    """An invalid rule document; ``errors`` maps each bad field's dotted path to a message."""

    def __init__(self, errors: Mapping[str, str]):
        self.errors: dict[str, str] = dict(errors)
        detail = "；".join(f"{path}: {msg}" for path, msg in self.errors.items())
        super().__init__(f"规则集无效（{len(self.errors)} 处错误）：{detail}")


@dataclass(frozen=True)
class KindRule:
    """The rule for one activity kind: a fixed base, or ``amount`` per full ``per_minutes`` up to ``max``."""

    kind: str
    min_minutes: int
    fixed: Decimal | None = None
    per_minutes: int | None = None
    amount: Decimal | None = None
    max: Decimal | None = None

    def base(self, minutes: int) -> tuple[Decimal, str, str]:
        """(base credits, phrase for the summary, note for the factor) for a stay of ``minutes``."""
        if self.fixed is not None:
            phrase = f"固定 {self.fixed} 学分"
            return self.fixed, phrase, f"{ACTIVITY_KIND_LABELS[self.kind]}固定 {self.fixed} 学分"
        assert self.per_minutes is not None and self.amount is not None
        blocks = minutes // self.per_minutes
        raw = self.amount * blocks
        phrase = f"每满 {self.per_minutes} 分钟 {self.amount} 学分"
        note = (f"每满 {self.per_minutes} 分钟 {self.amount} 学分，"
                f"{minutes} 分钟满 {blocks} 个，得 {_fmt(raw)}")
        if self.max is not None and raw > self.max:
            phrase += f"（封顶 {self.max}）"
            note += f"，封顶 {self.max} 学分"
            return self.max, phrase, note
        return raw, phrase, note


@dataclass(frozen=True)
class Requirement:
    """The yearly requirement (年度要求) of a grade."""

    credits: Decimal
    min_kinds: int
    one_of: tuple[str, ...]


@dataclass(frozen=True)
class RuleSet:
    """A parsed, validated rule set. ``document`` is the rule file as JSON-ready data (dates as strings).

    Equality and hashing use ``version``, ``effective_from`` (and ``document`` for equality only);
    the parsed tables below are derived from the document.
    """

    version: str
    effective_from: date
    document: dict = field(hash=False, repr=False)
    title: str = field(kw_only=True, compare=False)
    kinds: Mapping[str, KindRule] = field(kw_only=True, compare=False, repr=False)
    level_multipliers: Mapping[str, Decimal] = field(kw_only=True, compare=False, repr=False)
    venue_kind_multipliers: Mapping[str, Decimal] = field(kw_only=True, compare=False, repr=False)
    competition_credits: Mapping[str, Mapping[str, Decimal]] = field(kw_only=True, compare=False, repr=False)
    activity_per_day: Decimal = field(kw_only=True, compare=False, repr=False)
    stays_per_venue_per_term: int = field(kw_only=True, compare=False, repr=False)
    competition_per_school_year: Decimal = field(kw_only=True, compare=False, repr=False)
    requirements: Mapping[int, Requirement] = field(kw_only=True, compare=False, repr=False)
    shared_device_students: int = field(kw_only=True, compare=False, repr=False)
    shared_device_window_minutes: int = field(kw_only=True, compare=False, repr=False)
    impossible_travel_max_kmh: Decimal = field(kw_only=True, compare=False, repr=False)


_VERSION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DECIMAL_RE = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_DECIMAL_DIGITS_RE = re.compile(r"-?[0-9]{1,6}(\.[0-9]{1,6})?")


def _describe(value: Any) -> str:
    names = {dict: "映射", list: "列表", str: "字符串", int: "整数", float: "浮点数", bool: "布尔值"}
    if value is None:
        return "空值"
    return f"{names.get(type(value), type(value).__name__)} {value!r}"


class _Checker:
    """Collects every error of a document, keyed by dotted path."""

    def __init__(self) -> None:
        self.errors: dict[str, str] = {}

    def error(self, path: str, message: str) -> None:
        self.errors.setdefault(path or "document", message)

    def mapping(self, value: Any, path: str, required: tuple[str, ...], optional: tuple[str, ...] = (),
                what: str = "字段") -> dict | None:
        if not isinstance(value, dict):
            self.error(path, f"必须是映射（键: 值），收到{_describe(value)}")
            return None
        for key in required:
            if key not in value:
                self.error(_join(path, key), f"缺少{what} {key}")
        allowed = (*required, *optional)
        for key in value:
            if key not in allowed:
                self.error(_join(path, str(key)), f"未知{what} {key!r}；可用：{', '.join(allowed)}")
        return value

    def decimal(self, value: Any, path: str, *, places: int | None = None,
                positive: bool = False) -> Decimal | None:
        if isinstance(value, float):
            self.error(path, f"小数请写成字符串，例如 \"{value}\"（不接受浮点数 {value!r}，以免精度丢失）")
            return None
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            self.error(path, f"必须是十进制数字字符串（例如 \"0.5\"），收到{_describe(value)}")
            return None
        text = str(value).strip()
        if not _DECIMAL_RE.fullmatch(text):
            self.error(path, f"不是有效的十进制数：{value!r}（例如 \"0.5\"）")
            return None
        if not _DECIMAL_DIGITS_RE.fullmatch(text):
            self.error(path, f"数字过长：{value!r}（整数部分和小数部分各最多 6 位）")
            return None
        d = Decimal(text)
        if d < 0:
            self.error(path, f"不能为负数，收到 {text}")
            return None
        if positive and d == 0:
            self.error(path, "必须大于 0")
            return None
        if places is not None and -d.as_tuple().exponent > places:
            self.error(path, f"最多 {places} 位小数，收到 {text}")
            return None
        return d

    def integer(self, value: Any, path: str, *, minimum: int, maximum: int | None = None) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(path, f"必须是整数，收到{_describe(value)}")
            return None
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"{minimum}–{maximum}" if maximum is not None else f"不小于 {minimum}"
            self.error(path, f"必须是 {bound} 的整数，收到 {value}")
            return None
        return value

    def table(self, value: Any, path: str, keys: tuple[str, ...], what: str, **decimal_opts: Any
              ) -> dict[str, Decimal] | None:
        """A mapping with exactly ``keys``, each a decimal."""
        mapping = self.mapping(value, path, keys, what=what)
        if mapping is None:
            return None
        out = {k: self.decimal(mapping[k], _join(path, k), **decimal_opts) for k in keys if k in mapping}
        if len(out) != len(keys) or any(v is None for v in out.values()):
            return None
        return out


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _json_ready(value: Any) -> Any:
    """A deep copy with YAML dates as ISO strings and tuples as lists (JSON-serialisable)."""
    if isinstance(value, Mapping):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    return value


def parse_rule_set(document: Mapping) -> RuleSet:
    """Validate a rule document (the loaded YAML/JSON), collecting every error, and parse it.

    Raises :class:`RuleSetError` whose ``errors`` maps each bad field's dotted path
    (``"activity.kinds.visit.min_minutes"``, ``"requirements.2.grades"``) to a message.
    """
    if not isinstance(document, Mapping):
        raise RuleSetError({"document": f"规则文件的顶层必须是映射（键: 值），收到{_describe(document)}"})
    doc = _json_ready(document)
    c = _Checker()
    c.mapping(doc, "", ("version", "effective_from", "activity", "competition", "caps", "requirements",
                        "integrity"), ("title", "description"))

    version = doc.get("version")
    if "version" in doc and not (isinstance(version, str) and _VERSION_RE.fullmatch(version)):
        c.error("version", f"必须是 1–64 个字母、数字、点、下划线或连字符组成的版本名（如 \"sz-2025\"），"
                           f"收到{_describe(version)}")
    effective_from = None
    raw_from = doc.get("effective_from")
    if "effective_from" in doc:
        if isinstance(raw_from, str) and _DATE_RE.fullmatch(raw_from):
            try:
                effective_from = date.fromisoformat(raw_from)
            except ValueError:
                c.error("effective_from", f"不是有效日期：{raw_from!r}")
        else:
            c.error("effective_from",
                    f"必须是日期 YYYY-MM-DD（如 \"2025-09-01\"），收到{_describe(raw_from)}")
    for key in ("title", "description"):
        if key in doc and not isinstance(doc[key], str):
            c.error(key, f"必须是字符串，收到{_describe(doc[key])}")

    # A missing section is already reported by the top-level check; each parser reports its own fields.
    kinds, level_multipliers, venue_kind_multipliers = (
        _parse_activity(c, doc["activity"]) if "activity" in doc else (None, None, None))
    competition_credits = _parse_competition(c, doc["competition"]) if "competition" in doc else None
    caps = _parse_caps(c, doc["caps"]) if "caps" in doc else None
    requirements = _parse_requirements(c, doc["requirements"]) if "requirements" in doc else None
    integrity = _parse_integrity(c, doc["integrity"]) if "integrity" in doc else None

    if c.errors:
        raise RuleSetError(c.errors)
    assert effective_from is not None and kinds is not None and level_multipliers is not None
    assert competition_credits is not None and caps is not None and requirements is not None
    assert integrity is not None and venue_kind_multipliers is not None
    return RuleSet(
        version=version,
        effective_from=effective_from,
        document=doc,
        title=doc.get("title", ""),
        kinds=MappingProxyType(kinds),
        level_multipliers=MappingProxyType(level_multipliers),
        venue_kind_multipliers=MappingProxyType(venue_kind_multipliers),
        competition_credits=MappingProxyType(
            {level: MappingProxyType({a: money(v) for a, v in row.items()})
             for level, row in competition_credits.items()}),
        activity_per_day=money(caps["activity_per_day"]),
        stays_per_venue_per_term=caps["stays_per_venue_per_term"],
        competition_per_school_year=money(caps["competition_per_school_year"]),
        requirements=MappingProxyType(requirements),
        shared_device_students=integrity["students"],
        shared_device_window_minutes=integrity["window_minutes"],
        impossible_travel_max_kmh=integrity["max_kmh"],
    )


def _parse_activity(c: _Checker, section: Any):
    path = "activity"
    activity = c.mapping(section, path, ("kinds", "level_multipliers"), ("venue_kind_multipliers",))
    if activity is None:
        return None, None, None

    kinds: dict[str, KindRule] | None = None
    if "kinds" in activity:
        kinds_doc = c.mapping(activity["kinds"], f"{path}.kinds", ACTIVITY_KINDS, what="活动类型")
        if kinds_doc is not None:
            parsed = {kind: _parse_kind(c, kind, kinds_doc[kind], f"{path}.kinds.{kind}")
                      for kind in ACTIVITY_KINDS if kind in kinds_doc}
            if len(parsed) == len(ACTIVITY_KINDS) and all(parsed.values()):
                kinds = parsed

    level_multipliers = None
    if "level_multipliers" in activity:
        level_multipliers = c.table(activity["level_multipliers"], f"{path}.level_multipliers",
                                    VENUE_LEVELS, "场馆级别")
    venue_kind_multipliers: dict[str, Decimal] | None = {}  # optional: no venue kind replaces its level
    if "venue_kind_multipliers" in activity:
        vkm_path = f"{path}.venue_kind_multipliers"
        vkm = c.mapping(activity["venue_kind_multipliers"], vkm_path, (), VENUE_KINDS, what="场馆类型")
        parsed_vkm = {} if vkm is None else {
            key: c.decimal(value, f"{vkm_path}.{key}") for key, value in vkm.items() if key in VENUE_KINDS}
        ok = vkm is not None and len(parsed_vkm) == len(vkm) and None not in parsed_vkm.values()
        venue_kind_multipliers = parsed_vkm if ok else None
    return kinds, level_multipliers, venue_kind_multipliers


def _parse_kind(c: _Checker, kind: str, value: Any, path: str) -> KindRule | None:
    rule = c.mapping(value, path, ("min_minutes", "base"))
    if rule is None:
        return None
    min_minutes = None
    if "min_minutes" in rule:
        min_minutes = c.integer(rule["min_minutes"], f"{path}.min_minutes", minimum=0, maximum=24 * 60)
    if "base" not in rule:
        return None
    base_path = f"{path}.base"
    base = rule["base"]
    if isinstance(base, dict) and "fixed" in base and ("per_minutes" in base or "amount" in base):
        c.error(base_path, "fixed 与 per_minutes/amount 只能二选一")
        return None
    if isinstance(base, dict) and "fixed" in base:
        if c.mapping(base, base_path, ("fixed",)) is None:
            return None
        fixed = c.decimal(base["fixed"], f"{base_path}.fixed")
        if fixed is None or min_minutes is None or len(base) != 1:
            return None
        return KindRule(kind=kind, min_minutes=min_minutes, fixed=fixed)
    if isinstance(base, dict) and ("per_minutes" in base or "amount" in base):
        c.mapping(base, base_path, ("per_minutes", "amount"), ("max",))
        per = None
        if "per_minutes" in base:
            per = c.integer(base["per_minutes"], f"{base_path}.per_minutes", minimum=1, maximum=24 * 60)
        amount = c.decimal(base["amount"], f"{base_path}.amount") if "amount" in base else None
        cap = c.decimal(base["max"], f"{base_path}.max") if "max" in base else None
        if per is None or amount is None or min_minutes is None or ("max" in base and cap is None):
            return None
        if set(base) - {"per_minutes", "amount", "max"}:
            return None
        return KindRule(kind=kind, min_minutes=min_minutes, per_minutes=per, amount=amount, max=cap)
    c.error(base_path, f"必须是 {{fixed: \"1.0\"}} 或 {{per_minutes: 30, amount: \"0.5\", max: \"2.0\"}}，"
                       f"收到{_describe(base)}")
    return None


def _parse_competition(c: _Checker, section: Any):
    competition = c.mapping(section, "competition", ("credits",))
    if competition is None or "credits" not in competition:
        return None
    path = "competition.credits"
    credits = c.mapping(competition["credits"], path, COMPETITION_LEVELS, what="竞赛级别")
    if credits is None:
        return None
    out: dict[str, dict[str, Decimal]] | None = {}
    for level in COMPETITION_LEVELS:
        row = None
        if level in credits:
            row = c.table(credits[level], f"{path}.{level}", AWARDS, "奖项", places=2)
        if row is None or out is None:
            out = None
        else:
            out[level] = row
    return out


def _parse_caps(c: _Checker, section: Any):
    keys = ("activity_per_day", "stays_per_venue_per_term", "competition_per_school_year")
    caps = c.mapping(section, "caps", keys)
    if caps is None:
        return None
    out: dict[str, Any] = dict.fromkeys(keys)
    for key in keys:
        if key not in caps:
            continue
        if key == "stays_per_venue_per_term":
            out[key] = c.integer(caps[key], f"caps.{key}", minimum=1)
        else:
            out[key] = c.decimal(caps[key], f"caps.{key}", places=2)
    return None if any(v is None for v in out.values()) else out


def _parse_requirements(c: _Checker, section: Any) -> dict[int, Requirement] | None:
    if not isinstance(section, list) or not section:
        c.error("requirements",
                f"必须是非空列表（每项：grades、credits、min_kinds、one_of），收到{_describe(section)}")
        return None
    out: dict[int, Requirement] | None = {}
    seen: dict[int, int] = {}
    for i, item in enumerate(section):
        path = f"requirements.{i}"
        entry = c.mapping(item, path, ("grades", "credits", "min_kinds"), ("one_of",))
        if entry is None:
            out = None
            continue
        grades: list[int] = []
        if "grades" in entry:
            raw = entry["grades"]
            if not isinstance(raw, list) or not raw:
                c.error(f"{path}.grades", f"必须是非空的年级列表（如 [1, 2]），收到{_describe(raw)}")
            else:
                for j, g in enumerate(raw):
                    if c.integer(g, f"{path}.grades.{j}", minimum=1, maximum=9) is None:
                        continue
                    if g in grades:
                        c.error(f"{path}.grades", f"年级 {g} 重复")
                    elif g in seen:
                        c.error(f"{path}.grades", f"年级 {g} 已在 requirements.{seen[g]} 中规定")
                    else:
                        grades.append(g)
                        seen[g] = i
        credits = c.decimal(entry["credits"], f"{path}.credits", places=2) if "credits" in entry else None
        min_kinds = None
        if "min_kinds" in entry:
            most = len(CREDIT_KINDS)
            min_kinds = c.integer(entry["min_kinds"], f"{path}.min_kinds", minimum=0, maximum=most)
        one_of: list[str] | None = []
        if "one_of" in entry:
            raw = entry["one_of"]
            if not isinstance(raw, list):
                c.error(f"{path}.one_of",
                        f"必须是类型列表（如 [workshop, research, competition]），收到{_describe(raw)}")
                one_of = None
            else:
                for j, kind in enumerate(raw):
                    if kind not in CREDIT_KINDS:
                        c.error(f"{path}.one_of.{j}", f"未知类型 {kind!r}；可用：{', '.join(CREDIT_KINDS)}")
                        one_of = None
                    elif one_of is not None and kind in one_of:
                        c.error(f"{path}.one_of.{j}", f"类型 {kind} 重复")
                        one_of = None
                    elif one_of is not None:
                        one_of.append(kind)
        if credits is None or min_kinds is None or one_of is None or not grades or out is None:
            out = None
            continue
        ordered = tuple(k for k in CREDIT_KINDS if k in one_of)
        for g in grades:
            out[g] = Requirement(credits=money(credits), min_kinds=min_kinds, one_of=ordered)
    missing = [g for g in range(1, 10) if g not in seen]
    if missing and out is not None:
        grades_text = "、".join(map(str, missing))
        c.error("requirements", f"缺少年级 {grades_text} 的要求（1–9 年级每个年级须恰好规定一次）")
        out = None
    return out


def _parse_integrity(c: _Checker, section: Any):
    integrity = c.mapping(section, "integrity", ("shared_device", "impossible_travel"))
    if integrity is None:
        return None
    out: dict[str, Any] = {"students": None, "window_minutes": None, "max_kmh": None}
    path = "integrity.shared_device"
    if "shared_device" in integrity:
        shared = c.mapping(integrity["shared_device"], path, ("students", "window_minutes"))
        if shared is not None:
            if "students" in shared:
                out["students"] = c.integer(shared["students"], f"{path}.students", minimum=2)
            if "window_minutes" in shared:
                window = shared["window_minutes"]
                out["window_minutes"] = c.integer(window, f"{path}.window_minutes", minimum=1)
    path = "integrity.impossible_travel"
    if "impossible_travel" in integrity:
        travel = c.mapping(integrity["impossible_travel"], path, ("max_kmh",))
        if travel is not None and "max_kmh" in travel:
            out["max_kmh"] = c.decimal(travel["max_kmh"], f"{path}.max_kmh", positive=True)
    return None if any(v is None for v in out.values()) else out


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys instead of silently keeping the last one."""


def _construct_unique_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict:
    loader.flatten_mapping(node)
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:  # an unhashable key; construct_mapping reports it
            continue
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f"重复的键 {key!r}", key_node.start_mark)
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def load_rule_file(path: str | pathlib.Path) -> RuleSet:
    """Read a rule file (JSON if it starts with ``{``, else YAML), validate it and parse it."""
    text = pathlib.Path(path).read_text(encoding="utf-8-sig")
    if text.lstrip().startswith(("{", "[")):
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            message = f"JSON 解析失败：第 {exc.lineno} 行第 {exc.colno} 列：{exc.msg}"
            raise RuleSetError({"document": message}) from exc
    else:
        try:
            document = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
        except yaml.YAMLError as exc:
            raise RuleSetError({"document": f"YAML 解析失败：{exc}"}) from exc
    return parse_rule_set(document)


def default_rule_path() -> pathlib.Path:
    """``config/rules/sz-2025.yaml`` in the repository holding this package."""
    return pathlib.Path(__file__).resolve().parents[2] / "config" / "rules" / "sz-2025.yaml"


def load_default_rules() -> RuleSet:
    """The default rule set ``sz-2025``, read from :func:`default_rule_path`."""
    return load_rule_file(default_rule_path())


def activity_min_minutes(rules: RuleSet, activity_kind: str) -> int:
    """The default ``min_minutes`` of an activity kind under ``rules``."""
    return _kind_rule(rules, activity_kind).min_minutes


def _kind_rule(rules: RuleSet, activity_kind: str) -> KindRule:
    try:
        return rules.kinds[activity_kind]
    except (KeyError, TypeError):
        raise ValueError(f"未知的活动类型 {activity_kind!r}；可用：{', '.join(ACTIVITY_KINDS)}") from None


# --------------------------------------------------------------------------------------------------
# Activity credit


@dataclass(frozen=True)
class Stay:
    """A completed stay: the activity's kind, the venue's kind and level, minutes stayed."""

    activity_kind: str
    venue_kind: str
    venue_level: str
    minutes: int
    min_minutes: int | None = None  # the activity's own min_minutes; None → the kind's default


@dataclass(frozen=True)
class StayHistory:
    """What the student already has: activity credits earned that day (net), and credited (amount > 0)
    stays at this venue this term."""

    day_activity_total: Decimal = Decimal("0")
    venue_stays_this_term: int = 0


@dataclass(frozen=True)
class Credit:
    amount: Decimal
    explanation: dict


def evaluate_stay(rules: RuleSet, stay: Stay, history: StayHistory | None = None) -> Credit:
    """Credit for one completed stay (SPEC §5): base × multiplier, rounded, then the venue and daily caps."""
    history = StayHistory() if history is None else history
    kind_rule = _kind_rule(rules, stay.activity_kind)
    if stay.venue_kind not in VENUE_KINDS:
        raise ValueError(f"未知的场馆类型 {stay.venue_kind!r}；可用：{', '.join(VENUE_KINDS)}")
    if stay.venue_level not in rules.level_multipliers:
        raise ValueError(f"未知的场馆级别 {stay.venue_level!r}；可用：{', '.join(VENUE_LEVELS)}")
    minutes = _non_negative_int(stay.minutes, "minutes")
    own_min = stay.min_minutes is not None
    min_minutes = _non_negative_int(stay.min_minutes, "min_minutes") if own_min else kind_rule.min_minutes
    day_total = max(_to_decimal(history.day_activity_total, "day_activity_total"), Decimal(0))
    venue_stays = _non_negative_int(history.venue_stays_this_term, "venue_stays_this_term")

    label = ACTIVITY_KIND_LABELS[stay.activity_kind]
    inputs = {
        "activity_kind": stay.activity_kind,
        "venue_kind": stay.venue_kind,
        "venue_level": stay.venue_level,
        "minutes": minutes,
        "min_minutes": min_minutes,
        "min_minutes_source": "activity" if own_min else "rule_default",
        "day_activity_total": _fmt(day_total),
        "venue_stays_this_term": venue_stays,
    }
    if minutes < min_minutes:
        factor = {"name": "min_minutes", "value": str(min_minutes),
                  "note": f"停留 {minutes} 分钟，未满本活动最低 {min_minutes} 分钟，不计学分"}
        summary = f"{label} {minutes} 分钟：未满最低 {min_minutes} 分钟，不计学分 → 0.00 学分"
        explanation = _explanation(rules, inputs, [factor], [], _ZERO, _ZERO, "below_min_minutes", summary)
        return Credit(_ZERO, explanation)

    base, base_phrase, base_note = kind_rule.base(minutes)
    if stay.venue_kind in rules.venue_kind_multipliers:
        multiplier = rules.venue_kind_multipliers[stay.venue_kind]
        where = VENUE_KIND_LABELS[stay.venue_kind]
        mult_note = f"{where} × {multiplier}（代替场馆级别系数）"
    else:
        multiplier = rules.level_multipliers[stay.venue_level]
        where = LEVEL_LABELS[stay.venue_level]
        mult_note = f"{where}场馆 × {multiplier}"
    raw = base * multiplier
    subtotal = money(raw)
    factors = [
        {"name": "base", "value": _fmt(base), "note": base_note},
        {"name": "multiplier", "value": _fmt(multiplier), "note": mult_note},
    ]
    if raw != subtotal:
        factors.append({"name": "rounding", "value": str(subtotal),
                        "note": f"{_fmt(base)} × {multiplier} = {format(raw.normalize(), 'f')}，"
                                f"四舍五入到 0.01 → {subtotal}"})
    summary = f"{label} {minutes} 分钟：{base_phrase} → {_fmt(base)} × {where} {multiplier} = {subtotal} 学分"
    reason = "no_full_block" if subtotal == 0 and kind_rule.per_minutes and base == 0 else None

    amount = subtotal
    caps: list[dict] = []
    venue_limit = rules.stays_per_venue_per_term
    if amount > 0 and venue_stays >= venue_limit:
        caps.append({"cap": "stays_per_venue_per_term", "limit": str(venue_limit), "capped": str(amount),
                     "note": f"本学期已在该场馆计入 {venue_stays} 次学分，"
                             f"同一场馆每学期最多计 {venue_limit} 次"})
        summary += f"；本学期同一场馆已计 {venue_stays} 次（上限 {venue_limit} 次），本次计 0.00 学分"
        amount = _ZERO
        reason = "venue_cap"
    day_limit = rules.activity_per_day
    room = _floor_cent(day_limit - day_total)
    if amount > room:
        capped = amount - room
        caps.append({"cap": "activity_per_day", "limit": str(day_limit), "capped": str(capped),
                     "note": f"当天已得活动学分 {_fmt(day_total)}，每日上限 {day_limit}，扣减 {capped}"})
        summary += f"；当天已得 {_fmt(day_total)} 学分，每日上限 {day_limit}，扣减 {capped}，计 {room} 学分"
        amount = room
        if amount == 0:
            reason = "daily_cap"
    return Credit(amount, _explanation(rules, inputs, factors, caps, subtotal, amount, reason, summary))


def _explanation(rules: RuleSet, inputs: dict, factors: list, caps: list, subtotal: Decimal, amount: Decimal,
                 reason: str | None, summary: str, **extra: Any) -> dict:
    return {
        "rule_version": rules.version,
        "inputs": inputs,
        "factors": factors,
        "subtotal": str(subtotal),
        "caps": caps,
        "amount": str(amount),
        "reason": reason,
        **extra,
        "summary": summary,
    }


# --------------------------------------------------------------------------------------------------
# Competition credit


@dataclass(frozen=True)
class CompetitionHistory:
    """Net competition credits this school year; the amount now credited for the same work, if any."""

    year_competition_total: Decimal = Decimal("0")
    same_work_best: Decimal | None = None


@dataclass(frozen=True)
class CompetitionCredit:
    """``amount`` of the new credit entry; ``replaces_previous``: reverse the same work's earlier entry
    (``explanation["previous_amount"]``) before writing this one."""

    amount: Decimal
    replaces_previous: bool
    explanation: dict


def evaluate_competition(rules: RuleSet, level: str, award: str,
                         history: CompetitionHistory | None = None) -> CompetitionCredit:
    """Credit for an approved competition claim (SPEC §5): the table, same work once, the yearly cap."""
    history = CompetitionHistory() if history is None else history
    if level not in COMPETITION_LEVELS or level not in rules.competition_credits:
        raise ValueError(f"未知的竞赛级别 {level!r}；可用：{', '.join(COMPETITION_LEVELS)}")
    if award not in AWARDS:
        raise ValueError(f"未知的奖项 {award!r}；可用：{', '.join(AWARDS)}")
    year_total = max(_to_decimal(history.year_competition_total, "year_competition_total"), Decimal(0))
    best = None if history.same_work_best is None else money(
        _non_negative_decimal(history.same_work_best, "same_work_best"))
    table = rules.competition_credits[level][award]
    label = f"{LEVEL_LABELS[level]}{AWARD_LABELS[award]}"
    inputs = {"level": level, "award": award, "year_competition_total": _fmt(year_total),
              "same_work_best": None if best is None else str(best)}
    factors: list[dict] = [{"name": "table", "value": str(table), "note": f"{label} {table} 学分"}]
    caps: list[dict] = []

    if best is not None and table <= best:
        factors.append({"name": "same_work", "value": str(best),
                        "note": f"同一作品已按 {best} 学分计入，不低于本次 {table}，只计一次"})
        summary = f"{label}：同一作品已按 {best} 学分计入（不低于本次 {table}），本次不再计分 → 0.00 学分"
        explanation = _explanation(rules, inputs, factors, caps, table, _ZERO, "same_work_not_higher",
                                   summary, replaces_previous=False, previous_amount=str(best),
                                   net_change="0.00")
        return CompetitionCredit(_ZERO, False, explanation)

    limit = rules.competition_per_school_year
    counted = year_total - (best or 0)
    room = _floor_cent(limit - counted)
    amount = min(table, room)
    summary = f"{label}：{table} 学分"
    reason = None
    if amount < table:
        capped = table - amount
        counted_note = f"（不含将被替换的 {best}）" if best is not None else ""
        caps.append({"cap": "competition_per_school_year", "limit": str(limit), "capped": str(capped),
                     "note": f"本学年已计竞赛学分 {_fmt(counted)}{counted_note}，"
                             f"每学年上限 {limit}，扣减 {capped}"})
        summary += f"；本学年竞赛学分已计 {_fmt(counted)}，上限 {limit}，扣减 {capped}"
        if amount == 0:
            reason = "competition_cap"
    replaces = False
    if best is not None:
        if amount < best:
            factors.append({"name": "same_work", "value": str(best),
                            "note": f"同一作品已按 {best} 学分计入；"
                                    f"受学年上限所限本次只能计 {amount}，保留原记录"})
            summary += f"；同一作品已按 {best} 学分计入，保留原记录 → 0.00 学分"
            explanation = _explanation(rules, inputs, factors, caps, table, _ZERO, "same_work_cap_no_gain",
                                       summary, replaces_previous=False, previous_amount=str(best),
                                       net_change="0.00")
            return CompetitionCredit(_ZERO, False, explanation)
        replaces = True
        factors.append({"name": "same_work", "value": str(best),
                        "note": f"同一作品原按 {best} 学分计入，本次奖项更高：撤销原记录，改按本次计"})
        summary += f"；同一作品原计 {best} 学分，撤销后改计"
    summary += f" → {amount} 学分"
    net = amount - best if replaces and best is not None else amount
    explanation = _explanation(rules, inputs, factors, caps, table, amount, reason, summary,
                               replaces_previous=replaces,
                               previous_amount=None if best is None else str(best), net_change=str(net))
    return CompetitionCredit(amount, replaces, explanation)


# --------------------------------------------------------------------------------------------------
# Yearly requirement and progress


def requirement_for_grade(rules: RuleSet, grade: int) -> Requirement:
    """The yearly requirement of a grade 1–9."""
    if isinstance(grade, bool) or not isinstance(grade, int) or not 1 <= grade <= 9:
        raise ValueError(f"年级必须是 1–9 的整数，收到 {grade!r}")
    return rules.requirements[grade]


@dataclass(frozen=True)
class Progress:
    total: Decimal
    required: Decimal
    met: bool
    kinds: tuple[str, ...]
    missing_credits: Decimal
    missing_kinds: int
    missing_one_of: tuple[str, ...]
    hint: str


def progress(rules: RuleSet, grade: int, credits_by_kind: Mapping[str, Decimal]) -> Progress:
    """Progress toward the grade's yearly requirement from the net credits per kind
    (activity kinds and "competition"; a kind counts when its net credit is positive)."""
    req = requirement_for_grade(rules, grade)
    net: dict[str, Decimal] = {}
    for kind, value in credits_by_kind.items():
        if kind not in CREDIT_KINDS:
            raise ValueError(f"未知的学分类型 {kind!r}；可用：{', '.join(CREDIT_KINDS)}")
        net[kind] = _to_decimal(value, kind)
    total = money(sum(net.values(), Decimal(0)))
    kinds = tuple(k for k in CREDIT_KINDS if net.get(k, Decimal(0)) > 0)
    missing_credits = money(max(req.credits - total, Decimal(0)))
    missing_kinds = max(req.min_kinds - len(kinds), 0)
    missing_one_of = req.one_of if req.one_of and not set(req.one_of) & set(kinds) else ()
    met = missing_credits == 0 and missing_kinds == 0 and not missing_one_of
    if met:
        hint = f"已达到年度要求：{total} / {req.credits} 学分，{len(kinds)} 类活动"
    else:
        parts = []
        if missing_credits > 0:
            parts.append(f"{missing_credits} 学分")
        one_of_words = "、".join(ACTIVITY_KIND_LABELS[k] for k in missing_one_of[:-1])
        if missing_one_of:
            last = ACTIVITY_KIND_LABELS[missing_one_of[-1]]
            one_of_words = f"{one_of_words}或{last}" if one_of_words else last
        if missing_kinds > 0:
            parts.append(f"{missing_kinds} 类活动" + (f"（需含{one_of_words}）" if missing_one_of else ""))
        elif missing_one_of:
            parts.append(f"1 项{one_of_words}类活动")
        hint = "还差 " + "、".join(parts)
    return Progress(total=total, required=req.credits, met=met, kinds=kinds, missing_credits=missing_credits,
                    missing_kinds=missing_kinds, missing_one_of=missing_one_of, hint=hint)


# --------------------------------------------------------------------------------------------------
# School calendar (SPEC §3): days and terms in Asia/Shanghai


def local_date(dt: datetime | date) -> date:
    """The Asia/Shanghai calendar date of an aware datetime (a plain ``date`` is returned as is)."""
    if isinstance(dt, datetime):
        if dt.tzinfo is None or dt.utcoffset() is None:
            raise ValueError(f"需要带时区的时间（aware datetime），收到 {dt.isoformat()}")
        return dt.astimezone(SHANGHAI).date()
    if isinstance(dt, date):
        return dt
    raise TypeError(f"expected a datetime or date, not {type(dt).__name__}")


def school_year_of(d: date | datetime) -> str:
    """School year "2025-2026" for 2025-09-01 … 2026-08-31."""
    d = local_date(d)
    start = d.year if d.month >= 9 else d.year - 1
    return f"{start}-{start + 1}"


def term_of(d: date | datetime) -> int:
    """Term 1 (1 Sep – 31 Jan) or 2 (1 Feb – 31 Aug)."""
    d = local_date(d)
    return 1 if d.month >= 9 or d.month == 1 else 2


_SCHOOL_YEAR_RE = re.compile(r"([0-9]{4})-([0-9]{4})")


def school_year_bounds(school_year: str) -> tuple[date, date]:
    """First and last day of a school year "YYYY-YYYY+1"; ``ValueError`` for anything else."""
    m = _SCHOOL_YEAR_RE.fullmatch(school_year) if isinstance(school_year, str) else None
    if m is None or int(m.group(2)) != int(m.group(1)) + 1 or int(m.group(1)) < 1:
        raise ValueError(f"学年格式应为 YYYY-YYYY（如 2025-2026，后一年比前一年大 1），收到 {school_year!r}")
    start = int(m.group(1))
    return date(start, 9, 1), date(start + 1, 8, 31)


def term_bounds(school_year: str, term: int) -> tuple[date, date]:
    """First and last day of term 1 or 2 of a school year."""
    first, last = school_year_bounds(school_year)
    if term == 1:
        return first, date(last.year, 1, 31)
    if term == 2:
        return date(last.year, 2, 1), last
    raise ValueError(f"学期必须是 1 或 2，收到 {term!r}")


def local_day_bounds(d: date | datetime) -> tuple[datetime, datetime]:
    """[start, end) of the Asia/Shanghai day, as aware datetimes (for "credits earned that day" queries)."""
    d = local_date(d)
    start = datetime.combine(d, time(0), tzinfo=SHANGHAI)
    return start, datetime.combine(d + timedelta(days=1), time(0), tzinfo=SHANGHAI)


def stay_minutes(entered_at: datetime, exited_at: datetime) -> int:
    """Full minutes between two aware datetimes (seconds dropped); ``ValueError`` if exit precedes entry."""
    for name, value in (("entered_at", entered_at), ("exited_at", exited_at)):
        if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{name} 需要带时区的时间（aware datetime）")
    delta = exited_at - entered_at
    if delta < timedelta(0):
        raise ValueError("签退时间早于签到时间")
    return delta // timedelta(minutes=1)


# --------------------------------------------------------------------------------------------------
# A whole school year from scratch (simulate / recompute a rule version)


@dataclass(frozen=True)
class YearStay:
    """A completed, accepted stay as the year replay sees it."""

    occurred_at: datetime
    activity_kind: str
    venue_kind: str
    venue_level: str
    venue_id: int
    minutes: int
    min_minutes: int | None = None


@dataclass(frozen=True)
class YearClaim:
    """An approved competition claim as the year replay sees it."""

    awarded_on: date
    level: str
    award: str
    work_key: str


def evaluate_year(rules: RuleSet, stays: list[YearStay], claims: list[YearClaim]) -> dict[str, Decimal]:
    """Credits by kind ("competition" for claims) for one pupil's school year, every cap applied in
    time order — what the ledger would hold had `rules` been in force all year."""
    totals: dict[str, Decimal] = {}
    day_totals: dict[date, Decimal] = {}
    venue_stays: dict[tuple[int, int], int] = {}
    year_competition = Decimal("0")
    best_by_work: dict[str, Decimal] = {}
    events = [(local_date(s.occurred_at), 0, s.occurred_at.timestamp(), i, s) for i, s in enumerate(stays)]
    events += [(c.awarded_on, 1, 0.0, i, c) for i, c in enumerate(claims)]
    for day, _, _, _, event in sorted(events, key=lambda e: e[:4]):
        if isinstance(event, YearStay):
            key = (event.venue_id, term_of(day))
            credit = evaluate_stay(
                rules,
                Stay(event.activity_kind, event.venue_kind, event.venue_level, event.minutes, event.min_minutes),
                StayHistory(day_activity_total=day_totals.get(day, Decimal("0")),
                            venue_stays_this_term=venue_stays.get(key, 0)),
            )
            day_totals[day] = day_totals.get(day, Decimal("0")) + credit.amount
            if credit.amount > 0:
                venue_stays[key] = venue_stays.get(key, 0) + 1
            totals[event.activity_kind] = totals.get(event.activity_kind, Decimal("0")) + credit.amount
        else:
            previous = best_by_work.get(event.work_key)
            result = evaluate_competition(
                rules, event.level, event.award,
                CompetitionHistory(year_competition_total=year_competition, same_work_best=previous),
            )
            if result.replaces_previous and previous is not None:
                year_competition -= previous
                totals["competition"] = totals.get("competition", Decimal("0")) - previous
            if result.replaces_previous or previous is None:
                best_by_work[event.work_key] = result.amount
            year_competition += result.amount
            totals["competition"] = totals.get("competition", Decimal("0")) + result.amount
    return {kind: money(amount) for kind, amount in totals.items()}
