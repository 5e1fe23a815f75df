"""Find and parse the figures in one English sentence.

Conventions for ``low`` / ``high`` (both are plain floats, money and scale words already applied):

=====================================  =======  =======  =============
phrase                                 low      high     qualifier
=====================================  =======  =======  =============
"40", "forty", "a dozen"               40       40       None
"about / around / roughly / some /     300      300      "about"
an estimated 300"
"at least / no fewer than 40"          40       None     "at least"
"more than / over / above 100",        100      None     "more than"
"100-plus", "well over 100"
"up to / as many as 9,000"             None     9000     "up to"
"fewer than / less than / under 50"    None     50       "fewer than"
"nearly / almost / just under 500"     None     500      "nearly"
"between 30 and 40", "30-40",          30       40       "between"
"30 to 40"
"dozens"                               24       None     "dozens"
"scores"                               40       None     "scores"
"hundreds" / "several hundred"         200      None     "hundreds"
"thousands"                            2000     None     "thousands"
"tens of thousands"                    20000    None     "tens of thousands"
"hundreds of thousands"                200000   None     "hundreds of thousands"
"millions"                             2e6      None     "millions"
=====================================  =======  =======  =============

Vague plurals take twice the base unit as their floor ("dozens" is at least two dozen) and have no upper
bound.  Proportions ("a third", "half of", "one in five") are given in percent with unit "%".

Not figures: years ("in 1987", "the 2021 census"), decades ("the 1990s"), dates ("April 16", "3 March"),
clock times ("04:12", "3 p.m.", "0930 GMT"), ages ("a 45-year-old", "aged 45", "Gray, 71,"), ordinals
("19th"), identifiers ("No. 2", "Route 9", "COVID-19", "F-16"), and the bare word "one" unless it is part
of a larger number, a ratio, or a casualty phrase ("one person was killed").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.intake._util import wordset

UNITS = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
}
TENS = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
SCALES = {"hundred": 100.0, "thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12}
SHORT_SCALES = {"k": 1e3, "m": 1e6, "mn": 1e6, "mln": 1e6, "bn": 1e9, "b": 1e9, "tn": 1e12, "trn": 1e12}
FRACTIONS = {
    "half": 0.5,
    "halves": 0.5,
    "third": 1 / 3,
    "thirds": 1 / 3,
    "quarter": 0.25,
    "quarters": 0.25,
    "fifth": 0.2,
    "fifths": 0.2,
    "tenth": 0.1,
    "tenths": 0.1,
}
VAGUE = {
    # phrase (lower case, tokens joined by one space) -> (floor, canonical qualifier)
    "tens of thousands": (2e4, "tens of thousands"),
    "hundreds of thousands": (2e5, "hundreds of thousands"),
    "tens of millions": (2e7, "tens of millions"),
    "hundreds of millions": (2e8, "hundreds of millions"),
    "several dozen": (24.0, "dozens"),
    "a few dozen": (24.0, "dozens"),
    "several hundred": (200.0, "hundreds"),
    "a few hundred": (200.0, "hundreds"),
    "several thousand": (2000.0, "thousands"),
    "a few thousand": (2000.0, "thousands"),
    "dozens": (24.0, "dozens"),
    "scores": (40.0, "scores"),
    "hundreds": (200.0, "hundreds"),
    "thousands": (2000.0, "thousands"),
    "millions": (2e6, "millions"),
    "billions": (2e9, "billions"),
}
VAGUE_QUALIFIERS = frozenset(q for _, q in VAGUE.values())

# Qualifier phrases directly before a number, longest first, mapped to the canonical qualifier.
QUALIFIERS: tuple[tuple[str, str], ...] = (
    ("no fewer than", "at least"),
    ("no less than", "at least"),
    ("a minimum of", "at least"),
    ("at least", "at least"),
    ("as many as", "up to"),
    ("as much as", "up to"),
    ("no more than", "up to"),
    ("at most", "up to"),
    ("a maximum of", "up to"),
    ("up to", "up to"),
    ("in excess of", "more than"),
    ("upwards of", "more than"),
    ("well over", "more than"),
    ("just over", "more than"),
    ("more than", "more than"),
    ("exceeding", "more than"),
    ("well above", "more than"),
    ("over", "more than"),
    ("above", "more than"),
    ("just under", "nearly"),
    ("just below", "nearly"),
    ("close to", "nearly"),
    ("nearly", "nearly"),
    ("almost", "nearly"),
    ("approaching", "nearly"),
    ("fewer than", "fewer than"),
    ("less than", "fewer than"),
    ("under", "fewer than"),
    ("below", "fewer than"),
    ("an estimated", "about"),
    ("estimated", "about"),
    ("approximately", "about"),
    ("roughly", "about"),
    ("around", "about"),
    ("about", "about"),
    ("some", "about"),
    ("circa", "about"),
    ("approx", "about"),
    ("or so", "about"),
)
OPEN_HIGH = frozenset({"at least", "more than"})
OPEN_LOW = frozenset({"up to", "fewer than", "nearly"})

CURRENCY_SYMBOLS = {"$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY", "₹": "INR", "₽": "RUB", "₩": "KRW"}
CURRENCY_WORDS = {
    "dollar": "USD",
    "dollars": "USD",
    "usd": "USD",
    "euro": "EUR",
    "euros": "EUR",
    "eur": "EUR",
    "pound": "GBP",
    "pounds": "GBP",
    "sterling": "GBP",
    "gbp": "GBP",
    "yen": "JPY",
    "rupees": "INR",
    "roubles": "RUB",
    "rubles": "RUB",
    "francs": "CHF",
    "yuan": "CNY",
    "won": "KRW",
}
MEASURE_UNITS = {
    "km": "km",
    "kms": "km",
    "kilometre": "km",
    "kilometres": "km",
    "kilometer": "km",
    "kilometers": "km",
    "mile": "mi",
    "miles": "mi",
    "mi": "mi",
    "metre": "m",
    "metres": "m",
    "meter": "m",
    "meters": "m",
    "cm": "cm",
    "mm": "mm",
    "kg": "kg",
    "kilogram": "kg",
    "kilograms": "kg",
    "kilos": "kg",
    "tonne": "t",
    "tonnes": "t",
    "ton": "t",
    "tons": "t",
    "hectare": "ha",
    "hectares": "ha",
    "ha": "ha",
    "acre": "acres",
    "acres": "acres",
    "litre": "L",
    "litres": "L",
    "liter": "L",
    "liters": "L",
    "mph": "mph",
    "kph": "km/h",
    "mw": "MW",
    "gw": "GW",
    "kwh": "kWh",
    "barrels": "barrels",
    "degrees": "°",
    "feet": "ft",
    "ft": "ft",
    "inches": "in",
    "sq": "sq",
}
TIME_UNITS = {
    "second": "seconds",
    "seconds": "seconds",
    "minute": "minutes",
    "minutes": "minutes",
    "hour": "hours",
    "hours": "hours",
    "day": "days",
    "days": "days",
    "week": "weeks",
    "weeks": "weeks",
    "month": "months",
    "months": "months",
    "year": "years",
    "years": "years",
    "decade": "decades",
    "decades": "decades",
    "century": "centuries",
    "centuries": "centuries",
    "night": "nights",
    "nights": "nights",
}
PEOPLE_NOUNS = wordset(
    """people persons person civilians civilian residents resident children child adults women men man
    woman patients patient soldiers soldier troops fighters fighter militants workers worker staff
    employees voters migrants refugees victims dead injured wounded missing casualties students pupils
    journalists prisoners detainees protesters demonstrators officers police policemen firefighters
    nurses doctors villagers passengers inhabitants citizens members volunteers rebels insurgents miners
    farmers drivers deaths fatalities survivors evacuees others babies infants teenagers elderly
    pensioners"""
)
OUTCOME_WORDS = wordset(
    """killed dead died deaths death injured wounded hurt missing displaced evacuated arrested detained
    rescued flooded destroyed damaged burned burnt affected infected hospitalised hospitalized sick
    drowned lost fled homeless stranded trapped abducted kidnapped executed treated admitted confirmed
    suspected recovered vaccinated"""
)
MEASURE_NOUNS = wordset(
    """toll turnout inflation rate unemployment prices growth deficit revenue population magnitude wait pay
    wages salary budget debt loan income gdp tally total count share vote votes capacity temperature
    depth distance speed cost price number output exports imports sales profit profits spending coverage
    majority support approval"""
)
YEAR_PREPOSITIONS = wordset(
    """in since of by until till from to before after during between and or the this last next early late
    mid end start beginning spring summer autumn fall winter 's"""
)
ID_WORDS = wordset(
    """no number nos route highway article section chapter resolution flight room ward gate platform level
    category phase stage grade page line channel precinct unit block terminal bay exit act bill clause
    paragraph item order case model version division district zone sector road street avenue"""
)
MONTHS = wordset(
    """january february march april may june july august september october november december jan feb mar
    apr jun jul aug sep sept oct nov dec"""
)
TIME_SUFFIXES = frozenset({"am", "pm", "gmt", "utc", "bst", "cet", "cest", "est", "edt", "pst", "hrs", "h"})
NP_STOP = wordset(
    """the a an of in on at to for from with by and or but nor were was are is be been being had have has
    would will could should may might can that which who whom whose since after before as than per this
    these those their its his her our your my last next each every across into onto over under about
    around near within without between among during while when where if so also just only still even
    more less most least some any all no not very too such there here it they he she we you i them us
    him me said says told say according including while whereas because although though up down out off
    ago later earlier now then today yesterday tomorrow tonight already again"""
)
_TOKEN = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|[^\W\d_]+(?:['\u2019][^\W\d_]+)?|\S")
_CURRENCY_PREFIXES = ("US", "A", "C", "HK", "NZ")
_COUNTABLE_AFTER_YEAR = wordset("homes houses cases votes jobs buildings vehicles beds doses")
_DASHES = frozenset({"-", "\u2013", "\u2014", "\u2011"})
_CHANGE_WORDS = wordset(
    """rose fell risen fallen rising falling increased decreased increasing decreasing grew growing dropped
    dropping climbed climbing jumped cut reduced raised lifted up down declined declining slipped slid
    surged soared plunged plummeted went gone doubled"""
)


@dataclass(frozen=True)
class Figure:
    """One quantity mentioned in a sentence.  ``start``/``end`` index the original text."""

    low: float | None
    high: float | None
    qualifier: str | None
    counted: str | None
    unit: str | None
    text: str
    start: int
    end: int

    @property
    def is_duration(self) -> bool:
        return self.unit in set(TIME_UNITS.values())

    @property
    def value(self) -> float | None:
        """A single representative value (the bound that is known)."""
        return self.low if self.low is not None else self.high

    def to_dict(self) -> dict[str, object]:
        return {
            "low": self.low,
            "high": self.high,
            "qualifier": self.qualifier,
            "counted": self.counted,
            "unit": self.unit,
            "text": self.text,
            "start": self.start,
            "end": self.end,
        }


@dataclass
class _Tok:
    text: str
    start: int
    end: int

    @property
    def low(self) -> str:
        return self.text.lower().replace("\u2019", "'")

    @property
    def is_num(self) -> bool:
        return self.text[0].isdigit()

    @property
    def is_word(self) -> bool:
        return self.text[0].isalpha()


@dataclass
class _Atom:
    value: float
    first: int  # token index of the first token
    last: int  # token index of the last token (inclusive) of number + scale + unit
    kind: str  # "digit", "word", "vague", "fraction"
    currency: str | None = None
    unit: str | None = None
    scaled: bool = False
    vague: str | None = None
    percent_only: bool = False  # a proportion such as "a third"


def tokenize(sentence: str) -> list[_Tok]:
    return [_Tok(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(sentence)]


def _adjacent(a: _Tok, b: _Tok) -> bool:
    return a.end == b.start


def _parse_digits(text: str) -> float:
    return float(text.replace(",", ""))


def _word_number(toks: list[_Tok], i: int) -> tuple[float, int] | None:
    """Parse a run of number words starting at token ``i``; return (value, last token index)."""
    total = 0.0
    current = 0.0
    seen_number = False
    last = -1
    j = i
    n = len(toks)
    while j < n:
        w = toks[j].low
        if (
            w in ("a", "an")
            and not seen_number
            and j + 1 < n
            and (toks[j + 1].low in SCALES or toks[j + 1].low == "dozen")
        ):
            current = 1.0
            j += 1
            continue
        if w in UNITS:
            current += UNITS[w]
        elif w in TENS:
            current += TENS[w]
        elif w == "hundred" and (seen_number or current):
            current = (current or 1.0) * 100
        elif w in SCALES and w != "hundred" and (seen_number or current):
            total += (current or 1.0) * SCALES[w]
            current = 0.0
        elif w == "dozen" and (seen_number or current):
            current = (current or 1.0) * 12
        elif (
            w == "half"
            and not seen_number
            and j + 2 < n
            and toks[j + 1].low == "a"
            and (toks[j + 2].low in SCALES or toks[j + 2].low == "dozen")
        ):
            mult = 12.0 if toks[j + 2].low == "dozen" else SCALES[toks[j + 2].low]
            return 0.5 * mult, j + 2
        else:
            break
        seen_number = True
        last = j
        # allow "forty-two", "one hundred and twenty"
        if (
            j + 2 < n
            and toks[j + 1].text in "-\u2011"
            and _adjacent(toks[j], toks[j + 1])
            and (toks[j + 2].low in UNITS or toks[j + 2].low in TENS)
        ):
            j += 2
            continue
        if (
            j + 2 < n
            and toks[j + 1].low == "and"
            and w in SCALES
            and (toks[j + 2].low in UNITS or toks[j + 2].low in TENS)
        ):
            j += 2
            continue
        j += 1
    if not seen_number:
        return None
    return total + current, last


def _fraction(toks: list[_Tok], i: int) -> tuple[float, int, bool] | None:
    """ "a third (of)", "two-thirds", "half (of)", "a quarter of a million", "one in five".

    Returns (value, last token index, is_proportion)."""
    n = len(toks)
    w = toks[i].low
    num = 1.0
    j = i
    if w in ("a", "an", "one") or w in UNITS:
        if j + 1 >= n:
            return None
        num = 1.0 if w in ("a", "an") else float(UNITS[w])
        # "one in five"
        if j + 2 < n and toks[j + 1].low == "in" and w in ("one", "two", "three"):
            nxt = toks[j + 2]
            den: float | None = None
            if nxt.low in UNITS and UNITS[nxt.low] > 1:
                den = float(UNITS[nxt.low])
            elif nxt.low in TENS:
                den = float(TENS[nxt.low])
            elif nxt.is_num and "." not in nxt.text:
                den = _parse_digits(nxt.text)
            if den:
                return 100.0 * num / den, j + 2, True
        j += 1
        if toks[j].text in "-\u2011" and j + 1 < n:
            j += 1
    if toks[j].low not in FRACTIONS:
        return None
    if toks[j].low in ("half", "halves") and j != i:
        return None  # "a half" is rare; "two-halves" is not a quantity
    frac = FRACTIONS[toks[j].low] * num
    # "a quarter of a million", "half a million"
    k = j + 1
    if k < n and toks[k].low == "of":
        k += 1
    if k < n and toks[k].low in ("a", "an"):
        k += 1
    if k < n and toks[k].low in SCALES and toks[k].low != "hundred" and k > j + 1:
        return frac * SCALES[toks[k].low], k, False
    follows_of = j + 1 < n and toks[j + 1].low == "of"
    preceded_by = i > 0 and toks[i - 1].low in ("by", "than", "nearly", "almost", "about", "roughly", "some")
    if follows_of or preceded_by:
        return round(frac * 100, 2), j, True
    return None


def _vague(toks: list[_Tok], i: int) -> tuple[float, str, int] | None:
    for phrase, (floor, qual) in VAGUE.items():
        words = phrase.split()
        if i + len(words) > len(toks):
            continue
        if all(toks[i + k].low == words[k] for k in range(len(words))):
            return floor, qual, i + len(words) - 1
    return None


def _is_time(toks: list[_Tok], i: int) -> bool:
    t = toks[i]
    if i + 2 < len(toks) and toks[i + 1].text == ":" and _adjacent(t, toks[i + 1]) and toks[i + 2].is_num:
        return True
    if i >= 2 and toks[i - 1].text == ":" and _adjacent(toks[i - 1], t) and toks[i - 2].is_num:
        return True
    if i + 1 < len(toks):
        nxt = toks[i + 1].low.replace(".", "")
        if nxt in TIME_SUFFIXES:
            return True
        if nxt in ("a", "p") and i + 2 < len(toks) and toks[i + 2].text == ".":
            return True  # "3 p.m." tokenises as "3", "p", ".", "m", "."
        if nxt == "o'clock":
            return True
        if nxt == "local" and i + 2 < len(toks) and toks[i + 2].low == "time":
            return True
    return False


def _is_year(toks: list[_Tok], i: int, qualifier: bool) -> bool:
    t = toks[i]
    if "," in t.text or "." in t.text or len(t.text) != 4:
        return False
    value = int(t.text)
    if not 1500 <= value <= 2100:
        return False
    if qualifier:
        return False
    prev = toks[i - 1].low if i > 0 else ""
    if prev in YEAR_PREPOSITIONS or prev in MONTHS or prev == ",":
        return True
    if i > 0 and toks[i - 1].text in "$€£¥":
        return False
    nxt = toks[i + 1] if i + 1 < len(toks) else None
    return not (nxt is not None and nxt.is_word and nxt.low in PEOPLE_NOUNS | _COUNTABLE_AFTER_YEAR)


def _is_date_number(toks: list[_Tok], i: int) -> bool:
    prev = toks[i - 1].low.rstrip(".") if i > 0 else ""
    if prev in MONTHS:
        return True
    if i > 1 and toks[i - 1].text == "." and toks[i - 2].low in MONTHS:
        return True
    if i + 1 < len(toks):
        nxt = toks[i + 1].low
        if nxt in MONTHS:
            return True
        if nxt == "of" and i + 2 < len(toks) and toks[i + 2].low in MONTHS:
            return True
    return False


def _is_age(toks: list[_Tok], i: int) -> bool:
    n = len(toks)
    if i + 4 < n and toks[i + 1].text in "-\u2011" and toks[i + 2].low in ("year", "years"):
        return toks[i + 4].low == "old"
    if i + 1 < n and toks[i + 1].low in ("year-old", "years-old"):
        return True
    prev = toks[i - 1].low if i > 0 else ""
    if prev in ("aged", "age", "ages"):
        return True
    # "Paul Gray, 71, from ..." / "Whitlock, 58, is ..."
    if (
        i >= 2
        and toks[i - 1].text == ","
        and toks[i - 2].text[:1].isupper()
        and i + 1 < n
        and toks[i + 1].text in ",)"
        and "," not in toks[i].text
        and _parse_digits(toks[i].text) < 120
    ):
        return True
    return bool(i >= 1 and toks[i - 1].text == "(" and i + 1 < n and toks[i + 1].text == ")")


def _is_identifier(toks: list[_Tok], i: int) -> bool:
    t = toks[i]
    if i > 0:
        prev = toks[i - 1]
        if prev.low.rstrip(".") in ID_WORDS and prev.text[:1].isupper():
            return True
        if prev.low in ("no", "nos", "number", "#") or prev.text == "#":
            return True
        if prev.text == "." and i > 1 and toks[i - 2].low in ("no", "nos"):
            return True
        if _adjacent(prev, t) and prev.is_word:
            return True  # "MH17", "G7"
        if prev.text in "-\u2011/" and _adjacent(prev, t) and i > 1 and _adjacent(toks[i - 2], prev):
            before = toks[i - 2]
            if before.is_word:
                return True  # "COVID-19", "F-16"
            if before.is_num and len(before.text) == 4 and 1500 <= _parse_digits(before.text) <= 2100:
                return True  # "2020-21", "2019/20"
    if i + 1 < len(toks):
        nxt = toks[i + 1]
        if _adjacent(t, nxt) and nxt.is_word:
            lw = nxt.low
            # "19th", "1970s", "3D", "4x4" are not quantities; "10km", "3.5bn" are
            return not (lw in SHORT_SCALES or lw in MEASURE_UNITS or lw in SCALES)
    return False


def _qualifier_before(toks: list[_Tok], i: int) -> tuple[str | None, int]:
    """Return (canonical qualifier, index of its first token) for the words right before token ``i``."""
    for phrase, canon in QUALIFIERS:
        words = phrase.split()
        k = len(words)
        if i - k < 0:
            continue
        if all(toks[i - k + m].low == words[m] for m in range(k)):
            # "over" and "under" must not be part of "over the", "all over" etc.; they are directly before
            return canon, i - k
    return None, i


def _scan_atoms(toks: list[_Tok]) -> list[_Atom]:
    atoms: list[_Atom] = []
    n = len(toks)
    i = 0
    while i < n:
        t = toks[i]
        lw = t.low
        atom: _Atom | None = None
        if t.is_num:
            value = _parse_digits(t.text)
            last = i
            scaled = False
            j = i + 1
            if j < n and toks[j].low in SCALES and toks[j].low != "hundred":
                value *= SCALES[toks[j].low]
                last = j
                scaled = True
            elif (
                j < n
                and toks[j].low in SHORT_SCALES
                and _adjacent(t, toks[j])
                and (toks[j].low != "m" or (i > 0 and toks[i - 1].text in CURRENCY_SYMBOLS))
            ):
                value *= SHORT_SCALES[toks[j].low]
                last = j
                scaled = True
            atom = _Atom(value, i, last, "digit", scaled=scaled)
        elif lw in VAGUE or (lw in ("several", "a", "tens") and _vague(toks, i)):
            v = _vague(toks, i)
            if v:
                floor, qual, last = v
                atom = _Atom(floor, i, last, "vague", vague=qual)
        if atom is None and t.is_word:
            fr = _fraction(toks, i)
            if fr:
                value, last, proportion = fr
                atom = _Atom(value, i, last, "fraction", percent_only=proportion)
                if proportion:
                    atom.unit = "%"
            elif lw in UNITS or lw in TENS or lw in ("a", "an", "half") or lw in SCALES:
                wn = _word_number(toks, i)
                if wn:
                    value, last = wn
                    atom = _Atom(value, i, last, "word", scaled=any(toks[k].low in SCALES for k in range(i, last + 1)))
        if atom is None:
            i += 1
            continue
        atoms.append(atom)
        i = atom.last + 1
    return atoms


def _attach_units(toks: list[_Tok], atom: _Atom) -> None:
    n = len(toks)
    first = toks[atom.first]
    if atom.first > 0:
        prev = toks[atom.first - 1]
        if prev.text in CURRENCY_SYMBOLS and (_adjacent(prev, first) or prev.end + 1 == first.start):
            atom.currency = CURRENCY_SYMBOLS[prev.text]
            if (
                atom.first > 1
                and toks[atom.first - 2].text in ("US", "A", "C", "HK", "NZ")
                and _adjacent(toks[atom.first - 2], prev)
            ):
                atom.currency = {"US": "USD", "A": "AUD", "C": "CAD", "HK": "HKD", "NZ": "NZD"}[
                    toks[atom.first - 2].text
                ]
    j = atom.last + 1
    if j >= n or atom.unit:
        return
    nxt = toks[j]
    lw = nxt.low
    if nxt.text == "%" or lw in ("percent", "pct"):
        atom.unit, atom.last = "%", j
    elif lw == "per" and j + 1 < n and toks[j + 1].low == "cent":
        atom.unit, atom.last = "%", j + 1
    elif lw == "percentage" and j + 1 < n and toks[j + 1].low == "points":
        atom.unit, atom.last = "percentage points", j + 1
    elif lw == "basis" and j + 1 < n and toks[j + 1].low == "points":
        atom.unit, atom.last = "basis points", j + 1
    elif lw in CURRENCY_WORDS and atom.currency is None and atom.kind != "vague":
        atom.currency, atom.last = CURRENCY_WORDS[lw], j
    elif lw in ("-", "\u2011") and j + 1 < n and _adjacent(toks[atom.last], nxt):
        # compound adjectives: "400-kilometre border", "three-day visit"
        unit_word = toks[j + 1].low
        if unit_word in MEASURE_UNITS:
            atom.unit, atom.last = MEASURE_UNITS[unit_word], j + 1
        elif unit_word in TIME_UNITS:
            atom.unit, atom.last = TIME_UNITS[unit_word], j + 1
    elif lw in MEASURE_UNITS and (atom.kind != "vague"):
        unit = MEASURE_UNITS[lw]
        last = j
        if j + 2 < n and toks[j + 1].text == "/" and toks[j + 2].low in ("h", "hr", "hour"):
            unit, last = f"{unit}/h", j + 2
        atom.unit, atom.last = unit, last
    elif lw in TIME_UNITS and atom.kind != "vague":
        atom.unit, atom.last = TIME_UNITS[lw], j


def _counted(toks: list[_Tok], start: int, atom: _Atom) -> tuple[str | None, int]:
    """The thing being counted, read from the words after the figure."""
    n = len(toks)
    j = atom.last + 1
    of_phrase = atom.unit in ("%", "percentage points") or atom.kind in ("vague", "fraction")
    if of_phrase and j < n and toks[j].low == "of":
        j += 1
        while j < n and toks[j].low in ("the", "a", "an", "its", "their", "his", "her", "our"):
            j += 1
    if atom.unit and atom.unit not in ("%", "percentage points"):
        return None, j
    if j < n and toks[j].low in ("more", "additional", "extra", "other", "new", "further"):
        j += 1
    words: list[str] = []
    k = j
    while k < n and len(words) < 3:
        tok = toks[k]
        if not tok.is_word:
            if tok.text in "-\u2011" and words and k + 1 < n and toks[k + 1].is_word and _adjacent(toks[k - 1], tok):
                words[-1] = words[-1] + "-" + toks[k + 1].low
                k += 2
                continue
            break
        w = tok.low
        if w in NP_STOP or w in UNITS or w in TENS or w in MONTHS:
            break
        if tok.text[0].isupper() and not words and w not in PEOPLE_NOUNS:
            break  # a name follows ("40 Kesteren ...") rather than a counted noun
        if w.endswith(("ed", "ing")) and w not in PEOPLE_NOUNS:
            nxt = toks[k + 1] if k + 1 < n else None
            if nxt is not None and nxt.is_word and nxt.low not in NP_STOP and nxt.text[0].islower():
                words.append(w)  # adjective: "armoured vehicles", "suspected cases"
                k += 1
                continue
            if w in OUTCOME_WORDS:
                words.append(w)
                k += 1
            break
        words.append(w)
        k += 1
        if w in OUTCOME_WORDS and w not in ("dead", "missing", "injured", "wounded"):
            break
    # passive outcome: "9,000 homes were flooded", "11 people have been killed"
    if words and words[-1] not in OUTCOME_WORDS:
        m = k
        while m < n and toks[m].low in ("were", "was", "have", "has", "had", "been", "are", "is", "being"):
            m += 1
        if m > k and m < n and toks[m].low in OUTCOME_WORDS:
            words.append(toks[m].low)
    if words:
        return " ".join(words), k
    # look back for a measured noun: "Turnout was 61%", "the death toll to 312"
    back = max(0, start - 7)
    for m in range(start - 1, back - 1, -1):
        w = toks[m].low
        if w in MEASURE_NOUNS:
            if w == "rate" and m > 0 and toks[m - 1].is_word and toks[m - 1].low not in NP_STOP:
                return f"{toks[m - 1].low} rate", j
            if w == "toll" and m > 0 and toks[m - 1].low == "death":
                return "death toll", j
            if w in ("number", "count", "total", "tally") and m + 2 < n and toks[m + 1].low == "of":
                rest = [t.low for t in toks[m + 2 : start] if t.is_word and t.low not in NP_STOP]
                if rest:
                    return " ".join(rest[:3]), j
            return w, j
    return None, j


def _unit_for(atom: _Atom, counted: str | None) -> str | None:
    if atom.currency:
        return atom.currency
    if atom.unit:
        return atom.unit
    if counted:
        head_words = counted.split()
        if any(w in PEOPLE_NOUNS for w in head_words):
            return "people"
    return None


def _is_compound_adjective(toks: list[_Tok], atom: _Atom) -> bool:
    """ "three-way race", "four-lane road", "a 20-storey block": descriptors, not quantities."""
    j = atom.last + 1
    if j + 1 < len(toks) and toks[j].text in "-\u2011" and _adjacent(toks[atom.last], toks[j]):
        nxt = toks[j + 1]
        if not nxt.is_word:
            return False  # a range such as "30-40"
        return not (nxt.low in MEASURE_UNITS or nxt.low in TIME_UNITS or nxt.low == "plus")
    return False


def _outcome_nearby(toks: list[_Tok], j: int) -> bool:
    return any(toks[k].low in OUTCOME_WORDS for k in range(j, min(len(toks), j + 5)))


def find_figures(sentence: str, offset: int = 0) -> list[Figure]:
    """All figures in ``sentence``; offsets in the result are shifted by ``offset``."""
    toks = tokenize(sentence)
    atoms = _scan_atoms(toks)
    kept: list[tuple[_Atom, str | None, int]] = []  # atom, qualifier, first token incl. qualifier
    for atom in atoms:
        lead = atom.first
        if lead > 0 and toks[lead - 1].text in CURRENCY_SYMBOLS:
            lead -= 1  # "an estimated £25m": the qualifier stands before the currency sign
            if lead > 0 and toks[lead - 1].text in _CURRENCY_PREFIXES and _adjacent(toks[lead - 1], toks[lead]):
                lead -= 1
        qual, qstart = _qualifier_before(toks, lead)
        if atom.kind == "digit":
            i = atom.first
            if not atom.scaled:
                if _is_time(toks, i) or _is_date_number(toks, i) or _is_age(toks, i):
                    continue
                if _is_identifier(toks, i):
                    continue
                if _is_year(toks, i, qualifier=qual is not None):
                    continue
        elif atom.kind == "word":
            first = toks[atom.first].low
            if first in ("one", "a", "an") and atom.value == 1:
                nxt = toks[atom.last + 1].low if atom.last + 1 < len(toks) else ""
                if nxt not in PEOPLE_NOUNS and nxt not in {
                    "person",
                    "man",
                    "woman",
                    "child",
                    "soldier",
                    "civilian",
                    "boy",
                    "girl",
                }:
                    continue
                if not _outcome_nearby(toks, atom.last + 1):
                    continue
        if atom.kind in ("digit", "word") and _is_compound_adjective(toks, atom):
            _attach_units(toks, atom)
            if atom.unit is None:
                continue
        else:
            _attach_units(toks, atom)
        kept.append((atom, qual, qstart))

    figures: list[Figure] = []
    used: set[int] = set()
    for idx, (atom, qual, qstart) in enumerate(kept):
        if idx in used:
            continue
        low: float | None = atom.value
        high: float | None = atom.value
        last_atom = atom
        # ranges: "between 30 and 40", "30-40", "30 to 40"
        if idx + 1 < len(kept):
            nxt_atom = kept[idx + 1][0]
            between = toks[atom.last + 1 : nxt_atom.first]
            conn = " ".join(t.low for t in between)
            is_between = atom.first > 0 and toks[atom.first - 1].low == "between"
            from_change = atom.first > 0 and toks[atom.first - 1].low == "from"
            change_before = any(t.low in _CHANGE_WORDS for t in toks[max(0, qstart - 3) : qstart])
            same_kind = nxt_atom.kind == atom.kind and atom.kind in ("digit", "word")
            is_range = (conn == "and" and is_between) or (
                same_kind and not from_change and (conn in _DASHES or (conn == "to" and not change_before))
            )
            if is_range:
                a_val, b_val = atom.value, nxt_atom.value
                if nxt_atom.scaled and not atom.scaled and atom.kind == "digit":
                    scale = nxt_atom.value / _parse_digits(toks[nxt_atom.first].text)
                    if a_val * scale <= b_val:
                        a_val *= scale
                if a_val < b_val:
                    low, high = a_val, b_val
                    qual = "between"
                    if is_between:
                        qstart = atom.first - 1
                    used.add(idx + 1)
                    last_atom = nxt_atom
                    atom.unit = atom.unit or nxt_atom.unit
                    nxt_atom.unit = nxt_atom.unit or atom.unit
                    atom.currency = atom.currency or nxt_atom.currency
                    nxt_atom.currency = nxt_atom.currency or atom.currency
        # trailing qualifiers: "40 or more", "100-plus"
        tail = last_atom.last + 1
        if qual is None and tail + 1 < len(toks) and toks[tail].low == "or" and toks[tail + 1].low == "more":
            qual = "at least"
            last_atom.last = tail + 1
        elif (
            qual is None and tail < len(toks) and toks[tail].text == "+" and _adjacent(toks[last_atom.last], toks[tail])
        ):
            qual = "more than"
            last_atom.last = tail
        elif (
            qual is None
            and tail + 1 < len(toks)
            and toks[tail].text in _DASHES
            and toks[tail + 1].low == "plus"
            and _adjacent(toks[last_atom.last], toks[tail])
        ):
            qual = "more than"
            last_atom.last = tail + 1
        elif qual is None and tail + 1 < len(toks) and toks[tail].low == "or" and toks[tail + 1].low == "so":
            qual = "about"
            last_atom.last = tail + 1
        if atom.kind == "vague":
            qual = atom.vague
            low, high = atom.value, None
        elif qual in OPEN_HIGH:
            high = None
        elif qual in OPEN_LOW:
            low = None
        counted, _ = _counted(toks, qstart, last_atom)
        unit = _unit_for(last_atom if last_atom.unit or last_atom.currency else atom, counted)
        if unit is None:
            unit = _unit_for(atom, counted)
        start = toks[qstart].start
        end = toks[last_atom.last].end
        if atom.currency and qstart == atom.first and atom.first > 0:
            # include the currency symbol in the span
            cur = atom.first - 1
            if cur > 0 and toks[cur - 1].text in ("US", "A", "C", "HK", "NZ") and _adjacent(toks[cur - 1], toks[cur]):
                cur -= 1
            start = toks[cur].start
        figures.append(
            Figure(
                low=_clean(low),
                high=_clean(high),
                qualifier=qual,
                counted=counted,
                unit=unit,
                text=sentence[start:end],
                start=start + offset,
                end=end + offset,
            )
        )
    return figures


def _clean(v: float | None) -> float | None:
    if v is None:
        return None
    r = round(v, 6)
    return float(r)
