"""The committed generated code in pdp/_proto matches what proto/ generates today."""

from __future__ import annotations

from pathlib import Path

from pdp import _protogen


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    """Editing a .proto without running `make proto` fails the build."""
    fresh = tmp_path / "_proto"
    _protogen.generate(fresh)
    committed = _tree(_protogen.DEFAULT_OUT)
    regenerated = _tree(fresh)
    stale = sorted(
        name for name in committed.keys() | regenerated.keys()
        if committed.get(name) != regenerated.get(name)
    )
    recorded = (_protogen.DEFAULT_OUT / "__init__.py").read_text().strip()
    assert not stale, (
        f"pdp/_proto is out of date; run `make proto`. Differs: {stale}. "
        f"Committed code says {recorded}; installed: {_protogen.generated_header().strip()}"
    )


def test_every_proto_source_is_compiled() -> None:
    """Each .proto under proto/ has its generated module committed."""
    for source in _protogen.proto_sources():
        relative = source.relative_to(_protogen.PROTO_ROOT).with_suffix("")
        module = _protogen.DEFAULT_OUT / relative.parent / f"{relative.name}_pb2.py"
        assert module.is_file(), f"{source} has no generated module {module}"


def test_generated_imports_stay_inside_the_package() -> None:
    """Generated modules import our protos as pdp._proto.*, so they load without sys.path tricks."""
    unrewritten = [
        f"{path}: {line}"
        for path in _protogen.DEFAULT_OUT.rglob("*.py*")
        for line in path.read_text().splitlines()
        if line.startswith(("from envoy", "from policyengine", "from google.rpc", "import envoy"))
    ]
    assert not unrewritten, "\n".join(unrewritten)
