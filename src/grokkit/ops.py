"""The twelve binary operations of Power et al. (2022), Appendix A.1.1, and x*y, on element indices.

Every operation works on *element indices* 0..n-1 so that the rest of grokkit (tokens, tables,
models) never needs to know what the elements mean.

Modular operations (``x+y`` ... ``x^3+xy^2+y``)
    Elements are the residues 0..p-1, with index == residue and names "0".."p-1".
    ``x/y`` is x * y^-1 mod p on the domain y != 0 and needs a prime p (otherwise some y have no
    inverse). ``x*y`` (not among the twelve; Section 3.2 of the paper mentions it, and it is the
    task of Grokfast, Lee et al. 2024) is x * y mod p on the same domain 0 <= x < p, 0 < y < p, as
    in the Grokfast code, whose table is that of x/y with the product as the answer; any p >= 2.
    ``x/y_or_x-y`` is x/y when y is odd and x-y otherwise, on all (x, y); it needs a prime p too.
    The other operations accept any modulus >= 2. Arithmetic is int64 with a reduction mod p after
    every product, so it is exact while p**2 < 2**63 (p up to about 3*10^9).

S5 operations (``s5_xy``, ``s5_xyx^-1``, ``s5_xyx``)
    Elements are the 120 permutations of {0, 1, 2, 3, 4}, indexed in the order of
    ``itertools.permutations(range(5))`` (lexicographic, index 0 is the identity) and named in
    one-line notation: "10234" is the permutation 0->1, 1->0, 2->2, 3->3, 4->4.

    Composition convention: (x·y)(i) = x(y(i)) -- y is applied first, as in function
    composition. All three S5 operations use it: ``s5_xy`` = x·y, ``s5_xyx^-1`` = x·y·x^-1,
    ``s5_xyx`` = x·y·x.
    The modulus is meaningless for S5 and is ignored (``Operation.modulus`` is None).
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np

from grokkit.errors import InputError, unknown

PAPER_OPERATIONS: tuple[str, ...] = (
    "x+y",
    "x-y",
    "x/y",
    "x/y_or_x-y",
    "x^2+y^2",
    "x^2+xy+y^2",
    "x^2+xy+y^2+x",
    "x^3+xy",
    "x^3+xy^2+y",
    "s5_xy",
    "s5_xyx^-1",
    "s5_xyx",
)
# Every operation grokkit knows: the paper's twelve (Figure 2, right, sweeps exactly these), then
# the ones later work uses.
OPERATION_NAMES: tuple[str, ...] = (*PAPER_OPERATIONS, "x*y")

S5_OPERATIONS: frozenset[str] = frozenset({"s5_xy", "s5_xyx^-1", "s5_xyx"})
PRIME_OPERATIONS: frozenset[str] = frozenset({"x/y", "x/y_or_x-y"})
NONZERO_Y_OPERATIONS: frozenset[str] = frozenset({"x/y", "x*y"})  # domain 0 < y < p


class OperationError(InputError):
    """Bad operation name or modulus; the message is one line, fit for a CLI error."""


def is_prime(n: int) -> bool:
    """Trial division: moduli are small (a table has p^2 rows), so this is never the bottleneck."""
    if n < 2:
        return False
    if n < 4:
        return True
    if n % 2 == 0:
        return False
    f = 3
    while f * f <= n:
        if n % f == 0:
            return False
        f += 2
    return True


# --------------------------------------------------------------------------- modular arithmetic


@lru_cache(maxsize=16)
def _inverse_table(p: int) -> np.ndarray:
    """inv[y] = y^-1 mod p for prime p (Fermat); inv[0] = 0 is a placeholder never used."""
    inv = np.array([pow(v, p - 2, p) for v in range(p)], dtype=np.int64)
    inv[0] = 0
    return inv


def _divide(x: np.ndarray, y: np.ndarray, p: int) -> np.ndarray:
    return x * _inverse_table(p)[y] % p


def _divide_or_subtract(x: np.ndarray, y: np.ndarray, p: int) -> np.ndarray:
    # y odd implies y != 0, so the inverse table is only read where it is defined.
    return np.where(y % 2 == 1, _divide(x, y, p), (x - y) % p)


def _cube(x: np.ndarray, p: int) -> np.ndarray:
    return x * x % p * x % p


_MODULAR: dict[str, Callable[[np.ndarray, np.ndarray, int], np.ndarray]] = {
    "x+y": lambda x, y, p: (x + y) % p,
    "x-y": lambda x, y, p: (x - y) % p,
    "x/y": _divide,
    "x/y_or_x-y": _divide_or_subtract,
    "x*y": lambda x, y, p: x * y % p,
    "x^2+y^2": lambda x, y, p: (x * x % p + y * y % p) % p,
    "x^2+xy+y^2": lambda x, y, p: (x * x % p + x * y % p + y * y % p) % p,
    "x^2+xy+y^2+x": lambda x, y, p: (x * x % p + x * y % p + y * y % p + x) % p,
    "x^3+xy": lambda x, y, p: (_cube(x, p) + x * y % p) % p,
    "x^3+xy^2+y": lambda x, y, p: (_cube(x, p) + x * (y * y % p) % p + y) % p,
}


# --------------------------------------------------------------------------- the group S5


@lru_cache(maxsize=1)
def _s5() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(perms [120, 5], compose [120, 120], inverse [120]) under (x·y)(i) = x(y(i))."""
    perms = np.array(list(itertools.permutations(range(5))), dtype=np.int64)
    # A permutation's one-line digits read as a base-5 number give a unique code -> index lookup.
    weights = 5 ** np.arange(4, -1, -1, dtype=np.int64)
    index_of = np.full(5**5, -1, dtype=np.int64)
    index_of[perms @ weights] = np.arange(len(perms))
    # composed[a, b, i] = perms[a][perms[b][i]]: b first, then a.
    composed = np.take_along_axis(
        np.broadcast_to(perms[:, None, :], (120, 120, 5)),
        np.broadcast_to(perms[None, :, :], (120, 120, 5)),
        axis=2,
    )
    compose = index_of[composed @ weights]
    inverse = index_of[np.argsort(perms, axis=1) @ weights]
    return perms, compose, inverse


def s5_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(perms [120, 5], compose [120, 120], inverse [120]); compose[a, b] = a∘b, b acting first."""
    return _s5()


def _s5_apply(name: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    _, compose, inverse = _s5()
    xy = compose[x, y]
    if name == "s5_xy":
        return xy
    if name == "s5_xyx^-1":
        return compose[xy, inverse[x]]
    return compose[xy, x]  # s5_xyx


# --------------------------------------------------------------------------- public API


@dataclass(frozen=True)
class Operation:
    """A validated binary operation; use :func:`get_operation` to build one."""

    name: str
    modulus: int | None  # None for S5
    element_names: tuple[str, ...]  # token names; element index i is called element_names[i]

    @property
    def n_elements(self) -> int:
        return len(self.element_names)

    @property
    def n_equations(self) -> int:
        """Rows of the whole table, known without building it."""
        return equation_count(self.name, self.n_elements)

    def domain(self) -> tuple[np.ndarray, np.ndarray]:
        """All valid (x, y) pairs as int64 index arrays, row-major: x slowest, then y."""
        n = self.n_elements
        x, y = np.divmod(np.arange(n * n, dtype=np.int64), n)
        if self.name in NONZERO_Y_OPERATIONS:  # x/y: division by zero is undefined (0 < y < p)
            keep = y != 0
            x, y = x[keep], y[keep]
        return x, y

    def apply(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Vectorised x ∘ y on element indices (int64 arrays of equal shape) -> result indices."""
        x = np.asarray(x, dtype=np.int64)
        y = np.asarray(y, dtype=np.int64)
        if self.name in S5_OPERATIONS:
            return _s5_apply(self.name, x, y)
        if self.name in NONZERO_Y_OPERATIONS and np.any(y == 0):
            raise OperationError(f"{self.name} is defined on 0 < y < p; got y = 0")
        assert self.modulus is not None
        return _MODULAR[self.name](x, y, self.modulus)


# Building a table holds about this many bytes per equation at its peak (index arrays, the
# operation's int64 intermediates, the result); measured 40 for x^3+xy^2+y, rounded up.
BYTES_PER_EQUATION = 64
SLOW_TABLE_EQUATIONS = 1_000_000  # above this, evaluating the whole table takes seconds


def physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not POSIX: no limit known
        return None


def available_memory() -> tuple[int, str] | None:
    """The memory this process can still get, and how to say whose it is: the least of the
    machine's, what its address-space limit (``ulimit -v``) leaves above what it maps already,
    and what its cgroup's limit (a container's, a scheduler's) leaves above what the group uses.
    A model that fits the machine but not the limit would otherwise end in an allocation
    traceback. None: nothing is known (not POSIX)."""
    found = []
    physical = physical_memory()
    if physical is not None:
        found.append((physical, "this machine's {}"))
    left = _address_space_left()
    if left is not None:
        found.append((left, "the {} this process's memory limit (ulimit -v) leaves it"))
    left = _cgroup_memory_left()
    if left is not None:
        found.append((left, "the {} this process's cgroup memory limit leaves it"))
    return min(found, key=lambda f: f[0]) if found else None


def memory_text(memory: tuple[int, str]) -> str:
    """``this machine's 16.0 GB``, or the limit's words, for a refusal's message."""
    return memory[1].format(byte_size_text(memory[0]))


def _address_space_left() -> int | None:
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, OSError, ValueError):
        return None
    if soft == resource.RLIM_INFINITY:
        return None
    mapped = _proc_status_kb("VmSize")
    return max(0, soft - (mapped or 0) * 1024)


def _proc_status_kb(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


# cgroup v2, then v1: (the limit, what the group uses now)
_CGROUP_FILES = (
    ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
    (
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
        "/sys/fs/cgroup/memory/memory.usage_in_bytes",
    ),
)


def _cgroup_memory_left() -> int | None:
    for limit_file, usage_file in _CGROUP_FILES:
        try:
            with open(limit_file) as f:
                text = f.read().strip()
            if text == "max":
                return None
            limit = int(text)
            with open(usage_file) as f:
                used = int(f.read().strip())
        except (OSError, ValueError):
            continue
        if limit >= 1 << 60:  # v1 writes "no limit" as a huge number
            return None
        return max(0, limit - used)
    return None


def equation_count(name: str, n_elements: int) -> int:
    return (
        n_elements * (n_elements - 1) if name in NONZERO_Y_OPERATIONS else n_elements * n_elements
    )


def table_size_text(name: str, modulus: int) -> str:
    """``x+y mod 1009 has 1,018,081 equations (about 65.2 MB to build)``."""
    n_equations = equation_count(name, modulus)
    return (
        f"{name} mod {modulus} has {n_equations:,} equations "
        f"(about {byte_size_text(n_equations * BYTES_PER_EQUATION)} to build)"
    )


def check_table_size(name: str, modulus: int) -> None:
    """Refuse, before any allocation, a table that cannot fit in half of the memory this process
    can get (``available_memory``; grokkit.data.make_table warns about one that fits but is
    slow)."""
    memory = available_memory()
    if memory is not None and equation_count(name, modulus) * BYTES_PER_EQUATION > memory[0] // 2:
        raise OperationError(
            f"{table_size_text(name, modulus)}, more than half of {memory_text(memory)}; "
            "choose a smaller modulus"
        )


def byte_size_text(n_bytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n_bytes < 1000 or unit == "TB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1000
    return f"{n_bytes:.1f} TB"


def get_operation(name: str, modulus: int = 97) -> Operation:
    """Validate ``name`` and ``modulus`` and build the operation; raises OperationError."""
    if name not in OPERATION_NAMES:
        raise OperationError(unknown("operation", name, OPERATION_NAMES))
    if name in S5_OPERATIONS:
        perms, _, _ = _s5()
        return Operation(name, None, tuple("".join(map(str, p)) for p in perms))
    if isinstance(modulus, bool) or not isinstance(modulus, (int, np.integer)):
        raise OperationError(f"modulus must be an integer, got {modulus!r}")
    modulus = int(modulus)
    if modulus < 2:
        raise OperationError(f"modulus must be >= 2, got {modulus}")
    if name in PRIME_OPERATIONS and not is_prime(modulus):
        raise OperationError(f"{name} needs a prime modulus; {modulus} is not prime")
    check_table_size(name, modulus)
    return Operation(name, modulus, tuple(str(v) for v in range(modulus)))
