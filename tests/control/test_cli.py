"""`pdp control`, `pdp control create-token` and `pdp admin` as real processes (DESIGN §8.5)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import pytest
import yaml
from control_support import SigningKeys, bearer
from ports import free_port
from process_support import RunningProcess, run_pdp, start, wait_until_ready

pytestmark = pytest.mark.slow


@dataclass
class ControlProcess:
    """A running `pdp control` and how to talk to it."""

    url: str
    database_url: str
    workdir: Path
    running: RunningProcess
    grpc_addr: str


async def create_token(database_url: str, role: str, workdir: Path) -> str:
    """A token made with `pdp control create-token`."""
    code, out, err = await run_pdp("control", "create-token", "--database-url", database_url,
                                   "--role", role, cwd=workdir)
    assert code == 0, err
    return out.strip()


@pytest.fixture
async def control(database_url: str, keys: SigningKeys,
                  tmp_path: Path) -> AsyncIterator[ControlProcess]:
    """`pdp control` on free ports, ready."""
    http, grpc = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    running = await start(["control", "--database-url", database_url, "--signing-key",
                           str(keys.private), "--key-id", keys.key_id, "--http-addr", http,
                           "--grpc-addr", grpc],
                          tmp_path / "control.log", cwd=tmp_path)
    try:
        await wait_until_ready(f"http://{http}/health/ready", running)
        yield ControlProcess(f"http://{http}", database_url, tmp_path, running, grpc)
    finally:
        code = await running.stop()
    assert code == 0, running.output()


@pytest.fixture
async def admin_token_file(control: ControlProcess) -> Path:
    """A file holding an admin token created on the command line."""
    path = control.workdir / "admin.token"
    token = await create_token(control.database_url, "admin", control.workdir)
    await asyncio.to_thread(path.write_text, token)
    return path


async def admin(control: ControlProcess, token_file: Path, *args: str,
                stdin: bytes | None = None) -> tuple[int, str, str]:
    """Run `pdp admin` against the control process."""
    return await run_pdp("admin", "--server", control.url, "--token-file", str(token_file),
                         *args, cwd=control.workdir, stdin=stdin)


async def test_create_token_prints_a_working_token_once(control: ControlProcess) -> None:
    """The printed token authenticates; only its hash is stored."""
    token = await create_token(control.database_url, "viewer", control.workdir)
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{control.url}/v1/policies", headers=bearer(token)) as answer:
            assert answer.status == 200
        async with session.get(f"{control.url}/v1/policies") as answer:
            assert answer.status == 401


async def test_create_token_migrates_an_empty_database(database_url: str,
                                                       tmp_path: Path) -> None:
    """create-token works before the control plane ever ran."""
    token = await create_token(database_url, "admin", tmp_path)
    assert token.startswith("pdp_")


async def test_create_token_refuses_an_unknown_role(database_url: str, tmp_path: Path) -> None:
    """A usage error exits 2."""
    code, _, err = await run_pdp("control", "create-token", "--database-url", database_url,
                                 "--role", "overlord", cwd=tmp_path)
    assert code == 2 and "overlord" in err


async def test_control_without_a_signing_key_is_a_usage_error(database_url: str,
                                                              tmp_path: Path) -> None:
    """Missing required options exit 2 and name the option."""
    code, _, err = await run_pdp("control", "--database-url", database_url, cwd=tmp_path)
    assert code == 2 and "--signing-key" in err


async def test_a_schema_the_database_refuses_is_named_without_a_traceback(
        database_url: str, keys: SigningKeys, tmp_path: Path) -> None:
    """A migration PostgreSQL refuses (here another application's `bundles` table is in the
    way) exits 1 naming the migration and PostgreSQL's reason, from both commands."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("CREATE TABLE bundles (other_application integer)")
    finally:
        await conn.close()
    runs = [await run_pdp("control", "--database-url", database_url, "--signing-key",
                          str(keys.private), "--key-id", keys.key_id, "--http-addr",
                          "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", cwd=tmp_path),
            await run_pdp("control", "create-token", "--database-url", database_url,
                          "--role", "admin", cwd=tmp_path)]
    for code, out, err in runs:
        assert code == 1, err
        assert ('PostgreSQL refused migration 0001_initial (nothing of it was applied): '
                'relation "bundles" already exists') in err
        assert "Traceback" not in err and not out


@pytest.mark.parametrize(("data", "reason"), [
    ('{"users": {"u": {"roles": ["nope"]}}}', "unknown role 'nope'"),
    ("{}", "policies/bad.yaml: type: required field is missing"),
])
async def test_a_seed_dir_the_core_refuses_is_a_usage_error_that_seeds_nothing(
        database_url: str, keys: SigningKeys, tmp_path: Path, data: str, reason: str) -> None:
    """--seed-dir is checked before anything is written: exit 2 naming the problem, no
    traceback, and no half-seeded draft that every later edit and publish would trip over."""
    seed = tmp_path / "seed"
    (seed / "policies").mkdir(parents=True)
    policy = "id: ok\nname: ok\ntype: security\nrule: {require_https: true}\n"
    (seed / "policies" / "bad.yaml").write_text(policy if "roles" in data else "id: ok\n")
    (seed / "data.json").write_text(data)
    code, _, err = await run_pdp("control", "--database-url", database_url, "--signing-key",
                                 str(keys.private), "--key-id", keys.key_id, "--http-addr",
                                 "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0",
                                 "--seed-dir", str(seed), cwd=tmp_path)
    assert code == 2 and f"pdp control: --seed-dir {seed}: " in err and reason in err, err
    assert "Traceback" not in err
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM policy_versions") == 0
        assert await conn.fetchval("SELECT count(*) FROM data_documents") == 0
    finally:
        await conn.close()


async def test_a_bundle_dir_that_is_a_file_is_a_usage_error(
        database_url: str, keys: SigningKeys, tmp_path: Path) -> None:
    """--bundle-dir naming a file exits 2 at start, rather than failing every write for ever."""
    taken = tmp_path / "main.tar.gz"
    taken.write_bytes(b"not a directory")
    code, _, err = await run_pdp("control", "--database-url", database_url, "--signing-key",
                                 str(keys.private), "--key-id", keys.key_id, "--http-addr",
                                 "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0",
                                 "--bundle-dir", str(taken), cwd=tmp_path)
    assert code == 2 and f"pdp control: --bundle-dir {taken}: not a directory" in err, err


@pytest.mark.parametrize("option", ["--bundle-dir", "--signing-key"])
async def test_an_empty_path_flag_is_a_usage_error(
        database_url: str, keys: SigningKeys, tmp_path: Path, option: str) -> None:
    """An empty path is refused naming its flag, not read as the current directory (where
    --bundle-dir '' wrote main.tar.gz)."""
    flags = {"--signing-key": str(keys.private), "--bundle-dir": str(tmp_path / "out"),
             option: ""}
    code, _, err = await run_pdp("control", "--database-url", database_url, "--key-id",
                                 keys.key_id, "--http-addr", "127.0.0.1:0", "--grpc-addr",
                                 "127.0.0.1:0", *(part for flag, value in flags.items()
                                                  for part in (flag, value)), cwd=tmp_path)
    assert code == 2 and f"pdp control: {option}: Value error, must not be empty" in err, err
    assert not (tmp_path / "main.tar.gz").exists()


async def test_control_with_a_malformed_key_id_names_the_key_id_option(
        database_url: str, keys: SigningKeys, tmp_path: Path) -> None:
    """A bad --key-id is a usage error that names --key-id, not the (good) signing key."""
    code, _, err = await run_pdp("control", "--database-url", database_url, "--signing-key",
                                 str(keys.private), "--key-id", "bad id", cwd=tmp_path)
    assert code == 2 and "pdp control: --key-id: key id 'bad id'" in err, err



async def test_control_reads_its_config_file_and_log_level_from_the_environment(
        database_url: str, keys: SigningKeys, tmp_path: Path) -> None:
    """`PDP_CONFIG` and `PDP_LOG_LEVEL` configure `pdp control` as they do `pdp run` (its
    --help says options come from the config file and PDP_*)."""
    http = f"127.0.0.1:{free_port()}"
    config = tmp_path / "control.yaml"
    config.write_text(yaml.safe_dump({"http_addr": http, "grpc_addr": f"127.0.0.1:{free_port()}",
                                      "signing_key": str(keys.private), "key_id": keys.key_id}))
    running = await start(["control", "--database-url", database_url], tmp_path / "control.log",
                          cwd=tmp_path,
                          env={"PDP_CONFIG": str(config), "PDP_LOG_LEVEL": "warning"})
    try:
        await wait_until_ready(f"http://{http}/health/ready", running)
    finally:
        assert await running.stop() == 0, running.output()
    assert '"level":"info"' not in running.output(), running.output()


async def test_admin_without_a_token_file_is_a_usage_error(tmp_path: Path) -> None:
    """Leaving out --token-file exits 2 naming it (DESIGN §8.5), before any request is sent."""
    code, _, err = await run_pdp("admin", "--server", "http://127.0.0.1:1", "fleet",
                                 cwd=tmp_path, env={"PDP_TOKEN_FILE": ""})
    assert code == 2 and "--token-file (or PDP_TOKEN_FILE) is required" in err, err



@pytest.mark.parametrize("action", ["get", "delete"])
async def test_admin_refuses_an_empty_policy_id(tmp_path: Path, action: str) -> None:
    """`policy get ''` (an unset shell variable) is a usage error saying the id is empty, not
    the server's bare 404 for /v1/policies/."""
    token_file = tmp_path / "t"
    token_file.write_text("pdp_token\n")
    code, _, err = await run_pdp("admin", "--server", "http://127.0.0.1:1", "--token-file",
                                 str(token_file), "policy", action, "", cwd=tmp_path)
    assert code == 2 and "a policy id must not be empty" in err, err


@pytest.mark.parametrize("text", ["", "# nothing here\n", "---\n---\n"])
async def test_admin_apply_of_a_file_without_policies_is_refused(tmp_path: Path,
                                                                 text: str) -> None:
    """Applying an empty file exits 1 saying nothing was applied, rather than 0 and silence."""
    token_file, policies = tmp_path / "t", tmp_path / "empty.yaml"
    token_file.write_text("pdp_token\n")
    policies.write_text(text)
    code, out, err = await run_pdp("admin", "--server", "http://127.0.0.1:1", "--token-file",
                                   str(token_file), "policy", "apply", "-f", str(policies),
                                   cwd=tmp_path)
    assert code == 1 and out == "", (out, err)
    assert f"{policies}: holds no policy documents; nothing was applied" in err, err


async def test_admin_refuses_a_token_file_with_a_control_character(tmp_path: Path) -> None:
    """A token with a stray control character is refused before it is sent (the server's HTTP
    parser would log the broken header line), and the token is not printed."""
    token_file = tmp_path / "t"
    token_file.write_text("pdp_SECRETTOKEN\x01\n")
    code, out, err = await run_pdp("admin", "--server", "http://127.0.0.1:1",
                                   "--token-file", str(token_file), "fleet", cwd=tmp_path)
    assert code == 1 and "holds characters no token has" in err, err
    assert "SECRETTOKEN" not in out + err


async def test_control_with_an_unreachable_database_exits_1(keys: SigningKeys,
                                                            tmp_path: Path) -> None:
    """A database that does not answer is reported, not a traceback, and nothing claims a
    control plane stopped that never started."""
    code, out, err = await run_pdp(
        "control", "--database-url", f"postgresql://postgres@127.0.0.1:{free_port()}/x",
        "--signing-key", str(keys.private), "--key-id", keys.key_id, cwd=tmp_path)
    assert code == 1 and "cannot connect to PostgreSQL" in err
    assert "Traceback" not in err
    assert "control plane stopped" not in out + err


async def test_control_on_a_database_that_does_not_exist_exits_1(
        database_url: str, keys: SigningKeys, tmp_path: Path) -> None:
    """A server that answers but refuses the connection is reported with its reason."""
    missing = database_url.rsplit("/", 1)[0] + "/pdp_no_such_database"
    code, _, err = await run_pdp(
        "control", "--database-url", missing,
        "--signing-key", str(keys.private), "--key-id", keys.key_id, cwd=tmp_path)
    assert code == 1 and "cannot connect to PostgreSQL" in err
    assert 'database "pdp_no_such_database" does not exist' in err
    assert "Traceback" not in err


async def test_policy_list_prints_a_table(control: ControlProcess,
                                          admin_token_file: Path) -> None:
    """People get aligned columns and a count."""
    code, out, _ = await admin(control, admin_token_file, "policy", "list")
    lines = out.splitlines()
    assert code == 0
    assert lines[0].split() == ["ID", "TYPE", "SEVERITY", "ENFORCEMENT", "ENABLED", "VERSION",
                                "UPDATED"]
    assert lines[-1] == "5 policies"


async def test_policy_list_json_is_for_scripts(control: ControlProcess,
                                               admin_token_file: Path) -> None:
    """--json prints the API's documents."""
    code, out, _ = await admin(control, admin_token_file, "--json", "policy", "list")
    assert code == 0
    assert json.loads(out)["total_count"] == 5


async def test_apply_creates_then_updates_then_reports_unchanged(
        control: ControlProcess, admin_token_file: Path) -> None:
    """apply -f is idempotent: create, change, re-apply."""
    policy = control.workdir / "eu.yaml"
    text = ("id: eu-only\nname: EU only\ntype: data_residency\nseverity: high\n"
            "rule: {allowed_countries: [DE, FR]}\n")
    await asyncio.to_thread(policy.write_text, text)
    first = await admin(control, admin_token_file, "policy", "apply", "-f", str(policy))
    await asyncio.to_thread(policy.write_text, text.replace("high", "low"))
    second = await admin(control, admin_token_file, "policy", "apply", "-f", str(policy))
    third = await admin(control, admin_token_file, "policy", "apply", "-f", str(policy))
    assert first[1].strip() == "policy eu-only created (version 1)"
    assert second[1].strip() == "policy eu-only updated (version 2)"
    assert third[1].strip() == "policy eu-only unchanged (version 2)"


async def test_apply_of_an_invalid_policy_names_the_field_and_exits_1(
        control: ControlProcess, admin_token_file: Path) -> None:
    """Errors are readable: the status, the message and each field path."""
    bad = b"id: bad\nname: Bad\ntype: security\nrule: {require_https: maybe}\n"
    code, _, err = await admin(control, admin_token_file, "policy", "apply", "-f", "-", stdin=bad)
    assert code == 1
    assert "HTTP 400" in err and "rule.require_https:" in err


@pytest.mark.parametrize(("value", "kind"), [("2024-01-01", "date"),
                                           ("!!binary aGVsbG8=", "bytes"),
                                           ("!!set {a, b}", "set")])
async def test_apply_names_a_yaml_value_json_cannot_carry(
        control: ControlProcess, admin_token_file: Path, value: str, kind: str) -> None:
    """A YAML-only value (an unquoted date, binary, a set) is refused naming the document,
    exit 1 and no traceback, and nothing is applied."""
    document = ("id: qa-dated\nname: Dated\ntype: security\nrule: {require_https: true}\n"
                f"metadata: {{since: {value}}}\n").encode()
    code, _, err = await admin(control, admin_token_file, "policy", "apply", "-f", "-",
                               stdin=document)
    assert code == 1, err
    assert "pdp admin: stdin: document 1 (qa-dated) holds a value JSON cannot represent" in err
    assert kind in err and "Traceback" not in err
    code, _, err = await admin(control, admin_token_file, "policy", "get", "qa-dated")
    assert code == 1 and "HTTP 404" in err


async def test_get_and_delete(control: ControlProcess, admin_token_file: Path) -> None:
    """get shows the document as YAML with its version; delete removes it."""
    code, out, _ = await admin(control, admin_token_file, "policy", "get", "https-required")
    assert code == 0 and "id: https-required" in out and "# version 1" in out
    code, out, _ = await admin(control, admin_token_file, "policy", "delete", "https-required")
    assert code == 0 and out.strip() == "policy https-required deleted"
    code, _, err = await admin(control, admin_token_file, "policy", "get", "https-required")
    assert code == 1 and "HTTP 404" in err


async def test_publish_and_rollback(control: ControlProcess, admin_token_file: Path) -> None:
    """publish makes bundle 1, rollback 1 makes bundle 2 with the same content."""
    code, out, _ = await admin(control, admin_token_file, "publish", "--notes", "first")
    assert code == 0 and out.startswith("published bundle 1 ")
    code, out, _ = await admin(control, admin_token_file, "--json", "rollback", "1")
    assert code == 0
    assert json.loads(out)["sequence"] == 2 and json.loads(out)["rollback_of"] == 1


async def test_a_wrong_role_is_reported_as_forbidden(control: ControlProcess) -> None:
    """A viewer cannot publish: exit 1 with the 403 message."""
    token_file = control.workdir / "viewer.token"
    token = await create_token(control.database_url, "viewer", control.workdir)
    await asyncio.to_thread(token_file.write_text, token)
    code, _, err = await admin(control, token_file, "publish")
    assert code == 1 and "HTTP 403" in err and "viewer" in err


async def test_an_unreachable_server_is_reported(tmp_path: Path) -> None:
    """No traceback when nothing listens."""
    token_file = tmp_path / "t"
    await asyncio.to_thread(token_file.write_text, "pdp_x")
    code, _, err = await run_pdp("admin", "--server", f"http://127.0.0.1:{free_port()}",
                                 "--token-file", str(token_file), "policy", "list", cwd=tmp_path)
    assert code == 1 and "cannot reach the control plane" in err


async def test_sigterm_answers_held_long_polls_and_exits_cleanly(
        control: ControlProcess, admin_token_file: Path) -> None:
    """A replica told to stop answers its waiting sidecars 304 and exits 0 within seconds."""
    code, _, err = await admin(control, admin_token_file, "publish")
    assert code == 0, err
    token = (await asyncio.to_thread(admin_token_file.read_text)).strip()
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{control.url}/bundles/main", headers=bearer(token)) as first:
            etag = first.headers["ETag"]
        held = asyncio.ensure_future(session.get(
            f"{control.url}/bundles/main",
            headers={**bearer(token), "If-None-Match": etag, "Prefer": "wait=60"}))
        await asyncio.sleep(0.5)
        started = asyncio.get_running_loop().time()
        exit_code = await control.running.stop()
        answer = await held
        assert answer.status == 304
        answer.release()
    assert exit_code == 0
    assert asyncio.get_running_loop().time() - started < 5.0


async def test_a_port_in_use_is_reported_without_a_traceback(control: ControlProcess,
                                                             keys: SigningKeys) -> None:
    """A second replica on the same HTTP address exits 2 naming the address."""
    taken = control.url.removeprefix("http://")
    code, _, err = await run_pdp(
        "control", "--database-url", control.database_url, "--signing-key", str(keys.private),
        "--key-id", keys.key_id, "--http-addr", taken, "--grpc-addr", f"127.0.0.1:{free_port()}",
        cwd=control.workdir)
    assert code == 2 and f"cannot listen for HTTP on {taken}" in err
    assert "Traceback" not in err


async def test_fleet_and_decisions_for_people(control: ControlProcess,
                                              admin_token_file: Path) -> None:
    """fleet prints 'N of M on revision R' and a row per sidecar; decisions a row per event."""
    await admin(control, admin_token_file, "publish")
    token = (await asyncio.to_thread(admin_token_file.read_text)).strip()
    async with aiohttp.ClientSession(headers=bearer(token)) as session:
        report = {"instance_id": "pod-a", "state": "fresh", "revision": "1", "sequence": 1}
        await (await session.post(f"{control.url}/v1/status", json=report)).read()
        event = {"decision_id": "d-9", "instance_id": "pod-a", "query": "check_access",
                 "result": {"allowed": True}}
        await (await session.post(f"{control.url}/v1/logs", json=[event])).read()
    code, out, _ = await admin(control, admin_token_file, "fleet")
    assert code == 0 and out.splitlines()[0] == "1 of 1 on revision 1" and "pod-a" in out
    code, out, _ = await admin(control, admin_token_file, "decisions")
    assert code == 0 and "d-9" in out and "allowed=true" in out


async def test_fleet_shows_escape_sequences_sidecars_report_as_text(
        control: ControlProcess, admin_token_file: Path) -> None:
    """An instance id or error message carrying terminal escapes is printed escaped: a sidecar
    token cannot erase or forge lines on an admin's screen."""
    await admin(control, admin_token_file, "publish")
    await _report(control, admin_token_file, {
        "instance_id": "pod\x1b[2Kx", "state": "last_known_good", "revision": None,
        "sequence": None, "last_error": {"message": "bad\x1b[1A\rforged"}})
    code, out, err = await admin(control, admin_token_file, "fleet")
    assert code == 0, err
    assert "\x1b" not in out and "\r" not in out
    assert "pod\\x1b[2Kx" in out and "bad\\x1b[1A\\rforged" in out


async def _report(control: ControlProcess, token_file: Path, report: dict[str, object]) -> None:
    token = (await asyncio.to_thread(token_file.read_text)).strip()
    async with aiohttp.ClientSession(headers=bearer(token)) as session, \
            session.post(f"{control.url}/v1/status", json=report) as answer:
        assert answer.status == 200, await answer.text()


async def test_publish_wait_times_out_naming_who_is_behind(control: ControlProcess,
                                                           admin_token_file: Path) -> None:
    """A sidecar that never moves: exit 1 after --timeout, naming it with state and last error."""
    await _report(control, admin_token_file, {
        "instance_id": "pod-stuck", "state": "last_known_good", "revision": None,
        "sequence": None, "last_error": {"reason": "fetch_failed", "message": "dns failure"}})
    code, out, err = await admin(control, admin_token_file, "publish", "--wait",
                                 "--timeout", "1")
    assert code == 1, out + err
    assert out.splitlines()[-1].startswith("  0 of 1 on revision 1 (")
    assert ("timed out after 1 s: 0 of 1 on revision 1; behind: pod-stuck (revision -, "
            "last_known_good, last error: dns failure)") in err


async def test_publish_wait_json_still_names_the_bundle_when_it_times_out(
        control: ControlProcess, admin_token_file: Path) -> None:
    """The publish happened even if the fleet did not follow: --json prints the bundle with
    the wait's outcome, and the exit code says it did not converge."""
    await _report(control, admin_token_file, {
        "instance_id": "pod-stuck", "state": "fresh", "revision": None, "sequence": None})
    code, out, err = await admin(control, admin_token_file, "--json", "publish", "--wait",
                                 "--timeout", "1")
    printed = json.loads(out)
    assert code == 1, out + err
    assert printed["sequence"] == 1 and printed["sha256"]
    assert printed["wait"]["converged"] is False
    assert [s["instance_id"] for s in printed["wait"]["behind"]] == ["pod-stuck"]


async def test_publish_wait_with_no_reporting_sidecar_says_so(control: ControlProcess,
                                                              admin_token_file: Path) -> None:
    """Nothing to wait for is converged at once, and the output says no sidecar reported."""
    code, out, err = await admin(control, admin_token_file, "publish", "--wait")
    assert code == 0, err
    assert out.splitlines()[-1].startswith("converged: 0 of 0 on revision 1 in ")
    assert "no sidecar has reported" in out


async def _paused_control(database_url: str, keys: SigningKeys, tmp_path: Path,
                          pause: str) -> tuple[RunningProcess, str, Path]:
    """A ready `pdp control` whose publishes pause at `pause` (PDP_TEST_PUBLISH_PAUSE), its
    HTTP address and an admin token file."""
    http = f"127.0.0.1:{free_port()}"
    running = await start(["control", "--database-url", database_url, "--signing-key",
                           str(keys.private), "--key-id", keys.key_id, "--http-addr", http,
                           "--grpc-addr", f"127.0.0.1:{free_port()}"],
                          tmp_path / "control.log", cwd=tmp_path,
                          env={"PDP_TEST_PUBLISH_PAUSE": pause})
    try:
        await wait_until_ready(f"http://{http}/health/ready", running)
        token_file = tmp_path / "admin.token"
        token_file.write_text(await create_token(database_url, "admin", tmp_path))
    except BaseException:
        await running.stop()
        raise
    return running, http, token_file


async def test_a_publish_answered_too_late_is_not_reported_as_unreachable(
        database_url: str, keys: SigningKeys, tmp_path: Path) -> None:
    """When the answer to a publish does not come in time, `pdp admin` says the publish may
    have happened (it did), not that the control plane could not be reached."""
    running, http, token_file = await _paused_control(database_url, keys, tmp_path,
                                                      "before_commit:3")
    try:
        code, _, err = await run_pdp("admin", "--server", f"http://{http}", "--token-file",
                                     str(token_file), "--request-timeout", "1", "publish",
                                     cwd=tmp_path)
        assert code == 1, err
        assert (f"pdp admin: no answer from the control plane at http://{http} within 1 s; "
                "the POST /v1/publish may still have been applied") in err
        assert "cannot reach" not in err
        await asyncio.sleep(3)
        code, out, err = await run_pdp("admin", "--server", f"http://{http}", "--token-file",
                                       str(token_file), "--json", "fleet", cwd=tmp_path)
        assert code == 0 and json.loads(out)["latest"]["sequence"] == 1, err
    finally:
        assert await running.stop() == 0, running.output()


async def test_a_publish_cut_off_by_a_crash_is_not_reported_as_unreachable(
        database_url: str, keys: SigningKeys, tmp_path: Path) -> None:
    """A control plane killed after committing a publish, before answering: `pdp admin` says
    the publish may have happened (it did), not that the control plane could not be reached."""
    running, http, token_file = await _paused_control(database_url, keys, tmp_path,
                                                      "after_commit:30")
    try:
        publishing = asyncio.create_task(run_pdp(
            "admin", "--server", f"http://{http}", "--token-file", str(token_file), "publish",
            cwd=tmp_path))
        for _ in range(200):
            if "test publish pause" in running.output():
                break
            await asyncio.sleep(0.05)
        running.process.kill()
        code, _, err = await asyncio.wait_for(publishing, 20)
        assert code == 1, err
        assert (f"pdp admin: the control plane at http://{http} closed the connection without "
                "answering; the POST /v1/publish may still have been applied") in err
    finally:
        await running.stop()
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT max(sequence) FROM bundles") == 1
    finally:
        await conn.close()


async def test_publish_wait_rejects_a_nonsense_timeout(control: ControlProcess,
                                                       admin_token_file: Path) -> None:
    """--timeout 0 is a usage error (exit 2) and publishes nothing."""
    code, _, err = await admin(control, admin_token_file, "publish", "--wait", "--timeout", "0")
    assert code == 2 and "--timeout" in err
    code, out, _ = await admin(control, admin_token_file, "--json", "fleet")
    assert json.loads(out)["latest"] is None


async def test_a_malformed_test_publish_pause_stops_the_control_plane_with_exit_2(
        database_url: str, keys: SigningKeys, tmp_path: Path) -> None:
    """The test-only PDP_TEST_PUBLISH_PAUSE is checked at start, never half-applied."""
    code, _, err = await run_pdp("control", "--database-url", database_url, "--signing-key",
                                 str(keys.private), "--key-id", keys.key_id,
                                 cwd=tmp_path, env={"PDP_TEST_PUBLISH_PAUSE": "mid_publish:5"})
    assert code == 2
    assert "PDP_TEST_PUBLISH_PAUSE='mid_publish:5': the point must be one of" in err


POLICY_M1 = ("id: qa-m1\nname: M1\ntype: data_residency\nseverity: high\n"
             "rule: {allowed_countries: [DE, FR]}\n")


async def test_apply_validates_every_document_before_applying_any(
        control: ControlProcess, admin_token_file: Path) -> None:
    """A file whose second document is invalid applies nothing (not even the valid first one),
    and the error names the invalid document and its field."""
    text = POLICY_M1 + "---\nid: qa-m2\nname: M2\ntype: security\nrule: {require_https: maybe}\n"
    code, out, err = await admin(control, admin_token_file, "policy", "apply", "-f", "-",
                                 stdin=text.encode())
    assert code == 1 and out == ""
    assert "stdin: 1 of 2 documents invalid; nothing was applied" in err
    assert "document 2 (qa-m2): HTTP 400" in err and "rule.require_https:" in err
    code, _, err = await admin(control, admin_token_file, "policy", "get", "qa-m1")
    assert code == 1 and "HTTP 404" in err


async def _with_stale_version(control: ControlProcess, token_file: Path) -> str:
    """The seeded https-required policy as YAML, claiming a version it does not have."""
    code, out, err = await admin(control, token_file, "--json", "policy", "get", "https-required")
    assert code == 0, err
    return yaml.safe_dump({**json.loads(out)["policy"], "version": 7})


async def test_apply_shows_what_was_applied_before_a_later_failure(
        control: ControlProcess, admin_token_file: Path) -> None:
    """Each policy is printed as it is applied, so a later refusal (here a version conflict)
    still shows what changed, and the error says which document failed."""
    text = POLICY_M1 + "---\n" + await _with_stale_version(control, admin_token_file)
    code, out, err = await admin(control, admin_token_file, "policy", "apply", "-f", "-",
                                 stdin=text.encode())
    assert code == 1
    assert out.splitlines() == ["policy qa-m1 created (version 1)"]
    assert "document 2 (https-required): HTTP 409" in err
    assert "1 of 2 documents applied before it" in err


async def test_apply_json_lists_what_was_applied_before_a_later_failure(
        control: ControlProcess, admin_token_file: Path) -> None:
    """With --json, the documents applied before a failure are still printed as JSON."""
    text = POLICY_M1 + "---\n" + await _with_stale_version(control, admin_token_file)
    code, out, _ = await admin(control, admin_token_file, "--json", "policy", "apply", "-f", "-",
                               stdin=text.encode())
    assert code == 1
    assert [(r["outcome"], r["policy"]["id"]) for r in json.loads(out)] == [("created", "qa-m1")]


async def test_apply_of_a_file_nested_too_deeply_is_refused_naming_it(tmp_path: Path) -> None:
    """YAML nested deeper than the parser can follow is refused in one line naming the file,
    before anything is sent."""
    token_file, policy = tmp_path / "t", tmp_path / "deep.yaml"
    await asyncio.to_thread(token_file.write_text, "pdp_x")
    await asyncio.to_thread(policy.write_text, "labels: " + "[" * 20_000 + "]" * 20_000 + "\n")
    code, _, err = await run_pdp("admin", "--server", f"http://127.0.0.1:{free_port()}",
                                 "--token-file", str(token_file), "policy", "apply", "-f",
                                 str(policy), cwd=tmp_path)
    assert code == 1
    assert err == f"pdp admin: {policy}: nested too deeply to be a policy file\n"


async def test_a_malformed_server_url_is_a_usage_error(tmp_path: Path) -> None:
    """--server that is not an http(s) URL exits 2 naming the option, without a traceback."""
    token_file = tmp_path / "t"
    await asyncio.to_thread(token_file.write_text, "pdp_x")
    for server in ("http://[::1", "127.0.0.1:8282", "http://127.0.0.1:99999"):
        code, _, err = await run_pdp("admin", "--server", server, "--token-file",
                                     str(token_file), "policy", "list", cwd=tmp_path)
        assert code == 2, err
        assert "argument --server" in err and "Traceback" not in err


async def test_a_grpc_port_is_not_taken_for_the_control_plane(
        control: ControlProcess, admin_token_file: Path) -> None:
    """--server at the control plane's gRPC port exits 1: the answer is not its HTTP API."""
    server = f"http://{control.grpc_addr}"
    code, _, err = await run_pdp("admin", "--server", server, "--token-file",
                                 str(admin_token_file), "policy", "list", cwd=control.workdir)
    assert code == 1
    assert f"pdp admin: {server}: the answer is not the pdp control plane's API (" in err
    assert "Traceback" not in err


async def test_a_sidecar_is_not_taken_for_the_control_plane(tmp_path: Path) -> None:
    """--server at a sidecar's HTTP port (which answers 200 with other JSON) exits 1 saying the
    answer is not the control plane's API, for a listing and for one policy."""
    http = f"127.0.0.1:{free_port()}"
    sidecar = await start(["run", "--dev", "--http-addr", http,
                           "--grpc-addr", f"127.0.0.1:{free_port()}"],
                          tmp_path / "sidecar.log", cwd=tmp_path)
    token_file = tmp_path / "t"
    await asyncio.to_thread(token_file.write_text, "pdp_x")
    try:
        await wait_until_ready(f"http://{http}/health/ready", sidecar)
        for command in (("policy", "list"), ("policy", "get", "https-required")):
            code, _, err = await run_pdp("admin", "--server", f"http://{http}", "--token-file",
                                         str(token_file), *command, cwd=tmp_path)
            assert code == 1, err
            assert (f"pdp admin: http://{http}: the answer is not the pdp control plane's API ("
                    in err)
            assert "Traceback" not in err
    finally:
        await sidecar.stop()


@pytest.mark.parametrize("bad", ["postgresql://postgres:pw@127.0.0.1:notaport/db",
                                 "postgresql://postgres:pw@[::1/db",
                                 "mysql://postgres:pw@127.0.0.1/db",
                                 "postgresql://postgres:pw@127.0.0.1/db?sslmode=bogus",
                                 "postgresql://postgres:S3cret/pw@127.0.0.1/db",
                                 "postgresql://postgres:S3cret?pw@127.0.0.1/db"])
async def test_a_malformed_database_url_is_a_usage_error_without_its_password(
        keys: SigningKeys, tmp_path: Path, bad: str) -> None:
    """Both commands that take --database-url exit 2 naming the problem, not a traceback, and
    no part of the password is printed (one with an unescaped / or ? is split by the parser)."""
    runs = [await run_pdp("control", "--database-url", bad, "--signing-key", str(keys.private),
                          "--key-id", keys.key_id, cwd=tmp_path),
            await run_pdp("control", "create-token", "--database-url", bad, "--role", "admin",
                          cwd=tmp_path)]
    for code, out, err in runs:
        assert code == 2, err
        assert "the database URL is not valid" in err
        assert "Traceback" not in err and "pw" not in out + err and "S3cret" not in out + err
