"""The Pebble harness starts both CA versions as configured and serves their DNS answers."""

import datetime
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from support.pebble import PebbleConfig, PebbleError, PebbleServer, Profile

pytestmark = pytest.mark.integration

PROFILES = {
    "classic": Profile(description="Ninety days", validity_period=90 * 86400),
    "shortlived": Profile(description="Six days", validity_period=6 * 86400),
}
EAB_KEY = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"

DNS_TYPE_A = 1
DNS_TYPE_TXT = 16
DNS_TYPE_AAAA = 28


@pytest.fixture(scope="module")
def pebble_2_10() -> Iterator[PebbleServer]:
    with PebbleServer(PebbleConfig(version="2.10", profiles=PROFILES)) as server:
        yield server


def test_pebble_2_10_offers_renewal_info_and_the_configured_profiles(
    pebble_2_10: PebbleServer,
) -> None:
    directory = pebble_2_10.directory()

    assert pebble_2_10.package_version.startswith("2.10.")
    assert directory["renewalInfo"].startswith(pebble_2_10.directory_url.removesuffix("/dir"))
    assert directory["meta"]["profiles"] == {"classic": "Ninety days", "shortlived": "Six days"}
    _assert_issuing_hierarchy(pebble_2_10)


def test_pebble_2_4_offers_neither_but_applies_its_configuration() -> None:
    config = PebbleConfig(version="2.4", eab_keys={"kid-1": EAB_KEY}, eab_required=True)

    with PebbleServer(config) as pebble_2_4:
        directory = pebble_2_4.directory()

        assert pebble_2_4.package_version.startswith("2.4.")
        assert "renewalInfo" not in directory
        assert "profiles" not in directory["meta"]
        assert directory["meta"]["externalAccountRequired"] is True
        _assert_issuing_hierarchy(pebble_2_4)

    assert EAB_KEY not in repr(config)


def test_renewal_info_is_refused_for_a_certificate_pebble_did_not_issue(
    pebble_2_10: PebbleServer,
) -> None:
    # The body is understood (a malformed one answers 400); only the serial is unknown.
    foreign = pebble_2_10.ca_file.read_text(encoding="ascii")

    with pytest.raises(PebbleError, match="answered 404"):
        pebble_2_10.set_renewal_info(foreign, _now(), _now())


def test_dns_server_answers_over_tcp_and_serves_txt_records(pebble_2_10: PebbleServer) -> None:
    name = "_acme-challenge.device.example.test"

    assert _query(pebble_2_10.dns_port, "device.example.test", DNS_TYPE_A) == [
        socket.inet_aton("127.0.0.1")
    ]
    assert _query(pebble_2_10.dns_port, "device.example.test", DNS_TYPE_AAAA) == []

    pebble_2_10.add_txt(name, "token-value")
    assert _query(pebble_2_10.dns_port, name, DNS_TYPE_TXT) == [b"\x0btoken-value"]

    pebble_2_10.clear_txt(name)
    assert _query(pebble_2_10.dns_port, name, DNS_TYPE_TXT) == []


def test_missing_binaries_point_to_the_install_script(tmp_path: Path) -> None:
    with pytest.raises(PebbleError, match=r"run tests/tools/install-tools\.sh"):
        PebbleServer(PebbleConfig(version="2.4"), tools_dir=tmp_path).start()


def _assert_issuing_hierarchy(server: PebbleServer) -> None:
    root = x509.load_pem_x509_certificate(server.roots_pem(0).encode())
    intermediate = x509.load_pem_x509_certificate(server.intermediates_pem(0).encode())

    assert root.subject == root.issuer
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    intermediate.verify_directly_issued_by(root)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _query(port: int, name: str, record_type: int) -> list[bytes]:
    """Ask the DNS server over TCP and return the raw data of each answer record."""
    question = b"".join(bytes([len(label)]) + label.encode() for label in name.split("."))
    message = struct.pack(">HHHHHH", 0x5A5A, 0x0100, 1, 0, 0, 0)
    message += question + b"\x00" + struct.pack(">HH", record_type, 1)

    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(struct.pack(">H", len(message)) + message)
        (length,) = struct.unpack(">H", _receive(connection, 2))
        reply = _receive(connection, length)

    return _answer_data(reply, offset=len(message))


def _answer_data(reply: bytes, offset: int) -> list[bytes]:
    # Answers follow the echoed question: owner name, type, class, TTL, data length, data.
    (answer_count,) = struct.unpack(">H", reply[6:8])
    answers = []
    for _ in range(answer_count):
        offset = _skip_name(reply, offset) + 8
        (data_length,) = struct.unpack(">H", reply[offset : offset + 2])
        answers.append(reply[offset + 2 : offset + 2 + data_length])
        offset += 2 + data_length
    return answers


def _skip_name(reply: bytes, offset: int) -> int:
    """Offset just past a domain name, written out in labels or ending in a pointer."""
    while reply[offset] != 0:
        if reply[offset] & 0xC0 == 0xC0:
            return offset + 2
        offset += 1 + reply[offset]
    return offset + 1


def _receive(connection: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            raise ConnectionError("DNS server closed the connection early")
        data += chunk
    return data
