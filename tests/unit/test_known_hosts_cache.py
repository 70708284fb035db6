"""known_hosts files are parsed once per version, and a changed file is read again."""
from __future__ import annotations

import paramiko

from orchestrator.transport.ssh import host_keys


def _line(host: str) -> str:
    return f"{host} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"


def test_a_file_is_parsed_once_and_again_after_it_changes(tmp_path, monkeypatch):
    path = tmp_path / "known_hosts"
    path.write_text(_line("[127.0.0.21]:2222"))
    parses: list[str] = []
    real_load = paramiko.HostKeys.load

    def counting_load(self, filename):  # noqa: ANN001
        parses.append(filename)
        return real_load(self, filename)

    monkeypatch.setattr(paramiko.HostKeys, "load", counting_load)
    clients = [paramiko.SSHClient(), paramiko.SSHClient()]
    for client in clients:  # what each connection of a run does
        host_keys.load_known_hosts(client, "rpi", path)
        assert client.get_host_keys().lookup("[127.0.0.21]:2222") is not None
    first = host_keys._parsed_host_keys(str(path))
    second = host_keys._parsed_host_keys(str(path))
    assert parses.count(str(path)) == 1  # (the system's file, where there is one, is parsed once too)
    assert first.lookup("[127.0.0.21]:2222") is not None and second.lookup("[127.0.0.21]:2222") is not None
    first.add("[127.0.0.22]:2222", "ssh-ed25519", first.lookup("[127.0.0.21]:2222")["ssh-ed25519"])
    assert second.lookup("[127.0.0.22]:2222") is None  # each connection gets its own copy

    with path.open("a") as handle:  # a key accepted meanwhile (appended, as farm does)
        handle.write(_line("[127.0.0.23]:2222"))
    third = host_keys._parsed_host_keys(str(path))
    assert parses.count(str(path)) == 2
    assert third.lookup("[127.0.0.23]:2222") is not None
