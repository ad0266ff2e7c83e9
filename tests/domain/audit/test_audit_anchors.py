"""Audit anchors (store/audit_anchors.py): every signed checkpoint is appended outside the database,
and ``hsmgate audit verify`` holds the database against those lines. Someone who can write the
database — tampering here directly in SQLite, triggers dropped first — can rewrite and re-chain
records and delete checkpoints, cut off the end of a chain with its checkpoint, or delete a
checkpoint row; each is now caught (exit 1 and a line naming it), an untouched log still passes."""

from __future__ import annotations

import json
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hsmgate.domain.audit.chain import record_hash
from hsmgate.store.audit import AuditRepository
from tests.domain.audit.test_audit import rows, sql, unprotect, workload
from tests.helpers import LiveServer, soft_settings

INTERVAL = 4


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[LiveServer]:
    """A dev-mode server whose chain is checkpointed (and anchored) every 4 records."""
    with LiveServer(soft_settings(tmp_path / "data", audit_checkpoint_interval=INTERVAL)) as live:
        yield live


def anchor_file(server: LiveServer) -> Path:
    return server.settings.data_dir / "audit-anchors.jsonl"


def anchors(server: LiveServer) -> list[dict[str, Any]]:
    return [json.loads(line) for line in anchor_file(server).read_text().splitlines()]


def audit_cli(server: LiveServer, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    """``hsmgate audit ...`` with the server's settings (its interval included)."""
    from typer.testing import CliRunner

    from hsmgate.cli import cli

    monkeypatch.setenv("HSMGATE_DATA_DIR", str(server.settings.data_dir))
    monkeypatch.setenv("HSMGATE_MASTER_KEY", server.settings.master_key.get_secret_value())  # type: ignore[union-attr]
    monkeypatch.setenv("HSMGATE_AUDIT_CHECKPOINT_INTERVAL", str(INTERVAL))
    monkeypatch.delenv("HSMGATE_CONFIG", raising=False)
    return CliRunner().invoke(cli, ["audit", *args])


def tampered(result: Any) -> list[str]:
    assert result.exit_code == 1, result.output
    return [line for line in result.output.splitlines() if line.startswith("TAMPERED: ")]


def rechain_from(server: LiveServer, seq: int, key_label: str) -> None:
    """Change record ``seq`` and recompute every hash after it, head included: a consistent chain."""
    records = rows(server)
    records[seq - 1]["key_label"] = key_label
    previous = records[seq - 2]["hash"]
    for record in records[seq - 1:]:
        record["prev_hash"] = previous
        record["hash"] = previous = record_hash(record)
        sql(server, f"UPDATE audit_log SET key_label = '{record['key_label'] or ''}', "
                    f"prev_hash = '{record['prev_hash']}', hash = '{record['hash']}' WHERE seq = {record['seq']}")
    sql(server, "UPDATE audit_log SET key_label = NULL WHERE key_label = ''",
        f"UPDATE audit_chain_heads SET hash = '{previous}'")


def test_every_signed_checkpoint_is_appended_to_a_private_file(server: LiveServer) -> None:
    workload(server)
    stored = AuditRepository(server.app.state.db).checkpoints("default")
    assert [c["seq"] for c in stored] == [4, 8]
    lines = anchors(server)
    assert lines == [{"type": "hsmgate-audit-anchor", **{k: c[k] for k in ("partition", "seq", "hash", "time",
                                                                           "key_name", "signature")}}
                     for c in stored]
    assert stat.S_IMODE(anchor_file(server).stat().st_mode) == 0o600


def test_lines_are_appended_across_restarts_and_by_the_checkpoint_command(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    settings = soft_settings(tmp_path / "data", audit_checkpoint_interval=INTERVAL)
    with LiveServer(settings) as first, first.client() as http:
        for _ in range(5):
            http.get("/v1/key")
    assert [a["seq"] for a in anchors(first)] == [4, 5]  # the interval, then shutdown
    with LiveServer(settings) as second, second.client() as http:
        http.get("/v1/key")
        result = audit_cli(second, monkeypatch, "checkpoint")
        assert result.exit_code == 0 and "checkpoint signed at record 6" in result.output, result.output
    assert [a["seq"] for a in anchors(second)] == [4, 5, 6]


def test_an_untouched_log_passes(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    workload(server)
    result = audit_cli(server, monkeypatch, "verify")
    assert result.exit_code == 0, result.output
    assert "partition default: 10 records, 2 checkpoints (2 signatures verified): OK; 2 anchored checkpoints" \
        in result.output


def test_a_rewritten_chain_with_its_checkpoints_deleted_is_caught(server: LiveServer,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Record 3 changed, everything after it re-chained, every checkpoint row deleted: the chain
    is consistent and no checkpoint contradicts it — only the anchors do."""
    workload(server)
    unprotect(server)
    rechain_from(server, 3, "innocent")
    sql(server, "DELETE FROM audit_checkpoints")
    problems = tampered(audit_cli(server, monkeypatch, "verify"))
    assert "TAMPERED: partition default: record 4: does not match its anchored checkpoint (the chain was rewritten)" \
        in problems
    assert ("TAMPERED: partition default: record 4: its checkpoint is anchored outside the database but missing "
            "from it (the checkpoint was deleted)") in problems
    assert not [p for p in problems if "was changed" in p]  # the chain itself is consistent


def test_an_end_cut_off_with_its_checkpoint_is_caught(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Records 8–10 and the checkpoint of record 8 deleted, the head moved back to record 7."""
    workload(server)
    unprotect(server)
    seventh = rows(server)[6]["hash"]
    sql(server, "DELETE FROM audit_log WHERE seq >= 8", "DELETE FROM audit_checkpoints WHERE seq = 8",
        f"UPDATE audit_chain_heads SET seq = 7, hash = '{seventh}'")
    problems = tampered(audit_cli(server, monkeypatch, "verify"))
    assert ("TAMPERED: partition default: record 8: is anchored outside the database but the chain ends at "
            "record 7 (records at the end were removed)") in problems


def test_a_deleted_checkpoint_row_is_caught(server: LiveServer, monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    workload(server)
    unprotect(server)
    sql(server, "DELETE FROM audit_checkpoints WHERE seq = 4")
    problems = tampered(audit_cli(server, monkeypatch, "verify"))
    assert ("TAMPERED: partition default: record 4: its checkpoint is anchored outside the database but missing "
            "from it (the checkpoint was deleted)") in problems
    # Even without the anchors, the stretch without a checkpoint gives it away.
    empty = tmp_path / "no-anchors.jsonl"
    empty.write_text("")
    problems = tampered(audit_cli(server, monkeypatch, "verify", "--anchors", str(empty)))
    assert ("TAMPERED: partition default: chain: no signed checkpoint among records 1–7; one is due every 4 "
            "records (a checkpoint was deleted, or could not be signed: see the server log)") in problems


def test_more_records_after_the_last_anchor_than_the_interval_is_caught(server: LiveServer,
                                                                        monkeypatch: pytest.MonkeyPatch,
                                                                        tmp_path: Path) -> None:
    """An anchor file that stops early (or a log anchored elsewhere): 6 records after record 4."""
    workload(server)
    first_only = tmp_path / "first.jsonl"
    first_only.write_text(anchor_file(server).read_text().splitlines()[0] + "\n")
    problems = tampered(audit_cli(server, monkeypatch, "verify", "--anchors", str(first_only)))
    assert problems == [("TAMPERED: partition default: chain: 6 records follow the last anchored checkpoint (record 4); "
                         "at most 4 may (anchors are missing, or the anchor file is not the one this log was anchored "
                         "to)")]


def test_a_changed_anchor_does_not_verify(server: LiveServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    workload(server)
    lines = anchors(server)
    lines[1]["time"] = "2020-01-01T00:00:00.000000Z"
    edited = tmp_path / "edited.jsonl"
    edited.write_text("".join(json.dumps(line) + "\n" for line in lines))
    problems = tampered(audit_cli(server, monkeypatch, "verify", "--anchors", str(edited)))
    assert problems == [("TAMPERED: partition default: record 8: its anchored checkpoint does not verify with the "
                         "attestation key (the anchor was changed)")]


def test_an_unreadable_anchor_file_is_one_line_and_exit_2(server: LiveServer, monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    missing = audit_cli(server, monkeypatch, "verify", "--anchors", str(tmp_path / "nope.jsonl"))
    assert missing.exit_code == 2 and "cannot read the anchor file" in missing.output
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text('{"type": "hsmgate-audit-anchor", "partition": "default"}\n')
    broken = audit_cli(server, monkeypatch, "verify", "--anchors", str(garbage))
    assert broken.exit_code == 2 and "line 1: not an audit anchor line" in broken.output


def test_anchors_sent_to_syslog_verify_the_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """HSMGATE_AUDIT_ANCHOR_SYSLOG: one datagram per checkpoint; the lines, syslog prefix and all,
    are an anchor file for ``verify --anchors``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(10)
        port = receiver.getsockname()[1]
        settings = soft_settings(tmp_path / "data", audit_checkpoint_interval=INTERVAL, audit_anchor_syslog=True,
                                 audit_anchor_syslog_address=f"127.0.0.1:{port}")
        with LiveServer(settings) as live:
            workload(live)
            messages = [receiver.recv(65536).decode() for _ in range(2)]
            assert all(m.startswith("<38>") and "hsmgate: {\"type\":\"hsmgate-audit-anchor\"" in m for m in messages)
            collected = tmp_path / "syslog.log"
            collected.write_text("".join(f"Dec  7 10:00:00 host {m.rstrip(chr(0))}\n" for m in messages))
            result = audit_cli(live, monkeypatch, "verify", "--anchors", str(collected))
    assert result.exit_code == 0, result.output
    assert "2 anchored checkpoints" in result.output


def test_an_anchor_file_that_cannot_be_opened_stops_the_start(tmp_path: Path) -> None:
    from hsmgate.app import create_app
    from hsmgate.settings import ConfigError

    with pytest.raises(ConfigError, match="cannot open the audit anchor file .*no-such-dir"):
        create_app(soft_settings(tmp_path / "data", audit_anchor_file=tmp_path / "no-such-dir" / "anchors.jsonl"))


def test_an_existing_anchor_file_is_appended_to_and_made_private(tmp_path: Path) -> None:
    from hsmgate.store.audit_anchors import FileAnchors

    path = tmp_path / "anchors.jsonl"
    path.write_text("kept\n")
    path.chmod(0o644)
    sink = FileAnchors(path)
    sink.append({"partition": "p", "seq": 1, "hash": "h", "time": "t", "key_name": "k", "signature": "s"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    line = '{"type":"hsmgate-audit-anchor","partition":"p","seq":1,"hash":"h","time":"t","key_name":"k","signature":"s"}'
    assert path.read_text().splitlines() == ["kept", line]


def test_a_failing_sink_is_logged_and_the_others_still_get_the_checkpoint(tmp_path: Path,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    from hsmgate.domain.audit.recording import Actor, AuditTrail
    from hsmgate.store.audit_anchors import FileAnchors
    from hsmgate.store.database import Database

    class Broken:
        def append(self, checkpoint: object) -> None:
            raise OSError("disk full (simulated)")

        def close(self) -> None:
            pass

    class Signer:
        key_name = "attestation-key"

        def sign(self, message: bytes) -> bytes:
            return b"signature"

    db = Database(f"sqlite:///{tmp_path / 'state.db'}")
    db.migrate()
    good = FileAnchors(tmp_path / "anchors.jsonl")
    trail = AuditTrail(AuditRepository(db), checkpoint_interval=2, anchors=[Broken(), good])
    trail.signers["default"] = Signer()  # type: ignore[assignment]
    try:
        with caplog.at_level("ERROR", logger="hsmgate.audit"):
            for _ in range(2):
                trail.record(Actor("p", "api-key", "default", "r"), "getKeys", None, "ok")
        assert [c["seq"] for c in AuditRepository(db).checkpoints("default")] == [2]
        assert "checkpoint of partition default at record 2 not anchored: disk full (simulated)" in caplog.text
        assert [json.loads(line)["seq"] for line in (tmp_path / "anchors.jsonl").read_text().splitlines()] == [2]
    finally:
        trail.close()
        db.dispose()


def test_the_anchor_files_of_several_instances_are_read_together(server: LiveServer, monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    """Instances sharing one database each anchor what they sign: ``--anchors`` once per file (a
    line in both counts once)."""
    workload(server)
    first, second = anchor_file(server).read_text().splitlines()
    (tmp_path / "a.jsonl").write_text(first + "\n")
    (tmp_path / "b.jsonl").write_text(first + "\n" + second + "\n")
    result = audit_cli(server, monkeypatch, "verify", "--anchors", str(tmp_path / "a.jsonl"),
                       "--anchors", str(tmp_path / "b.jsonl"))
    assert result.exit_code == 0 and "OK; 2 anchored checkpoints" in result.output, result.output


def test_a_line_cut_short_by_a_full_disk_neither_swallows_the_next_nor_stops_verify(
        server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk filled up in the middle of an anchor line (seen with the data directory on a full
    tmpfs: tests/e2e/test_faults.py): the next line starts on a line of its own, and verify skips the
    torn one, says so and passes — before, the next line continued the torn one and verify refused
    the whole file (exit 2)."""
    from hsmgate.store.audit_anchors import FileAnchors

    workload(server)
    first, second = anchor_file(server).read_text().splitlines()
    anchor_file(server).write_text(first + "\n" + second[:57])  # the write of the second one cut short
    FileAnchors(anchor_file(server)).append(json.loads(second))  # signed again, appended whole
    assert anchor_file(server).read_text().splitlines() == [first, second[:57], second]
    result = audit_cli(server, monkeypatch, "verify")
    assert result.exit_code == 0, result.output
    assert "line 2 cut short" in result.output and "OK; 2 anchored checkpoints" in result.output
