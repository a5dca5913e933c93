"""Day by day: what happens to the city's people and which source reports it, when."""

from collections import defaultdict
from typing import Any

import numpy as np

from synth import reference as ref
from synth.areas import addresses
from synth.feeds import FEEDS, Extracts, Table
from synth.population import (
    ACTIVE,
    DEAD,
    HJ,
    JW,
    LD,
    LEFT,
    RESIDENT_ID,
    TEMPLATES,
    YEAR,
    Template,
    World,
    child_relation,
    claim_docs,
    draw_households,
    employers_for,
    han_names,
    minority_names,
    new_hh_numbers,
    resident_ids,
    sample,
    settle,
    surnames,
)
from synth.streams import stream

# Per person (of the group named in the comment) per year, unless said otherwise.
RATES: dict[str, float] = {
    "birth": 0.008,  # all residents; mothers are registered residents
    "death": 0.007,  # all residents, weighted by age
    "hj_out": 0.024,  # registered residents moving their registration out of the city
    "hj_in": 0.03,  # registrations moving in, per registered resident
    "hj_in_floating": 0.4,  # share of those who were already living here as floating residents
    "hj_move": 0.012,  # registered households moving within the city
    "rename": 0.0005,  # registered residents changing their name
    "ld_arrive": 0.072,  # arrivals per floating or foreign resident
    "ld_arrive_foreign": 0.12,  # share of arrivals who are foreigners
    "ld_leave": 0.06,  # floating or foreign households leaving
    "ld_move": 0.036,  # floating or foreign households moving within the city
    "marriage": 0.0054,  # couples per resident
    "divorce": 0.0019,  # couples per resident
    "ins_join": 0.06,  # uninsured people of working age starting to contribute
    "ins_pause": 0.04,  # contributors pausing
    "ins_resume": 0.3,  # paused contributors resuming
    "ins_employer": 0.08,  # contributors changing employer
    "school_update": 0.02,  # students whose record is updated
    "sq_cj_min": 0.005,  # share of residents an officer verifies per day, low end
    "sq_cj_max": 0.01,  # and high end
    "report": 0.5,  # chance an officer reports an arrival, departure or death within a week
}
# People who register into the city: mostly young, some with a family.
MIGRANTS = (
    Template(0.6, (22, 35), 1.0, 0.0, (0, 0), (0, 0), 0.55),
    Template(0.25, (24, 38), 1.0, 1.0, (0, 0), (0, 0), 0.7),
    Template(0.15, (28, 42), 1.0, 1.0, (1, 1), (0, 0), 0.7),
)
BIRTH_REGISTRATION_DAYS = (3, 10)
NAMED_AT_BIRTH = 0.4  # share of birth certificates that already carry the baby's name
STAYING, DIED, GONE = 0, 1, 2  # reference.STATES


def weighted_sample(rng: np.random.Generator, items: np.ndarray, weights: np.ndarray, k: int) -> np.ndarray:
    """k items without replacement, chance proportional to weight (exponential keys)."""
    k = min(k, len(items))
    if k == 0:
        return items[:0]
    keys = rng.exponential(1.0, len(items)) / np.maximum(weights, 1e-12)
    return items[np.argpartition(keys, k - 1)[:k]]


class Timeline:
    """The world and its sources from the first day on; each day yields that day's rows per source."""

    def __init__(self, w: World, seed: int, start: int, days: int) -> None:
        self.w = w
        self.seed = seed
        self.start = start
        self.days = days
        self.x = Extracts(w)
        self.due: dict[int, list[tuple[str, np.ndarray, dict[str, np.ndarray]]]] = defaultdict(list)
        self.out: dict[str, list[Table]] = defaultdict(list)
        self.today = start
        self.day = 0

    def snapshot(self) -> dict[str, Table]:
        """Day 0: full extracts of registration, floating population, insurance and schools."""
        w, day = self.w, self.start
        active = np.flatnonzero(w.view("status") == ACTIVE)
        active = active[np.argsort(w.community[active], kind="stable")]
        ptype = w.ptype[active]
        hj = active[(ptype == HJ) & (w.doc_type[active] == RESIDENT_ID)]
        students = active[self.x.grades(active, day) >= 0]
        insured = active[np.isin(w.insured[active], (1, 2))]
        rng = stream(self.seed, "snapshot")
        return {
            "gaj_hj": self.x.gaj_hj(hj, "在册", w.since[hj]),
            "gaj_ld": self.x.gaj_ld(active[ptype != HJ]),
            "rsj_cb": self.x.rsj_cb(insured, w.ins_since[insured]),
            "jyj_xj": self.x.jyj_xj(rng, students, day),
        }

    def run(self, day: int) -> dict[str, Table]:
        """Everything that happens on one day; every source gets a table (maybe empty)."""
        self.day, self.today = day, self.start + day
        self.out = defaultdict(list)
        rng = stream(self.seed, "day", day)
        for step in (
            self._follow_ups, self._births, self._deaths, self._move_out, self._move_in, self._move_within,
            self._renames, self._floating_arrivals, self._floating_departures, self._floating_moves,
            self._marriages, self._insurance, self._school_updates, self._officers,
        ):  # fmt: skip
            step(rng)
        return {f: Table.concat(FEEDS[f], self.out[f]) for f in FEEDS}

    # helpers

    def _emit(self, table: Table) -> None:
        """Add a non-empty table to today's rows of its source."""
        if len(table):
            self.out[table.feed.name].append(table)

    def _later(
        self, kind: str, rng: np.random.Generator, idx: np.ndarray, lag: tuple[int, int], **extra: Any
    ) -> None:
        """Schedule a follow-up for each person lag days (inclusive range) from today."""
        when = self.day + rng.integers(lag[0], lag[1] + 1, len(idx))
        for d in np.unique(when[when <= self.days]):
            sel = when == d
            self.due[int(d)].append((kind, idx[sel], {k: np.asarray(v)[sel] for k, v in extra.items()}))

    def _report(self, rng: np.random.Generator, idx: np.ndarray, state: int, remark: str) -> None:
        """Maybe an officer of the person's (current) community writes it down within a week."""
        chosen = idx[rng.random(len(idx)) < RATES["report"]]
        w = self.w
        self._later("sq", rng, chosen, (1, 7), state=np.full(len(chosen), state), community=w.community[chosen],
                    address=w.address[chosen], remark=np.full(len(chosen), remark, dtype=object))  # fmt: skip

    def _count(self, rng: np.random.Generator, population: int, rate: str) -> int:
        """Number of events today for a population at a yearly rate (Poisson)."""
        return int(rng.poisson(population * RATES[rate] / 365))

    def _active(self, mask: np.ndarray | None = None) -> np.ndarray:
        """Numbers of the people still here (and matching the mask)."""
        status = self.w.view("status") == ACTIVE
        return np.flatnonzero(status if mask is None else status & mask)

    def _ages(self) -> np.ndarray:
        """Everyone's age in years today."""
        return self.w.age(self.today)

    def _households(self, rng: np.random.Generator, people: np.ndarray, rate: str) -> np.ndarray:
        """Active members of whole households of the given people, picked at the per-person rate."""
        w = self.w
        households = np.unique(w.household[people])
        picked = sample(rng, households, self._count(rng, len(households), rate))
        types = np.unique(w.ptype[people])
        return self._active(np.isin(w.view("household"), picked) & np.isin(w.view("ptype"), types))

    def _close_insurance(self, rng: np.random.Generator, idx: np.ndarray, share: float) -> None:
        """Schedule the end of insurance for a share of the insured among the people."""
        insured = idx[np.isin(self.w.insured[idx], (1, 2)) & (rng.random(len(idx)) < share)]
        self._later("insurance_end", rng, insured, (3, 20))

    def _students(self, idx: np.ndarray) -> np.ndarray:
        """The people of school age (3 to 17 by the 31 August cut-off)."""
        return idx[self.x.grades(idx, self.today) >= 0]

    # follow-ups scheduled on earlier days

    def _follow_ups(self, rng: np.random.Generator) -> None:
        """What earlier events scheduled for today."""
        w = self.w
        for kind, idx, extra in self.due.pop(self.day, []):
            if kind == "birth_registration":
                self._register_births(rng, idx)
            elif kind == "hj_death":
                self._emit(self.x.gaj_hj(idx, "死亡注销", w.death[idx]))
            elif kind == "ld_close":
                self._emit(self.x.gaj_ld(idx, extra["left"]))
            elif kind == "insurance_end":
                idx = idx[np.isin(w.insured[idx], (1, 2))]
                w.insured[idx] = 3
                self._emit(self.x.rsj_cb(idx, self.today - rng.integers(0, 4, len(idx))))
            elif kind == "enrol":
                idx = self._students(idx[w.status[idx] == ACTIVE])
                self._emit(self.x.jyj_xj(rng, idx, self.today))
            elif kind == "sq":
                self._emit(self.x.sq_cj(rng, idx, extra["state"], extra["community"], extra["address"],
                                        extra["remark"], self.today))  # fmt: skip

    def _register_births(self, rng: np.random.Generator, babies: np.ndarray) -> None:
        """The household registration gives the newborn an ID number in the mother's household."""
        w = self.w
        mothers = w.mother[babies]
        region = np.array(w.areas.district_codes)[w.areas.community_district[w.community[babies]]]
        docs = resident_ids(rng, region, w.birth[babies], w.sex[babies])
        w.doc_type[babies] = RESIDENT_ID
        w.doc_no[babies] = claim_docs(w, rng, docs, w.doc_type[babies])
        w.hh_no[babies] = w.hh_no[mothers]
        w.since[babies] = self.today
        self._emit(self.x.gaj_hj(babies, "出生登记", self.today))

    # events of the day

    def _births(self, rng: np.random.Generator) -> None:
        """Registered mothers give birth; the certificate goes out today, the registration later."""
        w = self.w
        age = self._ages()
        k = self._count(rng, len(self._active()), "birth")
        women = self._active((w.view("ptype") == HJ) & (w.view("sex") == 2) & (age >= 20) & (age < 45)
                             & (w.view("hh_no") != ""))  # fmt: skip
        mothers = weighted_sample(rng, women, np.exp(-(((age[women] - 30) / 5) ** 2)), k)
        k = len(mothers)
        babies = w.grow(k)
        fathers = w.spouse[mothers]
        fathers = np.where((fathers >= 0) & (w.status[np.maximum(fathers, 0)] == ACTIVE), fathers, -1)
        sex = np.where(rng.random(k) < 0.515, 1, 2).astype(np.int8)
        w.sex[babies], w.ptype[babies] = sex, HJ
        w.birth[babies] = np.maximum(self.today - rng.integers(0, 3, k), self.start + 1)
        w.mother[babies], w.father[babies] = mothers, fathers
        for field in ("community", "household", "address", "ethnic"):
            getattr(w, field)[babies] = getattr(w, field)[mothers]
        sn = np.where(fathers >= 0, w.surname[np.maximum(fathers, 0)], w.surname[mothers]).astype(str)
        sn = np.where(sn == "", surnames(rng, k), sn)
        names = han_names(rng, sn, sex, w.birth[babies]).astype(object)
        sn[minority_names(rng, names, w.ethnic[babies], sex)] = ""
        w.name[babies], w.surname[babies] = names, sn
        w.relation[babies] = child_relation(sex, grandchild=w.relation[mothers] > 1)
        self._emit(self.x.wjw_cs(rng, babies, rng.random(k) < NAMED_AT_BIRTH))
        self._later("birth_registration", rng, babies, BIRTH_REGISTRATION_DAYS)

    def _deaths(self, rng: np.random.Generator) -> None:
        """Deaths by age; the certificate today, the cancellations later."""
        w = self.w
        age = self._ages()
        k = self._count(rng, len(self._active()), "death")
        alive = self._active(w.view("doc_no") != "")
        dead = weighted_sample(rng, alive, np.exp(0.09 * (age[alive] - 80)), k)
        w.status[dead] = DEAD
        w.death[dead] = np.maximum(self.today - rng.integers(0, 3, len(dead)), w.birth[dead])
        widowed = w.spouse[dead]
        w.spouse[widowed[widowed >= 0]] = -1
        w.spouse[dead] = -1
        self._emit(self.x.wjw_sw(rng, dead, self.today))
        hj = dead[w.ptype[dead] == HJ]
        self._later("hj_death", rng, hj, (2, 10))
        others = dead[w.ptype[dead] != HJ]
        self._later("ld_close", rng, others, (1, 10), left=w.death[others])
        self._close_insurance(rng, dead, 1.0)
        self._report(rng, dead, DIED, "已故")

    def _move_out(self, rng: np.random.Generator) -> None:
        """Registered residents move their registration out of the city."""
        w = self.w
        age = self._ages()
        hj = self._active((w.view("ptype") == HJ) & (w.view("doc_no") != ""))
        k = self._count(rng, len(hj), "hj_out")
        leaving = weighted_sample(rng, hj, ((age[hj] >= 18) & (age[hj] < 65)).astype(float), k)
        self._emit(self.x.gaj_hj(leaving, "迁出", self.today - rng.integers(0, 3, len(leaving))))
        w.status[leaving] = LEFT
        self._close_insurance(rng, leaving, 0.7)
        self._report(rng, leaving, GONE, "已迁出")

    def _move_in(self, rng: np.random.Generator) -> None:
        """Registrations move in: floating residents settling, and newcomers."""
        w = self.w
        age = self._ages()
        k = self._count(rng, int(np.count_nonzero(w.view("ptype")[self._active()] == HJ)), "hj_in")
        k_floating = int(rng.binomial(k, RATES["hj_in_floating"]))
        floating = self._active((w.view("ptype") == LD) & (w.view("doc_type") == RESIDENT_ID) & (age >= 18)
                                & (age < 60))  # fmt: skip
        settling = sample(rng, floating, k_floating)
        self._later("ld_close", rng, settling, (0, 10), left=np.full(len(settling), self.today))
        w.ptype[settling] = HJ
        w.household[settling] = w.households + np.arange(len(settling))
        w.households += len(settling)
        w.relation[settling] = 0
        w.hh_no[settling] = new_hh_numbers(w, rng, len(settling))
        self._emit(self.x.gaj_hj(settling, "迁入", self.today))
        new = settle(w, rng, HJ, draw_households(rng, MIGRANTS, k - len(settling)), self.today, arrived=True)
        self._emit(self.x.gaj_hj(new, "迁入", w.since[new]))
        self._report(rng, new, STAYING, "新迁入")
        self._later("enrol", rng, self._students(new), (3, 20))

    def _relocate(self, rng: np.random.Generator, movers: np.ndarray) -> None:
        """Whole households move to another community of the city."""
        w = self.w
        self._report(rng, movers, GONE, "已搬离")
        hh, inverse = np.unique(w.household[movers], return_inverse=True)
        comm = rng.choice(w.areas.size, len(hh), p=w.areas.community_share)
        w.community[movers] = comm[inverse]
        w.address[movers] = addresses(rng, w.areas, comm)[inverse]
        self._report(rng, movers, STAYING, "新迁入")
        self._emit(self.x.jyj_xj(rng, self._students(movers), self.today))

    def _move_within(self, rng: np.random.Generator) -> None:
        """Registered households move within the city (an information change)."""
        w = self.w
        movers = self._households(rng, self._active(w.view("ptype") == HJ), "hj_move")
        self._relocate(rng, movers)
        registered = movers[w.doc_no[movers] != ""]
        self._emit(self.x.gaj_hj(registered, "信息变更", self.today - rng.integers(0, 3, len(registered))))

    def _renames(self, rng: np.random.Generator) -> None:
        """Registered residents change name; the old one becomes the former name."""
        w = self.w
        hj = self._active((w.view("ptype") == HJ) & (w.view("surname") != "") & (w.view("doc_no") != ""))
        renamed = sample(rng, hj, self._count(rng, len(hj), "rename"))
        w.former[renamed] = w.name[renamed]
        w.name[renamed] = han_names(rng, w.surname[renamed], w.sex[renamed], w.birth[renamed])
        self._emit(self.x.gaj_hj(renamed, "信息变更", self.today))

    def _floating(self) -> np.ndarray:
        """Active floating and foreign residents."""
        return self._active(self.w.view("ptype") != HJ)

    def _floating_arrivals(self, rng: np.random.Generator) -> None:
        """Floating and foreign people arrive and register."""
        k = self._count(rng, len(self._floating()), "ld_arrive")
        k_foreign = int(rng.binomial(k, RATES["ld_arrive_foreign"]))
        for ptype, count in ((LD, k - k_foreign), (JW, k_foreign)):
            new = settle(
                self.w, rng, ptype, draw_households(rng, TEMPLATES[ptype], count), self.today, arrived=True
            )
            self._emit(self.x.gaj_ld(new))
            self._report(rng, new, STAYING, "新迁入")
            self._later("enrol", rng, self._students(new), (3, 20))

    def _floating_households(self, rng: np.random.Generator, rate: str) -> np.ndarray:
        """Members of floating households (not just arrived) picked at a rate."""
        floating = self._floating()
        return self._households(rng, floating[self.w.since[floating] < self.today - 3], rate)

    def _floating_departures(self, rng: np.random.Generator) -> None:
        """Floating households leave; their registrations are closed."""
        w = self.w
        leaving = self._floating_households(rng, "ld_leave")
        left = np.maximum(self.today - rng.integers(0, 4, len(leaving)), w.since[leaving])
        self._emit(self.x.gaj_ld(leaving, left))
        w.status[leaving] = LEFT
        self._close_insurance(rng, leaving, 0.5)
        self._report(rng, leaving, GONE, "已离开")

    def _floating_moves(self, rng: np.random.Generator) -> None:
        """Floating households move: the old registration closed, a new one opened."""
        w = self.w
        movers = self._floating_households(rng, "ld_move")
        self._emit(self.x.gaj_ld(movers, self.today))
        self._relocate(rng, movers)
        w.since[movers] = self.today
        self._emit(self.x.gaj_ld(movers))

    def _marriages(self, rng: np.random.Generator) -> None:
        """Marriages of single people of marrying age, and divorces of couples."""
        w = self.w
        age = self._ages()
        k = self._count(rng, len(self._active()), "marriage")
        single = (w.view("spouse") < 0) & (w.view("doc_type") == RESIDENT_ID) & (w.view("ptype") != JW)
        single &= w.view("doc_no") != ""
        sex = w.view("sex")
        men = self._active(single & (sex == 1) & (age >= 22) & (age < 50))
        women = self._active(single & (sex == 2) & (age >= 20) & (age < 48))
        k = min(k, len(men), len(women))
        men = weighted_sample(rng, men, np.exp(-(((age[men] - 29) / 6) ** 2)), k)
        women = weighted_sample(rng, women, np.exp(-(((age[women] - 27) / 6) ** 2)), k)
        men, women = men[np.argsort(age[men])], women[np.argsort(age[women])]
        w.spouse[men], w.spouse[women] = women, men
        self._emit(self.x.mzj_hy(men, women, "结婚", self.today))
        k = self._count(rng, len(self._active()), "divorce")
        husbands = self._active((w.view("spouse") >= 0) & (sex == 1) & (w.view("doc_type") == RESIDENT_ID))
        wives = w.spouse[husbands]
        ok = (w.status[wives] == ACTIVE) & (w.doc_type[wives] == RESIDENT_ID) & (w.doc_no[wives] != "")
        husbands = sample(rng, husbands[ok], k)
        wives = w.spouse[husbands]
        w.spouse[husbands], w.spouse[wives] = -1, -1
        self._emit(self.x.mzj_hy(husbands, wives, "离婚", self.today))

    def _insurance(self, rng: np.random.Generator) -> None:
        """Insurance joins, pauses, resumptions and employer changes."""
        w = self.w
        age = self._ages()
        working = (age >= 18) & (age < 60) & (w.view("doc_no") != "")
        status = w.view("insured")
        changed: list[np.ndarray] = []
        for rate, mask, new_status, new_employer in (
            ("ins_join", working & np.isin(status, (0, 3)), 1, True),
            ("ins_pause", working & (status == 1), 2, False),
            ("ins_resume", status == 2, 1, False),
            ("ins_employer", working & (status == 1), 1, True),
        ):
            group = self._active(mask)
            picked = sample(rng, group, self._count(rng, len(group), rate))
            picked = np.setdiff1d(picked, np.concatenate([np.zeros(0, dtype=np.int64), *changed]))
            w.insured[picked] = new_status
            if new_employer:
                w.employer[picked] = employers_for(rng, len(w.employers), len(picked))
            changed.append(picked)
        idx = np.concatenate(changed)
        w.ins_since[idx] = self.today - rng.integers(0, 6, len(idx))
        self._emit(self.x.rsj_cb(idx, w.ins_since[idx]))

    def _school_updates(self, rng: np.random.Generator) -> None:
        """Students whose school record is refreshed."""
        students = self._students(self._active())
        picked = sample(rng, students, self._count(rng, len(students), "school_update"))
        self._emit(self.x.jyj_xj(rng, np.sort(picked), self.today))

    def _officers(self, rng: np.random.Generator) -> None:
        """Each day officers verify a sample of residents, uploaded community by community."""
        w = self.w
        active = self._active()
        share = rng.uniform(RATES["sq_cj_min"], RATES["sq_cj_max"])
        seen = sample(rng, active, round(len(active) * share))
        seen = seen[np.argsort(w.community[seen], kind="stable")]
        n = len(seen)
        remarks = np.array(ref.REMARKS, dtype=object)[rng.integers(0, len(ref.REMARKS), n)]
        household_size = np.bincount(w.household[active], minlength=w.households)
        alone = (household_size[w.household[seen]] == 1) & ((self.today - w.birth[seen]) / YEAR >= 70)
        rented = (w.ptype[seen] != HJ) & (rng.random(n) < 0.25)
        remarks = np.where(alone, ref.REMARK_ALONE, np.where(rented, ref.REMARK_RENTED, remarks))
        self._emit(self.x.sq_cj(rng, seen, STAYING, w.community[seen], w.address[seen], remarks, self.today))
