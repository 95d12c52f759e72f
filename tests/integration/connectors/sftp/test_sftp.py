"""The SFTP connector against a real SFTP server on loopback (paramiko's server side)."""

from pathlib import Path

import paramiko
import pytest
from pydantic import SecretStr

from connectors.errors import FatalError, RetriableError
from connectors.sftp import SftpClient, SftpSettings, fingerprint_of
from connectors.sftp.localserver import LocalSftpServer


@pytest.fixture
def server(tmp_path: Path):
    root = tmp_path / "root"
    (root / "incoming").mkdir(parents=True)
    host = paramiko.Ed25519Key.generate() if hasattr(paramiko.Ed25519Key, "generate") else None
    if host is None:
        host = paramiko.ECDSAKey.generate()
    client_key = paramiko.ECDSAKey.generate()
    srv = LocalSftpServer(root, host_key=host, username="u", password="pw", public_key=client_key)
    srv.start()
    yield srv, root, host, client_key
    srv.stop()


def _settings(srv: LocalSftpServer, host: paramiko.PKey, **kw) -> SftpSettings:
    base = dict(
        host="127.0.0.1",
        port=srv.port,
        username="u",
        password={"env": "X"},
        host_key_fingerprint=fingerprint_of(host),
        remote_dir="incoming",
        pattern="*.xml",
        connect_timeout_seconds=5,
    )
    base.update(kw)
    return SftpSettings(**base)


def test_pick_up_verify_and_move(server, tmp_path: Path) -> None:
    srv, root, host, _ = server
    (root / "incoming" / "a.xml").write_bytes(b"<a/>")
    (root / "incoming" / "notes.txt").write_text("ignored by pattern")
    with SftpClient(_settings(srv, host), password=SecretStr("pw")) as c:
        assert c.list_new() == ["a.xml"]
        got = c.download("a.xml", tmp_path / "local")
        assert got.local_path.read_bytes() == b"<a/>" and got.size == 4 and len(got.sha256) == 64
        c.move("a.xml", "processed")
        assert c.list_new() == []
        up = tmp_path / "letters.zip"
        up.write_bytes(b"PK")
        c.upload(up, "outgoing")
    assert (root / "processed" / "a.xml").exists() and (
        root / "outgoing" / "letters.zip"
    ).read_bytes() == b"PK"


def test_key_auth_from_a_key_file(server, tmp_path: Path) -> None:
    srv, root, host, client_key = server
    import io

    buf = io.StringIO()
    client_key.write_private_key(buf)
    with SftpClient(
        _settings(srv, host, password=None, private_key={"file": "k"}),
        private_key=SecretStr(buf.getvalue()),
    ) as c:
        assert c.list_new() == []


def test_wrong_host_key_is_refused_never_added(server, tmp_path: Path) -> None:
    srv, _, _, _ = server
    other = paramiko.ECDSAKey.generate()
    with pytest.raises(FatalError, match="refusing to connect"):
        SftpClient(_settings(srv, other), password=SecretStr("pw")).connect()
    kh = tmp_path / "known_hosts"
    kh.write_text("")
    with pytest.raises(FatalError, match="not in known_hosts"):
        SftpClient(
            _settings(srv, other, host_key_fingerprint=None, known_hosts=str(kh)),
            password=SecretStr("pw"),
        ).connect()


def test_known_hosts_pinning_and_bad_password(server, tmp_path: Path) -> None:
    srv, _, host, _ = server
    kh = tmp_path / "known_hosts"
    kh.write_text(f"[127.0.0.1]:{srv.port} {host.get_name()} {host.get_base64()}\n")
    with SftpClient(
        _settings(srv, host, host_key_fingerprint=None, known_hosts=str(kh)),
        password=SecretStr("pw"),
    ) as c:
        assert c.list_new() == []
    with pytest.raises(FatalError, match="authentication refused"):
        SftpClient(_settings(srv, host), password=SecretStr("wrong")).connect()


# paramiko's prefetch thread dies with EOFError when the connection is killed: expected here
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_connection_killed_mid_transfer_leaves_nothing_and_resumes(server, tmp_path: Path) -> None:
    srv, root, host, _ = server
    payload = bytes(range(256)) * 40_000  # 10 MB
    (root / "incoming" / "big.xml").write_bytes(payload)
    local = tmp_path / "local"

    def kill(done: int, total: int) -> None:
        if done > 1_000_000:
            srv.drop_connections()

    with (
        SftpClient(_settings(srv, host), password=SecretStr("pw")) as c,
        pytest.raises(RetriableError),
    ):
        c.download("big.xml", local, progress=kill)
    assert list(local.iterdir()) == []  # no partial file under any name
    with SftpClient(_settings(srv, host), password=SecretStr("pw")) as c:
        got = c.download("big.xml", local)
    assert got.local_path.read_bytes() == payload


def test_server_confines_paths_to_its_root(server) -> None:
    srv, root, host, _ = server
    (root.parent / "secret.xml").write_text("outside")
    with (
        SftpClient(_settings(srv, host, remote_dir="../"), password=SecretStr("pw")) as c,
        pytest.raises(RetriableError),
    ):
        c.list_new()
    with (
        SftpClient(_settings(srv, host), password=SecretStr("pw")) as c,
        pytest.raises(FatalError, match="refusing remote file name"),
    ):
        c.download("../secret.xml", root)


def test_checksum_files_are_checked_and_travel_along(server, tmp_path: Path) -> None:
    import hashlib

    from connectors.sftp.client import ChecksumMismatch, ChecksumMissing

    srv, root, host, _ = server
    inc = root / "incoming"
    (inc / "a.xml").write_bytes(b"<a/>")
    s = _settings(srv, host, checksum="sha256")
    with SftpClient(s, password=SecretStr("pw")) as c:
        assert c.list_new() == ["a.xml"]
        with pytest.raises(ChecksumMissing):
            c.download("a.xml", tmp_path / "l")  # still uploading: left for the next run
        (inc / "a.xml.sha256").write_text(hashlib.sha256(b"<a/>").hexdigest() + "  a.xml\n")
        assert c.list_new() == ["a.xml"]  # the checksum file is not a statement itself
        assert c.download("a.xml", tmp_path / "l").size == 4
        c.move("a.xml", "processed")
        (inc / "b.xml").write_bytes(b"<b/>")
        (inc / "b.xml.sha256").write_text("0" * 64)
        with pytest.raises(ChecksumMismatch, match="does not match its checksum file"):
            c.download("b.xml", tmp_path / "l")
    assert (root / "processed" / "a.xml.sha256").exists()
    assert not (tmp_path / "l" / "b.xml").exists()


def test_a_file_of_many_segments_arrives_whole_with_progress(
    server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connectors.sftp import client as sftp_client

    srv, root, host, _ = server
    monkeypatch.setattr(sftp_client, "SEGMENT_BYTES", 100_000)  # not a multiple of a block
    payload = bytes(range(251)) * 4_001  # 1,004,251 bytes: eleven segments, the last short
    (root / "incoming" / "long.xml").write_bytes(payload)
    seen: list[tuple[int, int]] = []
    with SftpClient(_settings(srv, host), password=SecretStr("pw")) as c:
        got = c.download("long.xml", tmp_path / "local", progress=lambda d, t: seen.append((d, t)))
    assert got.local_path.read_bytes() == payload and got.size == len(payload)
    n = len(payload)
    assert seen == [(min(start + 100_000, n), n) for start in range(0, n, 100_000)]
