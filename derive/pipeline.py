"""Spec → derivation → proof → emitted files, and the sync check.

``build(specs)`` returns the full set of generated files as ``{filename: text}``; it refuses
(raises ``ProofError``) to emit any member whose proof fails.  ``write`` and ``check``
compare that set with a directory.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import sympy as sp

from . import codegen
from .bounds import attention as attention_bounds
from .bounds import normalized as bounds
from .bounds import two_layer as two_layer_bounds
from .families import attention, mixture_score, normalized, two_layer
from .proof import ProofError
from .spec import SpecError

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "generated"


@dataclass(frozen=True)
class MemberFiles:
    """What one catalogue member contributes: its files and its manifest entry."""

    name: str
    files: dict[str, str]
    manifest: dict


def _build_normalized(spec) -> MemberFiles:
    f = normalized.derive(spec)
    claims = normalized.prove(f)
    h = spec.fingerprint()
    mb = bounds.derive_bounds(f)
    return MemberFiles(
        name=spec.name,
        files={f"{spec.name}.py": normalized.emit_module(f, h),
               f"{spec.name}.md": normalized.emit_page(f, claims, h, extra=bounds.emit_section(mb)),
               f"{spec.name}_bounds.py": bounds.emit_module(mb, h)},
        manifest={"family": spec.family, "doc": spec.doc, "paper": spec.paper, "spec_hash": h,
                  "shift_invariant": spec.shift_invariant, "normalized": f.normalized,
                  "rank2": f.rank2, "proof": claims, "bounds": bounds.manifest_entry(mb),
                  "formulas": [list(e) for e in normalized.formulas(f)]},
    )


def _build_two_layer(spec) -> MemberFiles:
    f = two_layer.derive(spec)
    claims = two_layer.prove(f)
    h = spec.fingerprint()
    tb = two_layer_bounds.derive_bounds(f)
    return MemberFiles(
        name=spec.name,
        files={f"{spec.name}.py": two_layer.emit_module(f, h),
               f"{spec.name}.md": two_layer.emit_page(f, claims, h) + two_layer_bounds.emit_section(tb),
               f"{spec.name}_bounds.py": two_layer_bounds.emit_module(tb, h)},
        manifest={"family": spec.family, "doc": spec.doc, "paper": spec.paper, "spec_hash": h,
                  "activation": spec.activation, "shift_invariant": spec.shift_invariant,
                  "normalized": f.normalized, "proof": claims,
                  "formulas": [list(e) for e in two_layer.formulas(f)], "bounds": two_layer_bounds.manifest_entry(tb)},
    )


def _build_mixture_score(spec) -> MemberFiles:
    f = mixture_score.derive(spec)
    claims = mixture_score.prove(f)
    h = spec.fingerprint()
    return MemberFiles(name=spec.name, files={f"{spec.name}.py": mixture_score.emit_module(f, h),
                                              f"{spec.name}.md": mixture_score.emit_page(f, claims, h)},
                       manifest={"family": spec.family, "doc": spec.doc, "paper": spec.paper, "spec_hash": h,
                                 "proof": claims, "formulas": [list(e) for e in mixture_score.formulas(f)]})


def _build_attention(spec) -> MemberFiles:
    files, manifest = attention.member_files(spec)
    ab = attention_bounds.derive_bounds(attention.derive(spec))
    h = manifest["spec_hash"]
    files = {**files, f"{spec.name}.md": files[f"{spec.name}.md"] + attention_bounds.emit_section(ab) + "\n",
             f"{spec.name}_bounds.py": attention_bounds.emit_module(ab, h)}
    return MemberFiles(spec.name, files, {**manifest, "bounds": attention_bounds.manifest_entry(ab)})


# One builder per family: a new family registers here.
FAMILIES: dict[str, Callable[[object], MemberFiles]] = {
    "normalized": _build_normalized,
    "attention": _build_attention,
    "two_layer": _build_two_layer,
    "mixture_score": _build_mixture_score,
}


def build_member(spec) -> MemberFiles:
    try:
        builder = FAMILIES[spec.family]
    except KeyError:
        raise SpecError(f"spec {spec.name!r}: unknown family {spec.family!r}; known: {sorted(FAMILIES)}") from None
    try:
        return builder(spec)
    except ProofError as exc:
        raise ProofError(f"member {spec.name!r}: {exc}; refusing to emit it") from exc


def build(specs: Iterable, progress: Callable[[str], None] | None = None) -> dict[str, str]:
    """All generated files for ``specs`` (deterministic)."""
    members = []
    for spec in specs:
        if progress:
            progress(spec.name)
        members.append(build_member(spec))
    names = [m.name for m in members]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SpecError(f"duplicate member names: {dup}")
    files: dict[str, str] = {}
    for m in members:
        files.update(m.files)
    manifest = {
        "generator": GENERATOR,
        "sympy": sp.__version__,
        "members": {m.name: {**m.manifest, "module": m.name, "page": f"{m.name}.md"}
                    for m in sorted(members, key=lambda m: m.name)},
    }
    files["manifest.json"] = json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    files["__init__.py"] = (f'# {codegen.HEADER}\n"""Generated kernels, one module per catalogue member '
                            f'(see manifest.json)."""\n\nMEMBERS = {tuple(sorted(names))!r}\n')
    return dict(sorted(files.items()))


def stale_files(files: dict[str, str], out: Path) -> list[str]:
    """Names of files in ``out`` that differ from ``files``, are missing, or are extra."""
    out = Path(out)
    stale = [name for name, text in files.items()
             if not (out / name).is_file() or (out / name).read_text(encoding="utf-8") != text]
    stale += [f"{p.name} (generated earlier, no longer in the catalogue)" for p in _orphans(files, out)]
    return stale


def _orphans(files: dict[str, str], out: Path) -> list[Path]:
    """Files in ``out`` that carry our header but are no longer generated."""
    if not out.is_dir():
        return []
    return sorted(p for p in out.iterdir()
                  if p.is_file() and p.name not in files and p.suffix in {".py", ".md"}
                  and codegen.HEADER in p.read_text(encoding="utf-8", errors="replace")[:200])


GENERATOR = "softsym.derive"


def is_builtin_out(out: Path) -> bool:
    """Whether ``out`` is (or lies inside) the built-in ``generated/`` folder, however spelled
    (relative, with ``..``, through symlinks)."""
    out, builtin = Path(out).resolve(), DEFAULT_OUT.resolve()
    return out == builtin or builtin in out.parents


def check_out_dir(out: Path) -> Path:
    """``out`` resolved, if ``write`` may write there: a folder that does not exist yet, an empty
    folder, or one this generator wrote before (its ``manifest.json`` says
    ``"generator": "softsym.derive"``).  ``SpecError`` otherwise, so a mistyped ``--out`` never
    overwrites or deletes someone else's files."""
    out = Path(out).resolve()
    if out.exists() and not out.is_dir():
        raise SpecError(f"--out {out} exists and is not a folder")
    if not out.exists() or not any(out.iterdir()):
        return out
    manifest = out / "manifest.json"
    try:
        generator = json.loads(manifest.read_text(encoding="utf-8")).get("generator")
    except (OSError, ValueError, AttributeError):
        generator = None
    if generator != GENERATOR:
        raise SpecError(f"--out {out} is a non-empty folder that softsym did not generate (no manifest.json with "
                        f'"generator": "{GENERATOR}"); choose a new or empty folder')
    return out


def write(files: dict[str, str], out: Path) -> list[str]:
    """Write ``files`` into ``out`` (see :func:`check_out_dir`); returns the names that changed.

    Numba's on-disk cache of a changed module is deleted so it can never outlive its source.
    """
    out = check_out_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    changed = []
    for name, text in files.items():
        path = out / name
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            continue
        path.write_text(text, encoding="utf-8", newline="\n")
        changed.append(name)
        if name.endswith(".py"):
            for cached in (out / "__pycache__").glob(f"{name[:-3]}.*.nb[ic]"):
                cached.unlink()
    for p in _orphans(files, out):
        p.unlink()
        changed.append(f"{p.name} (removed)")
    return changed
