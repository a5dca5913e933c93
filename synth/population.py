"""The true world: every person, household, document and link, one numpy array per attribute."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from registry.normalise.ids import check_char
from synth import reference as ref
from synth.areas import Areas, addresses
from synth.dates import NODATE, ymd
from synth.idcard import id_numbers, sequences
from synth.streams import stream

HJ, LD, JW = 0, 1, 2
ACTIVE, DEAD, LEFT = 0, 1, 2
HEAD, SPOUSE, CHILD, PARENT = 0, 1, 2, 3
RESIDENT_ID, PASSPORT, HK_MACAU, TAIWAN, PERMANENT = 0, 1, 2, 3, 4
SHARES = {HJ: 0.65, LD: 0.31, JW: 0.04}
INSURED = {HJ: (0.68, 0.55), LD: (0.42, 0.10), JW: (0.30, 0.10)}  # working age, 60 and over
YEAR = 365.25


@dataclass(frozen=True)
class Template:
    """A kind of household: head age range (skewed to the young end), spouse, children and parents."""

    weight: float
    ages: tuple[float, float]
    skew: float
    spouse: float
    kids: tuple[int, int]
    parents: tuple[int, int]
    male_head: float


TEMPLATES: dict[int, tuple[Template, ...]] = {
    HJ: (
        Template(0.09, (20, 34), 1.0, 0.0, (0, 0), (0, 0), 0.55),
        Template(0.07, (23, 35), 1.0, 1.0, (0, 0), (0, 0), 0.75),
        Template(0.21, (27, 47), 1.0, 0.95, (1, 2), (0, 0), 0.75),
        Template(0.08, (29, 46), 1.0, 1.0, (1, 2), (1, 2), 0.75),
        Template(0.13, (46, 62), 1.0, 0.92, (1, 1), (0, 0), 0.75),
        Template(0.22, (50, 90), 1.5, 1.0, (0, 0), (0, 0), 0.8),
        Template(0.11, (60, 99), 1.8, 0.0, (0, 0), (0, 0), 0.3),
        Template(0.05, (35, 65), 1.0, 0.0, (0, 1), (0, 0), 0.5),
        Template(0.04, (62, 88), 1.2, 0.6, (1, 1), (0, 0), 0.7),
    ),
    LD: (
        Template(0.50, (18, 45), 1.3, 0.0, (0, 0), (0, 0), 0.62),
        Template(0.18, (22, 50), 1.0, 1.0, (0, 0), (0, 0), 0.8),
        Template(0.22, (25, 45), 1.0, 1.0, (1, 2), (0, 0), 0.8),
        Template(0.05, (45, 62), 1.0, 0.0, (0, 0), (0, 0), 0.6),
        Template(0.05, (28, 45), 1.0, 1.0, (1, 1), (1, 1), 0.8),
    ),
    JW: (
        Template(0.62, (20, 65), 1.3, 0.0, (0, 0), (0, 0), 0.6),
        Template(0.18, (25, 70), 1.2, 1.0, (0, 0), (0, 0), 0.75),
        Template(0.20, (28, 50), 1.0, 1.0, (1, 2), (0, 0), 0.75),
    ),
}

_FIELDS: dict[str, tuple[Any, Any]] = {
    "sex": (np.int8, 0),
    "birth": (np.int32, NODATE),
    "ptype": (np.int8, HJ),
    "doc_type": (np.int8, -1),
    "doc_no": (object, ""),
    "name": (object, ""),
    "surname": (object, ""),
    "former": (object, ""),
    "ethnic": (np.int8, -1),
    "community": (np.int32, 0),
    "household": (np.int32, -1),
    "relation": (np.int8, -1),
    "hh_no": (object, ""),
    "address": (object, ""),
    "phone": (object, ""),
    "origin": (object, ""),
    "status": (np.int8, ACTIVE),
    "death": (np.int32, NODATE),
    "since": (np.int32, NODATE),
    "reason": (np.int8, -1),
    "spouse": (np.int32, -1),
    "mother": (np.int32, -1),
    "father": (np.int32, -1),
    "insured": (np.int8, 0),
    "employer": (np.int32, -1),
    "ins_since": (np.int32, NODATE),
}


class World:
    """Every person of the city, past and present, as parallel arrays indexed by person number."""

    sex: np.ndarray
    birth: np.ndarray
    ptype: np.ndarray
    doc_type: np.ndarray
    doc_no: np.ndarray
    name: np.ndarray
    surname: np.ndarray
    former: np.ndarray
    ethnic: np.ndarray
    community: np.ndarray
    household: np.ndarray
    relation: np.ndarray
    hh_no: np.ndarray
    address: np.ndarray
    phone: np.ndarray
    origin: np.ndarray
    status: np.ndarray
    death: np.ndarray
    since: np.ndarray
    reason: np.ndarray
    spouse: np.ndarray
    mother: np.ndarray
    father: np.ndarray
    insured: np.ndarray
    employer: np.ndarray
    ins_since: np.ndarray

    def __init__(self, areas: Areas, employers: list[str]) -> None:
        self.areas = areas
        self.employers = employers
        self.n = 0
        self.households = 0
        self.docs: set[str] = set()
        self.hh_nos: set[str] = set()
        for field, (dtype, fill) in _FIELDS.items():
            setattr(self, field, np.full(0, fill, dtype=dtype))

    def grow(self, k: int) -> np.ndarray:
        """Room for k more persons; returns their numbers."""
        if self.n + k > len(self.sex):
            capacity = max(self.n + k, len(self.sex) + len(self.sex) // 8 + 256)
            for field, (dtype, fill) in _FIELDS.items():
                old = getattr(self, field)
                new = np.full(capacity, fill, dtype=dtype)
                new[: self.n] = old[: self.n]
                setattr(self, field, new)
        idx = np.arange(self.n, self.n + k)
        self.n += k
        return idx

    def view(self, field: str) -> np.ndarray:
        """The used part of one attribute array."""
        return np.asarray(getattr(self, field)[: self.n])

    def age(self, day: int) -> np.ndarray:
        """Age in years (fractional) of every person on a day."""
        return np.asarray((day - self.view("birth")) / YEAR)


def child_relation(sex: np.ndarray, grandchild: np.ndarray | bool = False) -> np.ndarray:
    """Relation codes (reference.RELATIONS) of a son or daughter (子, 女), or grandson or granddaughter."""
    return np.asarray(1 + sex + 4 * np.asarray(grandchild, dtype=np.int8))


@dataclass(frozen=True)
class Draw:
    """Members of freshly drawn households: household (local number), role, age in years, sex."""

    hh: np.ndarray
    role: np.ndarray
    age: np.ndarray
    sex: np.ndarray
    households: int


def draw_households(rng: np.random.Generator, templates: tuple[Template, ...], persons: int) -> Draw:
    """Households from templates until exactly persons people (the last household may be cut short)."""
    weights = np.array([t.weight for t in templates])
    t = rng.choice(len(templates), persons + 1, p=weights / weights.sum())

    def col(get: Callable[[Template], float]) -> np.ndarray:
        return np.array([get(x) for x in templates])[t]

    lo, hi = col(lambda x: x.ages[0]), col(lambda x: x.ages[1])
    head_age = lo + (hi - lo) * rng.random(len(t)) ** col(lambda x: x.skew)
    has_sp = (rng.random(len(t)) < col(lambda x: x.spouse)).astype(np.int64)
    kids = rng.integers(col(lambda x: x.kids[0]), col(lambda x: x.kids[1]) + 1)
    parents = rng.integers(col(lambda x: x.parents[0]), col(lambda x: x.parents[1]) + 1)
    size = 1 + has_sp + kids + parents
    ends = np.cumsum(size)
    used = int(np.searchsorted(ends, persons)) + 1
    hh = np.repeat(np.arange(used), size[:used])[:persons]
    pos = np.arange(persons) - (ends - size)[hh]
    sp, nk, npar = has_sp[hh], kids[hh], parents[hh]
    role = np.select([pos == 0, pos <= sp, pos <= sp + nk], [HEAD, SPOUSE, CHILD], PARENT)
    head_male = (rng.random(used) < col(lambda x: x.male_head)[:used])[hh]
    u = rng.random(persons)
    parent_male = np.where(npar == 2, pos - sp - nk == 1, u < 0.35)
    male = np.select(
        [role == HEAD, role == SPOUSE, role == CHILD], [head_male, ~head_male, u < 0.515], parent_male
    )
    a = head_age[hh]
    gap = 22 + rng.random(persons) * np.maximum(np.minimum(38, a) - 22, 0)
    age = np.select(
        [role == HEAD, role == SPOUSE, role == CHILD],
        [
            a,
            np.maximum(20, a + np.where(head_male, -2, 2) + rng.normal(0, 3, persons)),
            np.maximum(0.01, a - gap),
        ],
        np.minimum(102, a + 22 + rng.random(persons) * 12),
    )
    return Draw(hh=hh, role=role, age=age, sex=np.where(male, 1, 2).astype(np.int8), households=used)


def _pick(rng: np.random.Generator, items: tuple[str, ...], n: int) -> np.ndarray:
    """n random items as a str array."""
    return np.array(items)[rng.integers(0, len(items), n)]


def han_names(
    rng: np.random.Generator, surname: np.ndarray, sex: np.ndarray, birth: np.ndarray
) -> np.ndarray:
    """Surname plus one or two given-name characters typical of the birth year and sex."""
    era = np.digitize(ymd(birth)[0], [1965, 1995])
    given = np.empty(len(sex), dtype="<U2")
    for (e, s), chars in ref.GIVEN_CHARS.items():
        m = (era == e) & (sex == s)
        k = int(m.sum())
        pool = np.array(list(chars))
        c1, c2 = pool[rng.integers(0, len(pool), k)], pool[rng.integers(0, len(pool), k)]
        given[m] = np.where(rng.random(k) < ref.SINGLE_GIVEN_SHARE[e], c1, np.strings.add(c1, c2))
    return np.strings.add(surname.astype(str), given)


def surnames(rng: np.random.Generator, n: int) -> np.ndarray:
    """n surnames by national frequency."""
    w = np.array([f for _, f in ref.SURNAMES])
    return np.array([s for s, _ in ref.SURNAMES])[rng.choice(len(w), n, p=w / w.sum())]


def _foreign_names(
    rng: np.random.Generator, style: np.ndarray, sex: np.ndarray, hh: np.ndarray
) -> np.ndarray:
    """Names of foreigners by style (west/korea/japan), the family name shared by a household."""
    n = len(sex)
    out = np.empty(n, dtype=object)
    for s_style, family, given in (
        ("west", ref.WEST_FAMILY, ref.WEST_GIVEN),
        ("korea", ref.KOREAN_FAMILY, ref.KOREAN_GIVEN),
        ("japan", ref.JAPANESE_FAMILY, ref.JAPANESE_GIVEN),
    ):
        m = style == s_style
        fam = _pick(rng, family, int(hh.max()) + 1 if n else 0)[hh[m]]
        first = np.where(sex[m] == 1, _pick(rng, given[1], int(m.sum())), _pick(rng, given[2], int(m.sum())))
        out[m] = (
            np.strings.add(np.strings.add(first, ref.DOT), fam)
            if s_style == "west"
            else np.strings.add(fam, first)
        )
    return out


def minority_names(
    rng: np.random.Generator, names: np.ndarray, ethnic: np.ndarray, sex: np.ndarray
) -> np.ndarray:
    """Give dotted names (given · father's name) and Tibetan names to the groups that use them; returns who."""
    eth = [e for e, _ in ref.ETHNICITIES]
    dotted = np.isin(ethnic, [eth.index(e) for e in ref.DOTTED_ETHNICITIES])
    k = int(dotted.sum())
    given = np.where(sex[dotted] == 1, _pick(rng, ref.DOTTED_GIVEN[1], k), _pick(rng, ref.DOTTED_GIVEN[2], k))
    names[dotted] = np.strings.add(np.strings.add(given, ref.DOT), _pick(rng, ref.DOTTED_GIVEN[1], k))
    tibetan = ethnic == eth.index("藏族")
    k = int(tibetan.sum())
    names[tibetan] = np.strings.add(_pick(rng, ref.TIBETAN_WORDS, k), _pick(rng, ref.TIBETAN_WORDS, k))
    who: np.ndarray = dotted | tibetan  # numpy types `|` on a plain ndarray as Any
    return who


def origins(rng: np.random.Generator, n: int) -> np.ndarray:
    """n origin county codes outside the city, by province share."""
    share = np.array([s for s, _ in ref.ORIGINS])
    prov = rng.choice(len(share), n, p=share / share.sum())
    counties = [np.array(c) for _, c in ref.ORIGINS]
    out = np.empty(n, dtype="<U6")
    for i, c in enumerate(counties):
        m = prov == i
        out[m] = c[rng.integers(0, len(c), int(m.sum()))]
    return out


def _reissue(rng: np.random.Generator, doc: str, doc_type: int) -> str:
    """Another number of the same kind, for a collision with a number already issued."""
    if doc_type in (RESIDENT_ID, PERMANENT):
        seq = int(rng.integers(0, 450)) * 2 + (1 if int(doc[16]) % 2 else 2)
        body = f"{doc[:14]}{seq:03d}"
        return body + check_char(body)
    return doc[:-4] + f"{int(rng.integers(0, 10000)):04d}"


def claim_docs(w: World, rng: np.random.Generator, docs: np.ndarray, doc_type: np.ndarray) -> np.ndarray:
    """Make every new document number unique in the world and record it as issued."""
    out = docs.astype(object)
    for i, doc in enumerate(out):
        while doc in w.docs:
            doc = _reissue(rng, doc, int(doc_type[i]))
        out[i] = doc
        w.docs.add(doc)
    return out


def resident_ids(
    rng: np.random.Generator, region: np.ndarray, birth: np.ndarray, sex: np.ndarray
) -> np.ndarray:
    """18-digit numbers for people of the given birth regions, dates and sexes."""
    keys = region.astype(np.int64) * 10**6 + (birth.astype(np.int64) - NODATE)
    return id_numbers(region.astype(np.int64), birth, sequences(keys, sex == 1, rng))


def _local_regions(
    rng: np.random.Generator, w: World, community: np.ndarray, birth: np.ndarray
) -> np.ndarray:
    """Birth regions of people registered in the city: mostly their district, some merged-away codes."""
    n = len(community)
    districts = np.array(w.areas.district_codes)
    own = districts[w.areas.community_district[community]]
    other = districts[rng.integers(0, len(districts), n)]
    legacy = _pick(rng, ref.LEGACY_DISTRICTS, n)
    u = rng.random(n)
    old = ymd(birth)[0] < 2015
    region = np.where(u < 0.7, own, np.where(u < 0.85, other, origins(rng, n)))
    return np.where(old & (rng.random(n) < 0.12) & (u < 0.85), legacy, region)


def _foreign_docs(
    rng: np.random.Generator, kind: np.ndarray, nat: np.ndarray, birth: np.ndarray, sex: np.ndarray
) -> np.ndarray:
    """Passport, permit or permanent-residence numbers by document kind and nationality."""
    n = len(kind)
    nats = ref.NATIONALITIES
    letters = np.array([x[2] for x in nats])[nat]
    digits = np.array([x[3] for x in nats])[nat]
    values = (rng.random(n) * 10.0**digits).astype(np.int64)
    passport = np.array([f"{lt}{v:0{d}d}" for lt, d, v in zip(letters, digits, values, strict=True)])
    hk = np.strings.add(np.where(rng.random(n) < 0.85, "H", "M"), rng.integers(10**7, 10**8, n).astype(str))
    tw = rng.integers(10**7, 10**8, n).astype(str)
    codes = np.array([x[0] for x in nats])[nat]
    perm = resident_ids(rng, 933000 + codes, birth, sex)
    return np.select([kind == PASSPORT, kind == HK_MACAU, kind == TAIWAN], [passport, hk, tw], perm)


def settle(w: World, rng: np.random.Generator, ptype: int, draw: Draw, day: int, arrived: bool) -> np.ndarray:
    """Put drawn households into the world as people of one population type; returns their numbers."""
    k, n_hh = len(draw.role), draw.households
    idx = w.grow(k)
    if k == 0:
        return idx
    hh, role, sex = draw.hh, draw.role, draw.sex
    birth = (day - np.ceil(draw.age * YEAR)).astype(np.int32)
    w.sex[idx], w.birth[idx], w.ptype[idx] = sex, birth, ptype
    w.household[idx] = w.households + hh
    w.households += n_hh
    comm = rng.choice(w.areas.size, n_hh, p=w.areas.community_share)
    w.community[idx] = comm[hh]
    w.address[idx] = addresses(rng, w.areas, comm)[hh]
    w.relation[idx] = np.select(
        [role == HEAD, role == SPOUSE, role == CHILD], [0, 1, child_relation(sex)], 3 + sex
    )

    def member(mask: np.ndarray) -> np.ndarray:
        out = np.full(n_hh, -1, dtype=np.int64)
        out[hh[mask]] = idx[mask]
        return out

    head, spouse = member(role == HEAD), member(role == SPOUSE)
    grandpa, grandma = member((role == PARENT) & (sex == 1)), member((role == PARENT) & (sex == 2))
    head_male = np.zeros(n_hh, dtype=bool)
    head_male[hh[role == HEAD]] = sex[role == HEAD] == 1
    for a, b in ((head, spouse), (grandpa, grandma)):
        both = (a >= 0) & (b >= 0)
        w.spouse[a[both]], w.spouse[b[both]] = b[both], a[both]
    dad, mum = np.where(head_male, head, spouse), np.where(head_male, spouse, head)
    kids = idx[role == CHILD]
    w.father[kids], w.mother[kids] = dad[hh[role == CHILD]], mum[hh[role == CHILD]]
    heads = head >= 0
    w.father[head[heads]], w.mother[head[heads]] = grandpa[heads], grandma[heads]

    # Names: children take the father's surname (a few the mother's), the head's father the head's.
    head_sn, sp_sn, own_sn = surnames(rng, n_hh), surnames(rng, n_hh), surnames(rng, k)
    father_sn = np.where(head_male | (spouse < 0), head_sn, sp_sn)[hh]
    mother_sn = np.where(head_male, sp_sn, head_sn)[hh]
    child_sn = np.where(rng.random(k) < 0.08, mother_sn, father_sn)
    sn = np.select(
        [role == HEAD, role == SPOUSE, role == CHILD, sex == 1],
        [head_sn[hh], sp_sn[hh], child_sn, head_sn[hh]],
        own_sn,
    )
    names = han_names(rng, sn, sex, birth).astype(object)
    eth_w = np.array([f for _, f in ref.ETHNICITIES])
    ethnic = rng.choice(len(eth_w), n_hh, p=eth_w / eth_w.sum())[hh].astype(np.int8)
    if ptype == JW:
        kinds, shares = zip(*ref.FOREIGN_DOCS, strict=True)
        kind = np.array(kinds)[rng.choice(len(kinds), n_hh, p=np.array(shares) / sum(shares))][hh]
        nat_w = np.array([x[4] for x in ref.NATIONALITIES])
        nat = rng.choice(len(nat_w), n_hh, p=nat_w / nat_w.sum())[hh]
        chinese = (kind == HK_MACAU) | (kind == TAIWAN)
        style = np.where(chinese, "", np.array([x[1] for x in ref.NATIONALITIES])[nat])
        names = np.where(chinese, names, _foreign_names(rng, style, sex, hh))
        sn = np.where(chinese, sn, "")
        ethnic = np.where(chinese, 0, -1).astype(np.int8)
        docs = _foreign_docs(rng, kind, nat, birth, sex)
        doc_type = kind
        w.origin[idx] = np.select([kind == TAIWAN, kind == HK_MACAU], ["710000", "810000"], "")
        w.origin[idx[(kind == HK_MACAU) & np.strings.startswith(docs, "M")]] = "820000"
    else:
        sn[minority_names(rng, names, ethnic, sex)] = ""
        origin = origins(rng, n_hh)[hh]
        region = _local_regions(rng, w, comm[hh], birth) if ptype == HJ and not arrived else origin
        docs = resident_ids(rng, region, birth, sex)
        doc_type = np.zeros(k, dtype=np.int8)
        if ptype == LD:
            w.origin[idx] = origin
    w.name[idx], w.surname[idx], w.ethnic[idx] = names, sn.astype(object), ethnic
    w.doc_type[idx] = doc_type
    w.doc_no[idx] = claim_docs(w, rng, docs, doc_type)
    if ptype == HJ:
        w.hh_no[idx] = new_hh_numbers(w, rng, n_hh)[hh]
        renamed = idx[(rng.random(k) < 0.02) & (sn != "")]
        w.former[renamed] = han_names(rng, w.surname[renamed], w.sex[renamed], w.birth[renamed])
    age = draw.age
    w.phone[idx] = np.where((age >= 14) & ((age < 80) | (rng.random(k) < 0.5)), phones(rng, k), "")
    _arrival(w, rng, idx, ptype, role, day, arrived)
    if not arrived:
        _insure(w, rng, idx, ptype, day)
    return idx


def new_hh_numbers(w: World, rng: np.random.Generator, k: int) -> np.ndarray:
    """k new 9-digit household numbers, unique in the world."""
    numbers = rng.integers(10**8, 10**9, k).astype(str).astype(object)
    for i, no in enumerate(numbers):
        while no in w.hh_nos:
            no = str(int(rng.integers(10**8, 10**9)))
        numbers[i] = no
        w.hh_nos.add(no)
    return numbers


def sample(rng: np.random.Generator, items: np.ndarray, k: int) -> np.ndarray:
    """Up to k distinct items at random."""
    return rng.choice(items, min(k, len(items)), replace=False) if len(items) else items


def phones(rng: np.random.Generator, n: int) -> np.ndarray:
    """n mobile numbers."""
    prefix = np.array(ref.PHONE_PREFIXES, dtype=np.int64)[rng.integers(0, len(ref.PHONE_PREFIXES), n)]
    return (prefix * 10**8 + rng.integers(0, 10**8, n)).astype(str)


def _arrival(
    w: World,
    rng: np.random.Generator,
    idx: np.ndarray,
    ptype: int,
    role: np.ndarray,
    day: int,
    arrived: bool,
) -> None:
    """Registration date (since) and, for the floating population, the reason of residence."""
    birth = w.birth[idx]
    k = len(idx)
    since: np.ndarray
    if arrived:
        since = day - rng.integers(0, 4, k)
    elif ptype == HJ:
        born_here = np.isin(w.doc_no[idx].astype("<U6"), [*w.areas.district_codes, *ref.LEGACY_DISTRICTS])
        adult = birth + 18 * YEAR
        since = np.where(
            born_here, birth + rng.integers(5, 90, k), day - rng.random(k) * np.maximum(day - adult, 0)
        )
    else:
        since = day - rng.exponential(700, k)
    w.since[idx] = np.clip(since, birth + 1, day).astype(np.int32)
    if ptype == HJ:
        return
    u = rng.random(k)
    young = (day - birth) / YEAR < 25
    if ptype == LD:
        head = np.where(young & (u < 0.3), 2, np.where(u < 0.75, 0, 1))
        reason = np.select(
            [role == HEAD, role == SPOUSE, role == CHILD], [head, np.where(u < 0.5, 4, 0), 4], 3
        )
    else:
        reason = np.where(role == HEAD, np.where(u < 0.7, 5, 6), 7)
    w.reason[idx] = reason


def _insure(w: World, rng: np.random.Generator, idx: np.ndarray, ptype: int, day: int) -> None:
    """Social insurance of adults on the day of the first snapshot."""
    age = (day - w.birth[idx]) / YEAR
    working, retired = INSURED[ptype]
    p = np.where(age < 18, 0.0, np.where(age < 60, working, retired))
    insured = idx[rng.random(len(idx)) < p]
    k = len(insured)
    w.insured[insured] = np.where(rng.random(k) < 0.1, 2, 1)
    w.employer[insured] = employers_for(rng, len(w.employers), k)
    start = w.birth[insured] + 18 * YEAR
    w.ins_since[insured] = np.clip(day - rng.exponential(1500, k), start, day).astype(np.int32)


def employers_for(rng: np.random.Generator, count: int, n: int) -> np.ndarray:
    """n employers, big ones more often (Zipf-like)."""
    return np.minimum(rng.zipf(1.3, n) - 1, count - 1)


def employer_names(rng: np.random.Generator, areas: Areas, count: int) -> list[str]:
    """Distinct employer names: flexible employment first (the most common), public bodies, companies."""
    names = [p.format(d=d) for d in areas.district_names for p in ref.PUBLIC_EMPLOYERS]
    rng.shuffle(names)
    names.insert(0, ref.FLEXIBLE_EMPLOYMENT)
    seen = set(names)
    words = ref.EMPLOYER_WORDS
    while len(names) < count:
        brand = words[int(rng.integers(len(words)))] + words[int(rng.integers(len(words)))]
        trade = ref.EMPLOYER_TRADES[int(rng.integers(len(ref.EMPLOYER_TRADES)))]
        form = ref.EMPLOYER_FORMS[int(rng.integers(len(ref.EMPLOYER_FORMS)))]
        city = "杭州" if rng.random() < 0.8 else "浙江"
        name = f"{city}{brand}{trade}{form}"
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def build_world(seed: int, areas: Areas, persons: int, day: int) -> World:
    """The city's people on the first day: registered, floating and foreign households."""
    w = World(areas, employer_names(stream(seed, "employers"), areas, max(30, persons // 250)))
    n_hj, n_ld = round(persons * SHARES[HJ]), round(persons * SHARES[LD])
    for ptype, count in ((HJ, n_hj), (LD, n_ld), (JW, persons - n_hj - n_ld)):
        rng = stream(seed, "population", ptype)
        settle(w, rng, ptype, draw_households(rng, TEMPLATES[ptype], count), day, arrived=False)
    return w
