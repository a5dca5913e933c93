"""The city's area tree (district, street, community) and the addresses and schools in it."""

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synth import reference as ref

PERSONS_PER_COMMUNITY = 4000
COMMUNITIES_PER_DISTRICT = 30
COMMUNITIES_PER_STREET = 6


@dataclass(frozen=True)
class Areas:
    """The area tree and, per community, what addresses and officers there look like."""

    rows: list[tuple[str, str, str, str]]
    district_codes: list[str]
    district_names: list[str]
    community_codes: np.ndarray
    community_district: np.ndarray
    community_street: np.ndarray
    community_prefix: np.ndarray
    community_road: np.ndarray
    community_rank: np.ndarray
    community_share: np.ndarray
    schools: np.ndarray

    @property
    def size(self) -> int:
        """Number of communities."""
        return len(self.community_codes)


def _names(rng: np.random.Generator, first: str, second: str, count: int) -> list[str]:
    """Count distinct two-character place names (a number is added once the pool runs out)."""
    pool = [a + b for a in first for b in second if a != b]
    order = rng.permutation(len(pool))
    return [
        pool[order[i % len(pool)]] + ("" if i < len(pool) else str(i // len(pool) + 1)) for i in range(count)
    ]


def _split(rng: np.random.Generator, total: int, parts: int) -> np.ndarray:
    """Split total into parts of at least one each, unevenly."""
    share = rng.uniform(0.6, 1.4, parts)
    return 1 + rng.multinomial(total - parts, share / share.sum())


def build_areas(rng: np.random.Generator, persons: int) -> Areas:
    """One city: districts of streets of communities, about one community per 4,000 persons."""
    n_comm = max(3, round(persons / PERSONS_PER_COMMUNITY))
    n_dist = int(np.clip(-(-n_comm // COMMUNITIES_PER_DISTRICT), 1, len(ref.DISTRICTS)))
    districts = sorted(rng.choice(len(ref.DISTRICTS), n_dist, replace=False).tolist())
    per_district = _split(rng, n_comm, n_dist)
    streets_per = [max(1, round(int(c) / COMMUNITIES_PER_STREET)) for c in per_district]
    street_roots = _names(rng, ref.STREET_FIRST, ref.STREET_SECOND, sum(streets_per))
    comm_roots = _names(rng, ref.COMMUNITY_FIRST, ref.COMMUNITY_SECOND, n_comm)
    rows: list[tuple[str, str, str, str]] = []
    communities: list[tuple[str, int, int, str, str, int]] = []  # code, district, street, prefix, road, rank
    schools: list[list[str]] = []
    for di, (d_idx, n_c, n_s) in enumerate(zip(districts, per_district, streets_per, strict=True)):
        d_code, d_name = ref.DISTRICTS[d_idx]
        rows.append((d_code, d_name, "district", ""))
        rank = 0
        for si, in_street in enumerate(_split(rng, int(n_c), n_s)):
            street = len(schools)
            s_code, s_root = f"{d_code}{si + 1:03d}", street_roots[street]
            rows.append((s_code, f"{s_root}街道", "street", d_code))
            schools.append([
                f"{ref.CITY_SHORT}{d_name[:-1]}{kind}" if kind == "高级中学" else f"{ref.CITY_SHORT}{d_name}{s_root}{kind}"
                for kind in ref.SCHOOL_KINDS
            ])  # fmt: skip
            for ci in range(int(in_street)):
                c_code, root = f"{s_code}{ci + 1:03d}", comm_roots[len(communities)]
                rows.append((c_code, f"{root}社区", "community", s_code))
                road = root + ref.ROAD_SUFFIXES[int(rng.integers(len(ref.ROAD_SUFFIXES)))]
                rank += 1
                communities.append((c_code, di, street, f"{ref.CITY}{d_name}{s_root}街道", road, rank))
    code, district, street_of, prefix, road_of, rank_of = zip(*communities, strict=True)
    share = rng.lognormal(0.0, 0.35, n_comm)
    return Areas(
        rows=rows,
        district_codes=[ref.DISTRICTS[i][0] for i in districts],
        district_names=[ref.DISTRICTS[i][1] for i in districts],
        community_codes=np.array(code, dtype=object),
        community_district=np.array(district, dtype=np.int32),
        community_street=np.array(street_of, dtype=np.int32),
        community_prefix=np.array(prefix, dtype=str),
        community_road=np.array(road_of, dtype=str),
        community_rank=np.array(rank_of, dtype=np.int32),
        community_share=share / share.sum(),
        schools=np.array(schools, dtype=object),
    )


def addresses(rng: np.random.Generator, areas: Areas, community: np.ndarray) -> np.ndarray:
    """A flat address in each given community: road, number, building, unit and room."""
    n = len(community)
    parts = [
        areas.community_prefix[community],
        areas.community_road[community],
        rng.integers(1, 300, n).astype(str),
        np.full(n, "号"),
        rng.integers(1, 40, n).astype(str),
        np.full(n, "幢"),
        rng.integers(1, 5, n).astype(str),
        np.full(n, "单元"),
        (rng.integers(1, 33, n) * 100 + rng.integers(1, 5, n)).astype(str),
        np.full(n, "室"),
    ]
    out: np.ndarray = parts[0]  # numpy types np.strings.add as Any
    for part in parts[1:]:
        out = np.strings.add(out, part)
    return out.astype(object)


def write_areas(path: Path, areas: Areas) -> None:
    """areas.csv: code,name,level,parent_code in UTF-8."""
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(("code", "name", "level", "parent_code"))
        writer.writerows(areas.rows)
