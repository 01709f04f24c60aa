"""The catalogue: generated manifests, their members, and loading their kernel modules.

The built-in kernels are the package ``softsym.kernels`` (the repository's ``generated/``);
directories made by ``softsym generate SPEC.py --out DIR`` join with :func:`load_kernels`.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import string
import sys
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from types import ModuleType

from .errors import UnknownObjectiveError, ValidationError


@dataclass(frozen=True)
class MemberInfo:
    """One catalogue member, as recorded in a generated manifest."""

    name: str
    family: str
    doc: str
    paper: str
    spec_hash: str
    proof: tuple[str, ...]
    shift_invariant: bool
    package: str = "softsym.kernels"
    #: the derived equations, ``(lhs, rhs)`` LaTeX pairs meaning ``lhs = rhs``, in page order
    formulas: tuple[tuple[str, str], ...] = ()
    #: whether derived bounds exist (``softsym bounds``; every family but mixture_score)
    has_bounds: bool = False
    #: the derived bounds, ``(region, quantity, rhs)`` meaning ``quantity <relation> rhs`` in ``region``
    bound_formulas: tuple[tuple[str, str, str], ...] = ()
    #: the assumptions defining each region of ``bound_formulas``, ``(region, text)``
    bound_assumptions: tuple[tuple[str, str], ...] = ()
    #: how ``quantity`` relates to ``rhs`` in ``bound_formulas``: ``"<="`` (an upper bound) or ``"="``
    #: (a derived constant, e.g. the two-layer family's; what it bounds is in the page)
    bound_relation: str = "<="


# Kernel packages: the built-in one plus directories loaded with load_kernels().
_PACKAGES: dict[str, Path] = {}


def _builtin_dir() -> Path:
    return Path(str(resources.files("softsym.kernels")))


#: member names (as the generator's specs require; checked with fullmatch, so no trailing newline)
#: the characters of a member name after its first, a lowercase letter
_NAME_CHARS = frozenset(string.ascii_lowercase + string.digits + "_")


def is_member_name(name: str) -> bool:
    """Whether ``name`` is a valid member name: a lowercase letter, then letters, digits or ``_``."""
    return bool(name) and name[0] in string.ascii_lowercase and set(name) <= _NAME_CHARS
#: manifest fields every member entry must carry, with their types
_FIELDS = {"family": str, "doc": str, "paper": str, "spec_hash": str, "proof": list}


def read_manifest(path: Path) -> dict[str, dict]:
    """The ``members`` of the generated manifest ``path``, every entry checked; ``ValidationError``
    naming the file for anything unreadable or malformed."""
    try:
        data = json.loads(Path(path).read_text("utf-8"))
    except FileNotFoundError:
        raise ValidationError(f"{path} does not exist: not a softsym kernel directory") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ValidationError(f"{path} is not a readable JSON manifest ({type(exc).__name__}: {exc})") from None
    members = data.get("members") if isinstance(data, dict) else None
    if not isinstance(members, dict):
        raise ValidationError(f'{path} is malformed: expected an object with a "members" object')
    for name, m in members.items():
        if not is_member_name(name):
            raise ValidationError(f"{path}: member name {name!r} must be a lowercase letter followed by lowercase "
                                  "letters, digits or _")
        if not isinstance(m, dict):
            raise ValidationError(f"{path}: entry of member {name!r} must be an object")
        for key, typ in _FIELDS.items():
            if not isinstance(m.get(key), typ):
                raise ValidationError(f"{path}: member {name!r} lacks a {typ.__name__} field {key!r}")
    return members


@cache
def _manifest(package: str) -> dict:
    directory = _builtin_dir() if package == "softsym.kernels" else _PACKAGES[package]
    return {"members": read_manifest(directory / "manifest.json")}


def _bound_formulas(entry: dict) -> tuple[tuple[str, str, str], ...]:
    """``(region, quantity, rhs)`` from a manifest bounds entry, in its region and quantity order."""
    eqs = entry.get("formulas", {})
    return tuple((region, q, eqs[region][q]) for region in entry.get("regions", ()) if region in eqs
                 for q in entry.get("quantities", ()) if q in eqs[region])


def _bound_assumptions(entry: dict) -> tuple[tuple[str, str], ...]:
    """``(region, text)`` from a manifest bounds entry (``assumptions`` per region, or one text for all)."""
    text = entry.get("assumptions", {})
    per_region = text if isinstance(text, dict) else {}
    return tuple((region, text if isinstance(text, str) else str(per_region.get(region, "")))
                 for region in entry.get("regions", ()))


def _members() -> dict[str, MemberInfo]:
    out: dict[str, MemberInfo] = {}
    for package in ("softsym.kernels", *_PACKAGES):
        for name, m in _manifest(package)["members"].items():
            out[name] = MemberInfo(name=name, family=m["family"], doc=m["doc"], paper=m["paper"],
                                   spec_hash=m["spec_hash"], proof=tuple(str(c) for c in m["proof"]),
                                   shift_invariant=bool(m.get("shift_invariant", False)), package=package,
                                   formulas=tuple((lhs, rhs) for lhs, rhs in m.get("formulas", ())),
                                   has_bounds="bounds" in m,
                                   bound_formulas=_bound_formulas(m.get("bounds", {})),
                                   bound_assumptions=_bound_assumptions(m.get("bounds", {})),
                                   bound_relation=str(m.get("bounds", {}).get("relation", "<=")))
    return out


def catalogue(family: str | None = None) -> list[MemberInfo]:
    """All catalogue members (optionally of one family), sorted by name.

    Includes members from directories loaded with :func:`load_kernels`.
    """
    return [m for _, m in sorted(_members().items()) if family is None or m.family == family]


def member(name: str, family: str | None = None) -> MemberInfo:
    """The catalogue entry called ``name``; ``UnknownObjectiveError`` listing the choices otherwise."""
    members = {m.name: m for m in catalogue(family)}
    if not isinstance(name, str) or name not in members:
        other = {m.name: m.family for m in catalogue()}.get(name) if isinstance(name, str) else None
        if other is not None:
            raise UnknownObjectiveError(f"{name!r} belongs to the {other} family; this needs a {family} member: "
                                        f"{', '.join(sorted(members))}")
        raise UnknownObjectiveError(f"unknown objective {name!r}; catalogue members: {', '.join(sorted(members))}")
    return members[name]


def load_kernels(directory: str | Path) -> list[MemberInfo]:
    """Make the members generated into ``directory`` (``softsym generate SPEC.py --out DIR``) usable.

    Afterwards ``softsym.objective(name, ...)`` and ``softsym.catalogue()`` know them.  A name
    that clashes with an already known member is an error, as is a malformed manifest.

    The folder's ``__init__.py`` and member modules are imported, i.e. executed as Python with
    the rights of this process: load only kernel folders you trust.
    """
    if not isinstance(directory, (str, Path)):
        raise ValidationError(f"directory must be a path, got {type(directory).__name__}")
    directory = Path(directory).resolve()
    manifest_path = directory / "manifest.json"
    if not manifest_path.is_file():
        raise ValidationError(f"{directory} has no manifest.json: not a softsym kernel directory "
                              "(create one with `softsym generate SPEC.py --out DIR`)")
    if directory == _builtin_dir().resolve():
        raise ValidationError(f"{directory} is the built-in kernel folder (softsym.kernels); it is always loaded")
    package = "softsym_user_kernels_" + hashlib.sha256(str(directory).encode()).hexdigest()[:12]
    if package not in _PACKAGES:
        names = read_manifest(manifest_path)
        if not (directory / "__init__.py").is_file():
            raise ValidationError(f"{directory} has no __init__.py: not a softsym kernel directory")
        clash = sorted(set(names) & set(_members()))
        if clash:
            raise ValidationError(f"{directory}: member names {clash} are already in the catalogue")
        spec = importlib.util.spec_from_file_location(package, directory / "__init__.py",
                                                      submodule_search_locations=[str(directory)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[package] = module
        try:
            spec.loader.exec_module(module)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - user code: report, do not half-register
            sys.modules.pop(package, None)
            raise ValidationError(f"{directory / '__init__.py'} failed to import: {type(exc).__name__}: {exc}") from None
        _PACKAGES[package] = directory
    return [m for m in catalogue() if m.package == package]


def kernel_dir(info: MemberInfo) -> Path:
    """The directory holding the generated files of ``info`` (``generated/`` or a loaded one)."""
    return _builtin_dir() if info.package == "softsym.kernels" else _PACKAGES[info.package]


def page(info: MemberInfo) -> str:
    """The generated Markdown page of ``info``: its derived formulas, proof and bounds, for reading."""
    return (kernel_dir(info) / f"{info.name}.md").read_text("utf-8")


def generated_module(info: MemberInfo, suffix: str = "") -> ModuleType:
    """The generated module ``<member><suffix>`` of ``info``, checked against the manifest's spec hash."""
    mod = importlib.import_module(f"{info.package}.{info.name}{suffix}")
    if mod.SPEC_HASH != info.spec_hash:
        raise RuntimeError(f"generated module {info.name}{suffix} does not match the manifest; run `make generate`")
    return mod


@cache
def kernels(name: str) -> ModuleType:
    """The generated kernel module of member ``name``."""
    return generated_module(member(name))
