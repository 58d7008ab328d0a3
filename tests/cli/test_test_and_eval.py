"""`pdp test` and `pdp eval`: running bundle tests and single queries offline."""

from __future__ import annotations

import json
from pathlib import Path

from cli_kit import MARKETPLACE, Pdp

BREAKING = MARKETPLACE / "examples" / "listing-breaking-3-policies.json"


def test_pdp_test_accepts_the_marketplace_source(pdp: Pdp) -> None:
    """`pdp test bundles/marketplace` passes and prints each case."""
    result = pdp("test", MARKETPLACE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("PASS  ") >= 10
    assert " 0 failed" in result.stdout


def test_pdp_test_accepts_the_built_bundle(pdp: Pdp, marketplace_bundle: Path) -> None:
    """`pdp test` on the signed .tar.gz runs the same cases."""
    result = pdp("test", marketplace_bundle)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 failed" in result.stdout


def test_a_failing_case_exits_1_and_is_named(pdp: Pdp, source_copy: Path) -> None:
    """A failing bundle test prints FAIL with the case name and what differed, exit 1."""
    case = {
        "name": "an unknown user may read (wrong on purpose)",
        "query": "check_access",
        "input": {"user_id": "nobody", "service_id": "svc-1", "action": "read", "context": {}},
        "expect": {"allowed": True},
    }
    (source_copy / "tests" / "wrong.json").write_text(json.dumps(case))
    result = pdp("test", source_copy)
    assert result.returncode == 1
    assert "FAIL  an unknown user may read (wrong on purpose): allowed" in result.stdout


def test_eval_prints_the_decision(pdp: Pdp) -> None:
    """`pdp eval --policies` prints the decision JSON with the violated policies."""
    result = pdp("eval", "--policies", MARKETPLACE, "validate_service", "--input", BREAKING)
    assert result.returncode == 0, result.stderr
    decision = json.loads(result.stdout)
    assert decision["compliant"] is False
    assert len({v["policy_id"] for v in decision["violations"]}) == 3


def test_eval_on_a_signed_bundle_matches_the_source(
    pdp: Pdp, marketplace_bundle: Path, key_dir: Path
) -> None:
    """The verified bundle and its source give the same violations for the same input."""
    from_bundle = pdp(
        "eval", "--bundle", marketplace_bundle, "--verification-key", key_dir / "k1.pem",
        "validate_service", "--input", BREAKING,
    )
    from_source = pdp("eval", "--policies", MARKETPLACE, "validate_service", "--input", BREAKING)
    assert from_bundle.returncode == 0, from_bundle.stderr
    ids = [
        sorted(v["policy_id"] for v in json.loads(r.stdout)["violations"])
        for r in (from_bundle, from_source)
    ]
    assert ids[0] == ids[1]


def test_eval_reads_the_input_from_stdin(pdp: Pdp) -> None:
    """`--input -` reads the input from standard input."""
    access = (MARKETPLACE / "examples" / "access-check.json").read_text()
    result = pdp("eval", "--policies", MARKETPLACE, "check_access", "--input", "-", stdin=access)
    assert result.returncode == 0, result.stderr
    assert "allowed" in json.loads(result.stdout)


def test_eval_with_a_bad_policy_names_file_and_field(pdp: Pdp, source_copy: Path) -> None:
    """A bad policy file exits 1 naming the file and the field path."""
    policy = source_copy / "policies" / "restricted-countries.yaml"
    policy.write_text(policy.read_text() + "\nunexpected_field: 1\n")
    result = pdp("eval", "--policies", source_copy, "validate_service", "--input", BREAKING)
    assert result.returncode == 1
    assert "policies/restricted-countries.yaml" in result.stderr
    assert "unexpected_field" in result.stderr


def test_eval_refuses_input_that_is_not_json(pdp: Pdp) -> None:
    """Input that does not parse exits 1 saying so."""
    result = pdp("eval", "--policies", MARKETPLACE, "check_access", "--input", "-", stdin="{")
    assert result.returncode == 1
    assert "--input stdin: not valid JSON" in result.stderr


def test_eval_refuses_input_that_breaks_the_schema(pdp: Pdp) -> None:
    """An input with a wrongly typed field exits 1 naming the field."""
    result = pdp(
        "eval", "--policies", MARKETPLACE, "check_access", "--input", "-",
        stdin='{"user_id": 5, "service_id": "svc-1", "action": "read"}',
    )
    assert result.returncode == 1
    assert "user_id" in result.stderr


def test_eval_bundle_without_key_is_a_usage_error(pdp: Pdp, marketplace_bundle: Path) -> None:
    """--bundle without --verification-key exits 2: verification is never optional here."""
    result = pdp("eval", "--bundle", marketplace_bundle, "check_access", "--input", "-", stdin="{}")
    assert result.returncode == 2


def test_eval_of_an_unknown_query_is_a_usage_error(pdp: Pdp) -> None:
    """A query name that does not exist exits 2."""
    result = pdp("eval", "--policies", MARKETPLACE, "nope", "--input", "-", stdin="{}")
    assert result.returncode == 2


def test_bundle_without_an_action_is_a_usage_error(pdp: Pdp) -> None:
    """`pdp bundle` alone exits 2 with usage."""
    assert pdp("bundle").returncode == 2


def test_eval_reports_how_long_validation_took(pdp: Pdp) -> None:
    """validate_service's metadata.validation_duration_ms is the measured time in milliseconds
    (a float, as the sidecar's HTTP answer gives it), not a constant 0."""
    result = pdp("eval", "--policies", MARKETPLACE, "validate_service", "--input", BREAKING)
    assert result.returncode == 0, result.stderr
    duration = json.loads(result.stdout)["metadata"]["validation_duration_ms"]
    assert isinstance(duration, float) and duration >= 0.0


def test_a_source_directory_without_policies_is_refused_by_eval_and_test(
    pdp: Pdp, tmp_path: Path
) -> None:
    """`pdp eval --policies` and `pdp test` on a directory with no policies/ exit 1 saying so,
    instead of answering from (or testing) zero policies."""
    evaluated = pdp("eval", "--policies", tmp_path, "validate_service", "--input", BREAKING)
    tested = pdp("test", tmp_path)
    for result in (evaluated, tested):
        assert result.returncode == 1
        assert f"{tmp_path}: no policies/ directory" in result.stderr


def test_dryrun_findings_are_not_in_the_printed_answer(pdp: Pdp, source_copy: Path) -> None:
    """Shadow mode never shows in the answer, offline as over HTTP; eval notes it on stderr."""
    policy = source_copy / "policies" / "https-required.yaml"
    policy.write_text(policy.read_text().replace("enforcement: deny", "enforcement: dryrun"))
    result = pdp("eval", "--policies", source_copy, "validate_service", "--input", BREAKING)
    decision = json.loads(result.stdout)
    assert result.returncode == 0, result.stderr
    assert "dryrun" not in decision
    assert "https-required" not in [v["policy_id"] for v in decision["violations"]]
    assert "dryrun (not in the answer)" in result.stderr and "https-required" in result.stderr
