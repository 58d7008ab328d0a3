"""Reading a source directory: what is read, what is ignored, and how bad files are named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bundle_kit import CREATED_AT, DATA, POLICY, json_bytes

from pdp.bundle import ContentError, ManifestError, read_source_dir


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def test_a_bad_policy_file_names_the_file_and_the_field_path(tmp_path: Path) -> None:
    """An invalid YAML policy is refused with its source file name and the dotted field path."""
    bad = "id: p1\nname: P\ndescription: d\ntype: data_residency\nenabled: true\n" \
          "severity: high\nenforcement: deny\nrule: {allowed_countries: [US, 7]}\n"
    root = _tree(tmp_path, {"policies/p1.yaml": bad.encode()})
    with pytest.raises(ContentError) as caught:
        read_source_dir(root, created_at=CREATED_AT)
    assert caught.value.reason == "policy_invalid"
    assert "policies/p1.yaml" in str(caught.value)
    assert "rule.allowed_countries.1" in str(caught.value)


def test_a_policy_file_that_is_not_yaml_is_refused(tmp_path: Path) -> None:
    """Broken YAML is refused naming the file."""
    root = _tree(tmp_path, {"policies/p.yaml": b"id: [unclosed"})
    with pytest.raises(ContentError) as caught:
        read_source_dir(root, created_at=CREATED_AT)
    assert caught.value.reason == "policy_invalid"
    assert "policies/p.yaml" in str(caught.value)


def test_two_files_defining_one_policy_id_are_refused(tmp_path: Path) -> None:
    """The same policy id in two source files is refused, naming both."""
    root = _tree(
        tmp_path,
        {"policies/a.json": json_bytes(POLICY), "policies/b.json": json_bytes(POLICY)},
    )
    with pytest.raises(ContentError) as caught:
        read_source_dir(root, created_at=CREATED_AT)
    assert caught.value.reason == "policy_duplicate"
    assert "policies/a.json" in str(caught.value) and "policies/b.json" in str(caught.value)


def test_data_that_is_not_an_object_is_refused(tmp_path: Path) -> None:
    """data.json must hold a JSON object."""
    root = _tree(tmp_path, {"data.json": b"[1, 2]"})
    with pytest.raises(ContentError) as caught:
        read_source_dir(root, created_at=CREATED_AT)
    assert caught.value.reason == "data_invalid"


def test_nested_data_that_conflicts_is_refused(tmp_path: Path) -> None:
    """Nested data that redefines a key of data.json is refused, naming the nested file."""
    root = _tree(
        tmp_path,
        {"data.json": json_bytes(DATA), "data/roles/data.json": json_bytes({"consumer": []})},
    )
    with pytest.raises(ContentError) as caught:
        read_source_dir(root, created_at=CREATED_AT)
    assert caught.value.reason == "data_conflict"
    assert "data/roles/data.json" in str(caught.value)


def test_files_outside_the_source_layout_are_ignored(tmp_path: Path) -> None:
    """READMEs and examples next to the policies are not part of the bundle."""
    root = _tree(
        tmp_path,
        {
            "policies/p.json": json_bytes(POLICY),
            "README.md": b"# hello",
            "examples/input.json": b"{}",
        },
    )
    contents = read_source_dir(root, created_at=CREATED_AT)
    assert sorted(contents.files) == [".manifest", "policies/https-required.json"]


def test_a_missing_source_directory_is_refused(tmp_path: Path) -> None:
    """A source path that is not a directory is refused with its name."""
    with pytest.raises(ContentError) as caught:
        read_source_dir(tmp_path / "absent")
    assert caught.value.reason == "source_invalid"


_POLICY_HEAD = (
    "id: p1\nname: P\ndescription: d\ntype: data_residency\nenabled: true\n"
    "severity: high\nenforcement: deny\n"
)


def test_a_policy_using_a_few_yaml_anchors_loads_with_them_expanded(tmp_path: Path) -> None:
    """Anchors and aliases are ordinary YAML: the bundle's JSON repeats what they name."""
    text = _POLICY_HEAD + (
        "rule: {blocked_countries: &sanctioned [KP, IR, SY, CU]}\n"
        "metadata: {owner: &team legal-team, reviewers: [*team], sanctioned: *sanctioned}\n"
    )
    root = _tree(tmp_path, {"policies/p1.yaml": text.encode()})
    contents = read_source_dir(root, created_at=CREATED_AT)
    stored = json.loads(contents.files["policies/p1.json"])
    assert stored["metadata"] == {
        "owner": "legal-team",
        "reviewers": ["legal-team"],
        "sanctioned": ["KP", "IR", "SY", "CU"],
    }


def test_yaml_aliases_that_expand_past_the_bound_are_refused(tmp_path: Path) -> None:
    """A "billion laughs" file (under 1 KiB, 10**9 values once expanded) is refused at once."""
    levels = ['  a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    levels += [f"  a{n}: &a{n} [{','.join([f'*a{n - 1}'] * 10)}]" for n in range(1, 9)]
    text = _POLICY_HEAD + "rule: {minimum_locations: 1}\nmetadata:\n" + "\n".join(levels) + "\n"
    root = _tree(tmp_path, {"policies/laughs.yaml": text.encode()})
    with pytest.raises(ContentError) as caught:
        read_source_dir(root, created_at=CREATED_AT)
    assert caught.value.reason == "policy_too_large"
    assert str(caught.value).startswith("policies/laughs.yaml: ")
    assert "\n" not in str(caught.value)


def test_yaml_nested_too_deeply_to_parse_is_refused(tmp_path: Path) -> None:
    """20,000 nested flow sequences are refused naming the file, not with a RecursionError."""
    root = _tree(tmp_path, {"policies/deep.yaml": b"[" * 20_000 + b"]" * 20_000})
    with pytest.raises(ContentError) as caught:
        read_source_dir(root, created_at=CREATED_AT)
    assert caught.value.reason == "policy_invalid"
    assert str(caught.value).startswith("policies/deep.yaml: ")
    assert "\n" not in str(caught.value)


def test_a_revision_over_the_manifest_limit_is_refused_naming_it(tmp_path: Path) -> None:
    """A 200-character revision is refused as an invalid manifest, showing the value given."""
    root = _tree(tmp_path, {"policies/p.json": json_bytes(POLICY)})
    with pytest.raises(ManifestError) as caught:
        read_source_dir(root, revision="r" * 200, created_at=CREATED_AT)
    assert caught.value.reason == "manifest_invalid"
    assert "revision" in str(caught.value) and "r" * 40 in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("field", ["created_at", "expires_at"])
def test_a_timestamp_no_calendar_can_hold_is_refused_naming_it(
    tmp_path: Path, field: str
) -> None:
    """SOURCE_DATE_EPOCH=99999999999999 (year 3170843) is refused, not a ValueError."""
    root = _tree(tmp_path, {"policies/p.json": json_bytes(POLICY)})
    times = {"created_at": float(CREATED_AT), field: 99_999_999_999_999.0}
    with pytest.raises(ManifestError) as caught:
        read_source_dir(root, **times)
    assert caught.value.reason == "manifest_invalid"
    assert field in str(caught.value) and "99999999999999" in str(caught.value)


@pytest.mark.parametrize(("name", "text"), [
    pytest.param("policies/p.yaml", "id: p\nname: P\ntype: security\nenforcement: deny\n"
                 "rule: {require_https: true}\nenforcement: dryrun\n", id="yaml"),
    pytest.param("policies/p.json", '{"id": "p", "name": "P", "type": "security", "rule": '
                 '{"require_https": true, "require_https": false}}', id="json"),
])
def test_a_key_given_twice_in_a_policy_is_refused(tmp_path: Path, name: str, text: str) -> None:
    """A policy repeating a key is refused naming the key: the last one silently won, so a
    stray `enforcement: dryrun` or `require_https: false` lower down switched a rule off."""
    root = _tree(tmp_path, {name: text.encode()})
    with pytest.raises(ContentError) as caught:
        read_source_dir(root, created_at=CREATED_AT)
    assert caught.value.reason == "policy_invalid"
    assert name in str(caught.value) and "duplicate key" in str(caught.value)


def test_yaml_merge_keys_may_be_overridden(tmp_path: Path) -> None:
    """A key that overrides one merged in with `<<: *anchor` is not a duplicate."""
    text = ("id: p\nname: P\ntype: security\nmetadata: {defaults: &d {require_https: false}}\n"
            "rule:\n  <<: *d\n  require_https: true\n")
    contents = read_source_dir(_tree(tmp_path, {"policies/p.yaml": text.encode()}),
                               created_at=CREATED_AT)
    assert json.loads(contents.files["policies/p.json"])["rule"] == {"require_https": True}
