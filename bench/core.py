"""In-process decision benchmark: pdp's core against Rego (regorus) and Cedar (cedarpy).

Run with ``make bench-core`` (``.venv/bin/python bench/core.py``). Every engine answers the same
questions in the same run:

- ``validate_service`` on the five default policies of ``bundles/marketplace`` (DESIGN §4.4), for a
  compliant listing and for one that breaks three policies;
- ``check_access`` on generated data: 1,000 users, 200 services, 4 actions and an access_control
  policy blocking 50 users.

Each engine is timed from the caller's Python value (a dict, as a shell holds it after parsing a
request) to a decision the caller can read, so the cost of converting the input for the engine
(JSON serialisation, Cedar context and request construction) is included. Before timing, every
engine must agree with pdp on every input of the pools, the bundle's own validate_service test
inputs included; a disagreement aborts the run. The Rego and Cedar sources, and the code driving
each engine, are in bench/rego/ and bench/cedar/.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import yaml
from _common import Timing, machine_summary, render_table, time_calls, time_interleaved
from cedar.contender import CedarContender
from rego.contender import RegoEngineContender, RegoVmContender

from pdp.core import compile_policy_set, parse_input, parse_policy

ROOT = Path(__file__).resolve().parent.parent
MARKETPLACE = ROOT / "bundles" / "marketplace"

ROLES: dict[str, list[str]] = {
    "viewer": ["service.read"],
    "consumer": ["service.read", "service.consume"],
    "publisher": ["service.read", "service.publish"],
    "admin": ["service.*"],
}
ACTIONS = ("read", "consume", "publish", "delete")
# Share of users holding each role set; 7 % hold no role at all.
ROLE_MIX: tuple[tuple[tuple[str, ...], int], ...] = (
    (("consumer",), 45), (("viewer",), 25), (("publisher",), 10),
    (("publisher", "consumer"), 8), (("admin",), 5), ((), 7),
)
LEVELS = ("public", "internal", "confidential", "restricted")

TARGET_US = {"validate_service": 5.0, "check_access": 2.0}
TARGET_RATIO = 5.0


# Fixed so that timing excludes what the caller owns: reading the clock and drawing a UUID.
NOW = 1_795_000_000.0
DECISION_ID = "00000000-0000-4000-8000-000000000000"


class InvalidComparisonError(Exception):
    """The comparison would be void: engines disagree, or a workload is not what it claims."""


class Contender(Protocol):
    """An engine under test: answers both queries from the caller's dict, and reads its answers."""

    name: str
    # Each query's input conversion alone (dict -> what the engine takes), for the report.
    conversions: Mapping[str, Callable[[Mapping[str, Any]], object]]

    def validate_service(self, listing: Mapping[str, Any]) -> object:
        """Decide validate_service on the five default policies."""

    def check_access(self, request: Mapping[str, Any]) -> object:
        """Decide check_access on the generated access data."""

    def violations(self, decision: object) -> frozenset[str]:
        """The policy ids a validate_service decision reports as violated."""

    def allowed(self, decision: object) -> bool:
        """Whether a check_access decision allows the request."""


class PdpContender:
    """pdp's core through its public API: one compiled policy set, as a sidecar holds it."""

    name = "pdp"
    conversions: Mapping[str, Callable[[Mapping[str, Any]], object]] = {}

    def __init__(self, documents: Sequence[Mapping[str, Any]], data: Mapping[str, Any]) -> None:
        policies = [parse_policy(doc, source=f"bench:{doc['id']}") for doc in documents]
        self._policy_set = compile_policy_set(policies, data, revision="bench")

    def validate_service(self, listing: Mapping[str, Any]) -> object:
        """The §5 validate_service decision."""
        return self._policy_set.validate_service(listing, now=NOW, decision_id=DECISION_ID)

    def check_access(self, request: Mapping[str, Any]) -> object:
        """The §5 check_access decision."""
        return self._policy_set.check_access(request, now=NOW, decision_id=DECISION_ID)

    @staticmethod
    def violations(decision: object) -> frozenset[str]:
        """Policy ids of the decision's violations."""
        return frozenset(v["policy_id"] for v in _decision(decision)["violations"])

    @staticmethod
    def allowed(decision: object) -> bool:
        """The decision's ``allowed`` flag."""
        return _decision(decision)["allowed"] is True


def _decision(decision: object) -> dict[str, Any]:
    if not isinstance(decision, dict):
        raise TypeError(f"pdp returned {type(decision).__name__}, not a decision dict")
    return decision


@dataclass(frozen=True)
class AccessWorld:
    """Generated bundle data for check_access and the pool of requests asked of it."""

    data: dict[str, Any]
    blocked_user_ids: tuple[str, ...]
    requests: tuple[dict[str, Any], ...]


def generate_access_world(
    rng: random.Random, *, users: int, services: int, blocked: int, requests: int
) -> AccessWorld:
    """Users with a realistic role mix, services, a block list and a mixed request pool."""
    role_sets = [roles for roles, _ in ROLE_MIX]
    weights = [weight for _, weight in ROLE_MIX]
    user_ids = [f"user-{i:04d}" for i in range(users)]
    service_ids = [f"svc-{i:03d}" for i in range(services)]
    data: dict[str, Any] = {
        "roles": ROLES,
        "users": {
            uid: {"roles": list(rng.choices(role_sets, weights)[0]),
                  "attributes": {"tenant": f"tenant-{rng.randrange(40):02d}"}}
            for uid in user_ids
        },
        "services": {
            sid: {"owner": rng.choice(user_ids), "level": rng.choice(LEVELS),
                  "visibility": rng.choice(("public", "private"))}
            for sid in service_ids
        },
        "approvals": {},
        "routes": [],
    }
    blocked_ids = tuple(sorted(rng.sample(user_ids, blocked)))
    pool: list[dict[str, Any]] = []
    for i in range(requests):
        # Mostly known users, a tenth of them blocked, a few unknown ones.
        draw = rng.random()
        if draw < 0.05:
            user_id = f"user-unknown-{i}"
        elif draw < 0.15:
            user_id = rng.choice(blocked_ids)
        else:
            user_id = rng.choice(user_ids)
        pool.append({"user_id": user_id, "service_id": rng.choice(service_ids),
                     "action": rng.choice(ACTIONS), "context": {"ip_address": "10.1.2.3"}})
    return AccessWorld(data=data, blocked_user_ids=blocked_ids, requests=tuple(pool))


def blocked_users_policy(blocked_user_ids: Sequence[str]) -> dict[str, Any]:
    """The access_control policy that carries the block list, in pdp's document format."""
    return {
        "id": "blocked-users", "name": "Blocked users", "type": "access_control",
        "description": "Accounts suspended for abuse may not use any service.",
        "enabled": True, "severity": "critical", "enforcement": "deny",
        "rule": {"blocked_user_ids": list(blocked_user_ids)},
        "message": "The account is suspended.", "remediation": "Contact support.",
        "metadata": {"owner": "trust-and-safety"},
    }


def load_default_policies() -> list[dict[str, Any]]:
    """The five default policy documents, read from the built-in bundle's source."""
    paths = sorted((MARKETPLACE / "policies").glob("*.yaml"))
    documents = [yaml.safe_load(p.read_text()) for p in paths]
    for path, document in zip(paths, documents, strict=True):
        parse_policy(document, source=str(path))  # fail early, naming the file, if one is invalid
    return documents


def bundle_listings() -> list[dict[str, Any]]:
    """Every validate_service input of the bundle's tests: the agreement check's wider net."""
    listings: list[dict[str, Any]] = []
    for path in sorted((MARKETPLACE / "tests").glob("*.json")):
        raw = json.loads(path.read_text())
        for case in raw.get("cases", [raw]):
            if case["query"] == "validate_service":
                listings.append(case["input"])
    return listings


def example(name: str) -> dict[str, Any]:
    """A sample input from bundles/marketplace/examples/."""
    loaded: dict[str, Any] = json.loads((MARKETPLACE / "examples" / name).read_text())
    return loaded


def check_agreement(
    contenders: Sequence[Contender], listings: Sequence[Mapping[str, Any]],
    requests: Sequence[Mapping[str, Any]],
) -> None:
    """Raise InvalidComparisonError unless every engine gives pdp's decision on every input."""
    reference, *others = contenders
    for listing in listings:
        expected = reference.violations(reference.validate_service(listing))
        for other in others:
            got = other.violations(other.validate_service(listing))
            if got != expected:
                raise InvalidComparisonError(
                    f"validate_service: {other.name} found {sorted(got)}, {reference.name} found "
                    f"{sorted(expected)} for {json.dumps(listing, sort_keys=True)}")
    for request in requests:
        allowed = reference.allowed(reference.check_access(request))
        for other in others:
            if other.allowed(other.check_access(request)) != allowed:
                raise InvalidComparisonError(
                    f"check_access: {other.name} disagrees with {reference.name} "
                    f"(allowed={allowed}) on {json.dumps(request, sort_keys=True)}")


def describe_access_pool(pdp: Contender, world: AccessWorld) -> str:
    """Count the kinds of answer in the request pool, so a reader sees it is a mixed workload."""
    blocked = set(world.blocked_user_ids)
    kinds = {"allowed": 0, "denied: blocked": 0, "denied: unknown user": 0,
             "denied: missing permission": 0}
    for request in world.requests:
        if pdp.allowed(pdp.check_access(request)):
            kinds["allowed"] += 1
        elif request["user_id"] in blocked:
            kinds["denied: blocked"] += 1
        elif request["user_id"] not in world.data["users"]:
            kinds["denied: unknown user"] += 1
        else:
            kinds["denied: missing permission"] += 1
    if not all(kinds.values()):
        raise InvalidComparisonError(
            f"the request pool does not cover every kind of answer: {kinds}")
    return ", ".join(f"{count} {kind}" for kind, count in kinds.items())


@dataclass(frozen=True)
class Workload:
    """One row group of the report: a label, the query, and the inputs it is timed on."""

    label: str
    query: str
    inputs: Sequence[Mapping[str, Any]]


def run(args: argparse.Namespace) -> int:
    """Build the engines, check they agree, time every workload and print the report."""
    rng = random.Random(args.seed)
    world = generate_access_world(rng, users=1000, services=200, blocked=50,
                                  requests=args.requests)
    defaults = load_default_policies()
    compliant = example("compliant-listing.json")
    breaking = example("listing-breaking-3-policies.json")

    pdp = PdpContender([*defaults, blocked_users_policy(world.blocked_user_ids)], world.data)
    contenders: list[Contender] = [
        pdp,
        RegoVmContender(world.data, world.blocked_user_ids),
        RegoEngineContender(world.data, world.blocked_user_ids),
        CedarContender(world.data, world.blocked_user_ids),
    ]
    if pdp.violations(pdp.validate_service(breaking)) != {
        "restricted-countries", "https-required", "enterprise-sla-minimum"}:
        raise InvalidComparisonError("the 'breaking 3 policies' example does not break exactly 3")
    check_agreement(contenders, [compliant, breaking, *bundle_listings()], world.requests)
    print(machine_summary())
    print(f"check_access pool: {describe_access_pool(pdp, world)}")
    print("All engines agree on every input; timing.\n")

    workloads = [
        Workload("validate_service, compliant listing", "validate_service", [compliant]),
        Workload("validate_service, 3 violations", "validate_service", [breaking]),
        Workload(f"check_access, {len(world.requests)} mixed requests", "check_access",
                 world.requests),
    ]
    rows: list[list[str]] = []
    verdicts: list[str] = []
    for workload in workloads:
        timings = time_interleaved(
            {c.name: getattr(c, workload.query) for c in contenders}, workload.inputs,
            samples=args.samples, batch=args.batch, warmup=args.warmup, rounds=args.rounds)
        rows.extend(report_rows(workload, contenders, timings))
        verdicts.append(verdict(workload, timings, pdp.name))
    print(render_table(
        ["workload", "engine", "median µs", "p99 µs", "input conversion µs (median)"], rows))
    samples = args.samples // args.rounds * args.rounds
    print(f"\n{samples} samples per cell in {args.rounds} alternating rounds, each sample the "
          f"mean of a batch of {args.batch} calls; p99 is the p99 of those batch means. "
          "GC disabled while timing.")
    print(schema_check_note(workloads, args))
    print("\n".join(["", *verdicts]))
    missed = any(v.startswith("MISS") for v in verdicts)
    return 1 if (missed and args.check) else 0


def schema_check_note(workloads: Sequence[Workload], args: argparse.Namespace) -> str:
    """pdp's input schema check, which shells run before deciding and no other engine has."""
    figures = []
    for workload in workloads:
        check = partial(parse_input, workload.query)
        timing = time_calls(check, workload.inputs, samples=args.samples // 4, batch=args.batch,
                            warmup=args.warmup // 4)
        figures.append(f"{workload.label}: {timing.median_us:.2f} µs")
    return ("pdp's schema check of a raw input (parse_input, run by the shells before deciding; "
            "not in the figures above, and the other engines have no counterpart): "
            + "; ".join(figures))


def report_rows(
    workload: Workload, contenders: Sequence[Contender], timings: Mapping[str, Timing]
) -> list[list[str]]:
    """Table rows for one workload: each engine's figures, with its input-conversion share."""
    rows = []
    for contender in contenders:
        timing = timings[contender.name]
        convert = contender.conversions.get(workload.query)
        conversion = "—"
        if convert is not None:
            alone = time_calls(convert, workload.inputs, samples=500, batch=20, warmup=200)
            conversion = f"{alone.median_us:.2f}"
        rows.append([workload.label, contender.name, f"{timing.median_us:.2f}",
                     f"{timing.p99_us:.2f}", conversion])
    return rows


def verdict(workload: Workload, timings: Mapping[str, Timing], pdp_name: str) -> str:
    """One line per workload: pdp's median against its target and against the fastest rival."""
    ours = timings[pdp_name]
    rival_name, rival = min(((n, t) for n, t in timings.items() if n != pdp_name),
                            key=lambda item: item[1].median_us)
    ratio = rival.median_us / ours.median_us
    target = TARGET_US[workload.query]
    ok = ours.median_us <= target and ratio >= TARGET_RATIO
    return (f"{'PASS' if ok else 'MISS'} {workload.label}: pdp median {ours.median_us:.2f} µs "
            f"(target ≤ {target:g} µs); pdp is {ratio:.1f}x faster than the fastest other "
            f"engine, {rival_name} at {rival.median_us:.2f} µs (target ≥ {TARGET_RATIO:g}x)")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Command-line options; the defaults are the figures recorded in docs/benchmarks.md."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=_at_least(100), default=2000,
                        help="timed samples per cell (at least 100)")
    parser.add_argument("--batch", type=_at_least(1), default=20, help="calls per timed sample")
    # Short slices (20 samples of each engine per round by default) keep the engines' samples
    # close together in time, so a burst of load from other processes hits them alike.
    parser.add_argument("--rounds", type=_at_least(1), default=100,
                        help="alternating rounds the samples are split into")
    parser.add_argument("--warmup", type=_at_least(0), default=2000,
                        help="untimed calls before timing")
    parser.add_argument("--requests", type=_at_least(200), default=2000,
                        help="check_access pool size (at least 200: every kind of answer occurs)")
    parser.add_argument("--seed", type=int, default=20261128, help="seed of the generated data")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when pdp misses a target (for scripts)")
    args = parser.parse_args(argv)
    if args.rounds > args.samples:
        parser.error(f"--rounds ({args.rounds}) must not exceed --samples ({args.samples})")
    return args


def _at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below the minimum of {minimum}")
        return value

    return parse


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: exit 0 after a report, 1 on a missed target with --check or a disagreement."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return run(args)
    except InvalidComparisonError as error:
        print(f"bench/core.py: no figures reported: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
