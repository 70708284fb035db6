"""Inventory loading, validation messages, --limit selection and ssh config resolution.

Every test writes real files (inventory YAML, ssh config) under tmp_path; nothing connects.
"""
from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from orchestrator.errors import BadInputError, ExitStatus
from orchestrator.inventory import (
    INVENTORY_ENV_VAR,
    Inventory,
    load_inventory,
    resolve_inventory_path,
    select_boards,
)
from orchestrator.transport.ssh.config import JumpHop, ResolvedSSH, parse_proxy_jump, resolve_ssh_settings

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "inventory" / "boards.example.yaml"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def line_of(path: Path, needle: str, nth: int = 1) -> int:
    """1-based line of the nth line of `path` containing `needle`."""
    hits = [i for i, text in enumerate(path.read_text().splitlines(), start=1) if needle in text]
    assert len(hits) >= nth, f"{needle!r} not in {path}"
    return hits[nth - 1]


def load(tmp_path: Path, text: str, name: str = "lab.yaml") -> Inventory:
    return load_inventory(write(tmp_path / name, text))


def load_error(tmp_path: Path, text: str, name: str = "lab.yaml") -> tuple[str, Path]:
    path = write(tmp_path / name, text)
    with pytest.raises(BadInputError) as caught:
        load_inventory(path)
    assert caught.value.exit_status == ExitStatus.BAD_INPUT
    return str(caught.value), path


def by_name(inventory: Inventory) -> dict:
    return {b.name: b for b in inventory.boards}


# --------------------------------------------------------------------------- inheritance


def test_precedence_host_over_child_group_over_parent_group(tmp_path):
    inv = load(
        tmp_path,
        """
        all:
          vars: {user: root-user, port: 2201, python: /usr/bin/python3, workdir: /srv/all}
          hosts:
            plain:
          children:
            rpi:
              vars: {user: rpi-user, port: 2202}
              hosts:
                rpi4-01: {port: 2203}
                rpi4-02:
        """,
    )
    boards = by_name(inv)
    assert (boards["plain"].user, boards["plain"].port) == ("root-user", 2201)
    assert (boards["rpi4-02"].user, boards["rpi4-02"].port) == ("rpi-user", 2202)
    assert (boards["rpi4-01"].user, boards["rpi4-01"].port) == ("rpi-user", 2203)
    # Set only on `all`: reaches the grandchildren.
    assert boards["rpi4-01"].python == "/usr/bin/python3"
    assert boards["rpi4-01"].workdir == "/srv/all"


def test_deeper_group_wins_even_when_written_before_its_parent_vars(tmp_path):
    # `lab` is defined first (nested in `all`), then `all` gets more vars in a second top-level
    # block, and `lab`'s child `rpi` comes last: depth decides, not file order.
    inv = load(
        tmp_path,
        """
        all:
          children:
            lab:
              vars: {user: lab-user}
              children:
                rpi:
                  hosts: {rpi4-01: null}
        rpi:
          vars: {port: 2300}
        lab:
          vars: {port: 2200, python: lab-python}
        """,
    )
    board = by_name(inv)["rpi4-01"]
    assert board.port == 2300  # rpi (depth 2) beats lab (depth 1) although lab's vars come later
    assert board.python == "lab-python"
    assert board.user == "lab-user"


def test_sibling_groups_of_equal_depth_later_in_file_wins(tmp_path):
    inv = load(
        tmp_path,
        """
        all:
          children:
            first:
              vars: {user: first-user, port: 2001}
              hosts: {b1: null}
            second:
              vars: {user: second-user}
              hosts: {b1: null}
        """,
    )
    board = by_name(inv)["b1"]
    assert board.user == "second-user"
    assert board.port == 2001
    assert board.groups == ("all", "first", "second")


def test_host_listed_twice_merges_its_vars_in_file_order(tmp_path):
    inv = load(
        tmp_path,
        """
        all:
          children:
            a:
              hosts:
                b1: {port: 2001, user: first, tags: {x: "1"}}
            b:
              hosts:
                b1: {user: second, tags: {y: "2"}}
        """,
    )
    board = by_name(inv)["b1"]
    assert (board.port, board.user) == (2001, "second")
    assert dict(board.tags) == {"x": "1", "y": "2"}
    assert [b.name for b in inv.boards] == ["b1"]


def test_tags_and_env_merge_across_levels_providers_replace(tmp_path):
    inv = load(
        tmp_path,
        """
        all:
          vars:
            tags: {arch: aarch64, site: lab1}
            env: {OMP_NUM_THREADS: 4, A: all}
            providers: [CPUExecutionProvider]
          children:
            jetson:
              vars:
                tags: {soc: tegra234, site: lab2}
                env: {A: jetson}
                providers: [TensorrtExecutionProvider, CUDAExecutionProvider]
              hosts:
                orin-01:
                  tags: {ram: 8GB}
                  runtime: openvino
                  providers: [CUDAExecutionProvider]
                orin-02:
        """,
    )
    boards = by_name(inv)
    assert dict(boards["orin-01"].tags) == {
        "arch": "aarch64",
        "site": "lab2",
        "soc": "tegra234",
        "ram": "8GB",
        "runtime": "openvino",
    }
    assert dict(boards["orin-02"].tags) == {"arch": "aarch64", "site": "lab2", "soc": "tegra234"}
    assert dict(boards["orin-02"].env) == {"OMP_NUM_THREADS": "4", "A": "jetson"}
    assert boards["orin-01"].providers == ("CUDAExecutionProvider",)
    assert boards["orin-02"].providers == ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def test_defaults_and_types_of_a_bare_host(tmp_path):
    inv = load(tmp_path, "all:\n  hosts:\n    b1:\n")
    board = inv.boards[0]
    assert board.transport == "ssh"
    assert (board.host, board.port, board.user, board.proxy_jump) == (None, None, None, None)
    assert board.python == "python3"
    assert board.connect_timeout_s == 10.0
    assert board.accept_new_host_keys is False
    assert board.groups == ("all",)
    assert inv.path == tmp_path / "lab.yaml"


def test_all_settings_reach_the_board(tmp_path):
    inv = load(
        tmp_path,
        """
        all:
          hosts:
            b1:
              host: b1.lab.example
              port: 2222
              user: farm
              identity_file: /keys/id
              python: /opt/venv/bin/python
              workdir: /data/farm
              tags: {ram: 8}
              providers: [QNNExecutionProvider, CPUExecutionProvider]
              proxy_jump: jump@bastion.lab.example:2200
              transport: local
              accept_new_host_keys: true
              known_hosts_file: /keys/known_hosts
              ssh_config_file: /keys/ssh_config
              connect_timeout_s: 2
              env: {QNN_LOG: verbose}
        """,
    )
    b = inv.boards[0]
    assert (b.host, b.port, b.user, b.identity_file) == ("b1.lab.example", 2222, "farm", "/keys/id")
    assert (b.python, b.workdir, b.transport) == ("/opt/venv/bin/python", "/data/farm", "local")
    assert dict(b.tags) == {"ram": "8"}  # numbers become text
    assert b.providers == ("QNNExecutionProvider", "CPUExecutionProvider")
    assert b.proxy_jump == "jump@bastion.lab.example:2200"
    assert b.accept_new_host_keys is True
    assert (b.known_hosts_file, b.ssh_config_file) == ("/keys/known_hosts", "/keys/ssh_config")
    assert b.connect_timeout_s == 2.0 and isinstance(b.connect_timeout_s, float)
    assert dict(b.env) == {"QNN_LOG": "verbose"}


def test_groups_record_every_membership_and_inventory_groups_include_children(tmp_path):
    inv = load(
        tmp_path,
        """
        all:
          hosts:
            loose:
          children:
            arm:
              children:
                rpi:
                  hosts: {rpi4-01: null, rpi4-02: null}
                jetson:
                  hosts: {orin-01: null}
            nightly:
              hosts: {rpi4-01: null, orin-01: null}
            empty:
        """,
    )
    boards = by_name(inv)
    assert boards["rpi4-01"].groups == ("all", "arm", "rpi", "nightly")
    assert boards["rpi4-02"].groups == ("all", "arm", "rpi")
    assert inv.groups == {
        "all": ["loose", "rpi4-01", "rpi4-02", "orin-01"],
        "arm": ["rpi4-01", "rpi4-02", "orin-01"],
        "rpi": ["rpi4-01", "rpi4-02"],
        "jetson": ["orin-01"],
        "nightly": ["rpi4-01", "orin-01"],
        "empty": [],
    }


def test_top_level_groups_are_children_of_an_implicit_all(tmp_path):
    inv = load(
        tmp_path,
        """
        rpi:
          hosts: {rpi4-01: null}
        all:
          vars: {user: farm}
        """,
    )
    board = inv.boards[0]
    assert board.user == "farm"
    assert board.groups == ("rpi", "all")
    assert inv.groups["all"] == ["rpi4-01"]

    without_all = load(tmp_path, "rpi:\n  hosts: {rpi4-01: null}\n", name="noall.yaml")
    assert without_all.groups == {"all": ["rpi4-01"], "rpi": ["rpi4-01"]}
    assert without_all.boards[0].groups == ("all", "rpi")


def test_yaml_anchors_and_merge_keys_work(tmp_path):
    inv = load(
        tmp_path,
        """
        all:
          hosts:
            b1: &pi {user: pi, port: 2201}
            b2:
              <<: *pi
              port: 2202
        """,
    )
    boards = by_name(inv)
    assert (boards["b1"].user, boards["b1"].port) == ("pi", 2201)
    assert (boards["b2"].user, boards["b2"].port) == ("pi", 2202)


def test_controller_paths_resolve_relative_to_the_inventory_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    inv = load(
        tmp_path,
        """
        all:
          vars: {identity_file: keys/id_ed25519, known_hosts_file: ~/.ssh/lab_known_hosts}
          hosts:
            b1: {ssh_config_file: ../ssh/config}
            b2: {identity_file: /abs/key, workdir: ~/farm, python: ~/venv/bin/python}
        """,
        name="inv/lab.yaml",
    )
    boards = by_name(inv)
    inv_dir = (tmp_path / "inv").absolute()
    assert boards["b1"].identity_file == str(inv_dir / "keys" / "id_ed25519")
    assert boards["b1"].known_hosts_file == str(tmp_path / "home" / ".ssh" / "lab_known_hosts")
    assert boards["b1"].ssh_config_file == str(inv_dir / ".." / "ssh" / "config")
    assert boards["b2"].identity_file == "/abs/key"
    # Board-side paths are left alone: `~` there means the board's home.
    assert boards["b2"].workdir == "~/farm"
    assert boards["b2"].python == "~/venv/bin/python"


def test_relative_inventory_path_resolves_against_its_folder_not_the_cwd(tmp_path, monkeypatch):
    write(tmp_path / "inv" / "lab.yaml", "all:\n  hosts:\n    b1: {identity_file: id}\n")
    monkeypatch.chdir(tmp_path)
    inv = load_inventory(Path("inv/lab.yaml"))
    assert inv.boards[0].identity_file == str(tmp_path / "inv" / "id")


# --------------------------------------------------------------------------- errors


def test_unknown_host_key_names_file_line_host_and_suggests(tmp_path):
    message, path = load_error(
        tmp_path,
        """
        all:
          hosts:
            rpi4-1:
              host: rpi4-1.lab.example
              prot: 22
        """,
    )
    assert message == f"{path}:{line_of(path, 'prot:')}: host 'rpi4-1': unknown key 'prot' (did you mean 'port'?)"


@pytest.mark.parametrize(
    ("setting", "needle", "expected"),
    [
        ("port: '22'", "port:", "'port' must be a whole number, got the text '22' (remove the quotes)"),
        ("port: 70000", "port:", "'port' must be a whole number from 1 to 65535, got the number 70000"),
        ("port: true", "port:", "'port' must be a whole number, got true"),
        ("port:", "port:", "'port' is empty (null): give it a value or remove the key"),
        ("user: 7", "user:", "'user' must be text, got the number 7"),
        ("user: -oProxyCommand=x", "user:", "'user' must not start with '-' or contain spaces"),
        ("connect_timeout_s: 0", "connect_timeout_s", "'connect_timeout_s' must be greater than 0, got the number 0"),
        ("connect_timeout_s: soon", "connect_timeout_s", "'connect_timeout_s' must be a number, got the text 'soon'"),
        ("connect_timeout_s: .inf", "connect_timeout_s", "'connect_timeout_s' must be a finite number, got the number inf"),
        ("connect_timeout_s: .nan", "connect_timeout_s", "'connect_timeout_s' must be a finite number, got the number nan"),
        ("connect_timeout_s: 1.0e+300", "connect_timeout_s", "'connect_timeout_s' must be at most 3600, got the number 1e+300"),
        ("transport: telnet", "transport", "'transport' must be one of 'ssh' or 'local', got the text 'telnet'"),
        ("accept_new_host_keys: 'yes'", "accept_new", "'accept_new_host_keys' must be true or false, got the text 'yes'"),
        ("providers: CPUExecutionProvider", "providers", "'providers' must be a list, got the text 'CPUExecutionProvider'"),
        ("providers: [CUDAExecutionProvidr]", "providers", "did you mean 'CUDAExecutionProvider'?"),
        ("providers: [CPU]", "providers", "'providers' has 'CPU', not an onnxruntime provider name"),
        ("proxy_jump: 'a,,b'", "proxy_jump", "'proxy_jump' is not a valid ProxyJump value"),
        ("proxy_jump: 'h:notaport'", "proxy_jump", "port 'notaport' must be a number from 1 to 65535"),
        ("env: {1BAD: x}", "env:", "'env' has a bad variable name '1BAD'"),
        ("tags: [a, b]", "tags:", "'tags' must be a mapping of names to values, got a list"),
        ("tags: {a=b: c}", "tags:", "'tags' has a bad key 'a=b'"),
        ("ansible_host: 192.0.2.1", "ansible_host", "unknown key 'ansible_host' (farm calls Ansible's 'ansible_host' 'host')"),
    ],
)
def test_bad_host_setting_names_file_line_host_and_field(tmp_path, setting, needle, expected):
    message, path = load_error(tmp_path, f"all:\n  hosts:\n    b1:\n      host: b1.lab.example\n      {setting}\n")
    assert message.startswith(f"{path}:{line_of(path, needle)}: host 'b1': ")
    assert expected in message
    assert "\n" not in message


def test_bad_nested_value_points_at_its_own_line(tmp_path):
    message, path = load_error(
        tmp_path,
        """
        all:
          hosts:
            b1:
              tags:
                arch: aarch64
                fast: yes
              providers:
                - CPUExecutionProvider
                - 42
        """,
    )
    lines = message.splitlines()
    assert lines[0] == (
        f"{path}:{line_of(path, 'fast:')}: host 'b1': 'tags.fast' must be text, got true "
        "(YAML reads yes/no/true/false/on/off as true or false: quote the value)"
    )
    assert lines[1] == f"{path}:{line_of(path, '- 42')}: host 'b1': 'providers[1]' must be text, got the number 42"


def test_bad_group_var_names_the_group(tmp_path):
    message, path = load_error(
        tmp_path,
        """
        all:
          children:
            rpi:
              vars:
                usr: pi
              hosts: {rpi4-01: null}
        """,
    )
    assert message == f"{path}:{line_of(path, 'usr:')}: group 'rpi' vars: unknown key 'usr' (did you mean 'user'?)"


@pytest.mark.parametrize(
    ("text", "needle", "expected"),
    [
        ("all:\n  host:\n    b1:\n", "host:", "group 'all': unknown key 'host' (did you mean 'hosts'?)"),
        ("all:\n  user: pi\n  hosts: {b1: null}\n", "user:", "group 'all': unknown key 'user' (host settings go under the group's 'vars:')"),
        ("all:\n  hosts:\n    - b1\n", "hosts:", "group 'all': 'hosts' must be a mapping of host names to settings, got a list"),
        ("all:\n  hosts:\n    b1: 192.0.2.1\n", "b1:", "host 'b1': settings must be a mapping of keys to values, got the text '192.0.2.1'"),
        ("all:\n  children: [rpi]\n", "children:", "group 'all': 'children' must be a mapping of group names to groups, got a list"),
        ("all: [b1]\n", "all:", "group 'all': must be a mapping with 'hosts', 'vars' or 'children', got a list"),
        ("all:\n  hosts:\n    10:\n", "10:", "host name 10 must be text (quote it: '10')"),
        ("all:\n  hosts:\n    'rpi 4':\n", "rpi 4", "host name 'rpi 4': use letters, digits, '_', '.', '-'"),
        ("all:\n  hosts:\n    local:\n", "local:", "host name 'local' is reserved for farm's built-in board"),
        ("all:\n  hosts:\n    all:\n", "    all:", "host name 'all' is the group of every host"),
        ("all:\n  children:\n    all:\n", "    all:", "group 'all': 'all' holds every group and cannot be a child group"),
        ("hosts:\n  b1:\n", "hosts:", "top-level key 'hosts': top-level keys are groups; did you forget a group such as 'all:' above it?"),
        ("- all\n", "- all", "the inventory must be a mapping of group names (such as 'all:'), got a list"),
    ],
)
def test_bad_structure_names_file_line_and_place(tmp_path, text, needle, expected):
    message, path = load_error(tmp_path, text)
    assert message.startswith(f"{path}:{line_of(path, needle)}: ")
    assert expected in message


def test_name_used_as_group_and_host(tmp_path):
    message, path = load_error(
        tmp_path,
        """
        all:
          children:
            rpi:
              hosts:
                rpi4-01:
            jetson:
              hosts:
                rpi:
        """,
    )
    host_line = line_of(path, "        rpi:")
    assert message == (
        f"{path}:{host_line}: 'rpi' is used both as a group (line {line_of(path, '    rpi:')}) "
        f"and as a host (line {host_line}); give them different names"
    )


def test_groups_containing_each_other_are_reported(tmp_path):
    message, path = load_error(
        tmp_path,
        """
        a:
          children:
            b:
              hosts: {b1: null}
        b:
          children:
            a:
        """,
    )
    assert f"{path}:{line_of(path, 'a:')}: group 'a': is its own ancestor: a -> b -> a" == message


def test_invalid_yaml_gives_its_line(tmp_path):
    message, path = load_error(
        tmp_path,
        """
        all:
          hosts:
            b1: {port: 22
            b2:
        """,
    )
    assert message.startswith(f"{path}:{line_of(path, 'b2:')}: invalid YAML: expected ',' or '}}'")


@pytest.mark.parametrize("text", [
    "a: " + "[" * 300 + "\n",
    "a: " + "[" * 300 + "]" * 300 + "\n",
    "a: " + "{b: " * 2000 + "\n",
])
def test_deeply_nested_yaml_is_bad_input_naming_the_file_not_a_recursion_error(tmp_path, text):
    message, path = load_error(tmp_path, text)
    assert message.startswith(f"{path}:1: invalid YAML: ")
    assert "nested more than" in message and "\n" not in message


def test_inventory_check_refuses_an_infinite_timeout_or_deep_nesting_with_exit_3(tmp_path, capsys):
    from orchestrator.cli import main

    for text in ("all:\n  hosts:\n    b1:\n      host: 192.0.2.1\n      connect_timeout_s: .inf\n",
                 "a: " + "[" * 300 + "]" * 300 + "\n"):
        path = write(tmp_path / "lab.yaml", text)
        assert main(["inventory", "check", "-i", str(path)]) == ExitStatus.BAD_INPUT
        err = capsys.readouterr().err
        assert f"{path}:" in err and "internal error" not in err


def test_tab_indentation_gives_its_line(tmp_path):
    message, path = load_error(tmp_path, "all:\n  hosts:\n\tb1:\n")
    assert message.startswith(f"{path}:3: invalid YAML: found character '\\t'")


def test_duplicate_key_is_an_error_not_a_silent_override(tmp_path):
    message, path = load_error(
        tmp_path,
        """
        all:
          hosts:
            b1: {port: 2201}
            b1: {port: 2202}
        """,
    )
    assert message.startswith(f"{path}:{line_of(path, 'b1', nth=2)}: invalid YAML: duplicate key 'b1'")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the inventory is empty"),
        ("# only a comment\n", "the inventory is empty"),
        ("{}\n", "the inventory is empty"),
        ("all:\n  children:\n    rpi:\n      vars: {user: pi}\n", "the inventory defines no hosts"),
    ],
)
def test_empty_inventory(tmp_path, text, expected):
    message, path = load_error(tmp_path, text)
    assert message.startswith(f"{path}")
    assert expected in message


def test_missing_and_unreadable_files(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(BadInputError, match=f"^{re.escape(str(missing))}: inventory file not found$"):
        load_inventory(missing)
    with pytest.raises(BadInputError, match="is a folder, not an inventory file"):
        load_inventory(tmp_path)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"all:\n  hosts: {\xff: null}\n")
    with pytest.raises(BadInputError, match="not UTF-8"):
        load_inventory(binary)


def test_permission_denied(tmp_path, monkeypatch):
    path = write(tmp_path / "lab.yaml", "all:\n  hosts: {b1: null}\n")

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_text", refuse)  # chmod 0 means nothing to root, so simulate it
    with pytest.raises(BadInputError, match=f"^{re.escape(str(path))}: cannot read the inventory: Permission denied$"):
        load_inventory(path)


def test_every_problem_is_reported_at_once_in_line_order(tmp_path):
    message, path = load_error(
        tmp_path,
        """
        all:
          hosts:
            b2:
              port: x
          children:
            rpi:
              vars: {prot: 1}
              hosts:
                b1: {usr: pi}
        """,
    )
    lines = message.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith(f"{path}:{line_of(path, 'port: x')}: host 'b2': 'port'")
    assert lines[1].startswith(f"{path}:{line_of(path, 'prot')}: group 'rpi' vars: unknown key 'prot'")
    assert lines[2].startswith(f"{path}:{line_of(path, 'usr')}: host 'b1': unknown key 'usr'")


def test_runtime_conflicting_with_tags_runtime(tmp_path):
    message, path = load_error(tmp_path, "all:\n  hosts:\n    b1:\n      tags: {runtime: openvino}\n      runtime: onnxruntime\n")
    assert message.startswith(f"{path}:{line_of(path, 'runtime: onnxruntime')}: host 'b1': 'runtime' is 'onnxruntime'")


def test_an_unknown_runtime_is_an_error_with_file_and_line(tmp_path):
    message, path = load_error(tmp_path, "all:\n  hosts:\n    b1:\n      runtime: tflite\n")
    assert message.startswith(f"{path}:{line_of(path, 'runtime: tflite')}: host 'b1': 'runtime' 'tflite' is not a "
                              "runtime farm knows: use onnxruntime or openvino")
    message, path = load_error(tmp_path, "all:\n  hosts:\n    b1:\n      tags: {runtime: openvno}\n")
    assert "is not a runtime farm knows" in message and "did you mean openvino?" in message


# --------------------------------------------------------------------------- --limit

LIMIT_INVENTORY = """
all:
  hosts:
    spare:
      tags: {arch: x86_64}
  children:
    rpi:
      vars: {tags: {arch: aarch64, soc: bcm2711}}
      hosts:
        rpi4-01: {tags: {ram: 4GB}}
        rpi4-02: {tags: {ram: 8GB}}
    jetson:
      vars: {tags: {arch: aarch64, soc: tegra234}}
      hosts:
        orin-01: {tags: {ram: 8GB}}
    nightly:
      hosts:
        orin-01:
        rpi4-01:
"""


@pytest.fixture
def limit_inventory(tmp_path) -> Inventory:
    return load(tmp_path, LIMIT_INVENTORY)


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        (None, ["spare", "rpi4-01", "rpi4-02", "orin-01"]),
        ("  ", ["spare", "rpi4-01", "rpi4-02", "orin-01"]),
        ("rpi4-02", ["rpi4-02"]),
        ("jetson", ["orin-01"]),
        ("nightly", ["rpi4-01", "orin-01"]),  # inventory order, not the group's listing order
        ("all", ["spare", "rpi4-01", "rpi4-02", "orin-01"]),
        ("rpi4-*", ["rpi4-01", "rpi4-02"]),
        ("jet*", ["orin-01"]),  # glob on group names
        ("orin-01, rpi", ["rpi4-01", "rpi4-02", "orin-01"]),
        ("rpi,nightly,rpi4-01", ["rpi4-01", "rpi4-02", "orin-01"]),  # no duplicates
        ("tag:ram=8GB", ["rpi4-02", "orin-01"]),
        ("tag:soc=bcm*", ["rpi4-01", "rpi4-02"]),
        ("tag:ram", ["rpi4-01", "rpi4-02", "orin-01"]),
        ("rpi,!rpi4-02", ["rpi4-01"]),
        ("!rpi", ["spare", "orin-01"]),  # only exclusions: from all boards
        ("tag:arch=aarch64,!tag:ram=4GB", ["rpi4-02", "orin-01"]),
        ("!nightly,!spare", ["rpi4-02"]),
        ("*,!r*", ["spare", "orin-01"]),
    ],
)
def test_select_boards(limit_inventory, limit, expected):
    assert [b.name for b in select_boards(limit_inventory, limit)] == expected


def test_limit_matching_nothing_lists_known_hosts_and_groups(limit_inventory):
    with pytest.raises(BadInputError) as caught:
        select_boards(limit_inventory, "rpi,jetsn")
    message = str(caught.value)
    assert message.startswith("limit 'rpi,jetsn': pattern 'jetsn' matches no host or group (did you mean 'jetson'?)")
    assert "Hosts: spare, rpi4-01, rpi4-02, orin-01." in message
    assert "Groups: all, rpi, jetson, nightly" in message


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        ("!rpi5", "pattern 'rpi5' matches no host or group"),  # a typo in an exclusion is an error too
        ("zz*", "pattern 'zz*' matches no host or group"),
        ("tag:ram=16GB", "no board has tag 'ram=16GB' (tags in use: arch=aarch64, arch=x86_64, ram=4GB, ram=8GB"),
        ("!", "'!' must be followed by a pattern"),
    ],
)
def test_limit_errors(limit_inventory, limit, expected):
    with pytest.raises(BadInputError) as caught:
        select_boards(limit_inventory, limit)
    assert expected in str(caught.value)
    assert "Hosts: spare" in str(caught.value)


def test_limit_runtime_picks_the_boards_whose_inventory_names_that_runtime(tmp_path):
    inventory = load(tmp_path, """\
all:
  hosts:
    nuc-01: {runtime: openvino}
    rpi4-01: {runtime: onnxruntime}
    rpi4-02: {}
""")
    assert [b.name for b in select_boards(inventory, "runtime:openvino")] == ["nuc-01"]
    assert [b.name for b in select_boards(inventory, "!runtime:openvino")] == ["rpi4-01", "rpi4-02"]
    with pytest.raises(BadInputError, match="no board has tag 'runtime=tflite'"):
        select_boards(inventory, "runtime:tflite")


def test_limit_that_excludes_everything(limit_inventory):
    with pytest.raises(BadInputError, match="selects no boards"):
        select_boards(limit_inventory, "rpi,!rpi4-*")


# --------------------------------------------------------------------------- inventory path


def test_resolve_inventory_path(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv(INVENTORY_ENV_VAR, "~/from-env.yaml")
    assert resolve_inventory_path("cli.yaml") == Path("cli.yaml")
    assert resolve_inventory_path(None) == tmp_path / "from-env.yaml"
    monkeypatch.setenv(INVENTORY_ENV_VAR, "")
    assert resolve_inventory_path(None) is None
    monkeypatch.delenv(INVENTORY_ENV_VAR)
    assert resolve_inventory_path(None) is None
    assert resolve_inventory_path("~/x.yaml") == tmp_path / "x.yaml"


# --------------------------------------------------------------------------- ssh config

SSH_CONFIG = """
Host bastion
    HostName bastion.lab.example
    User jumper
    Port 2200
    IdentityFile ~/.ssh/bastion_key

Host rpi-alias
    HostName rpi4-01.lab.example
    Port 2222
    User pi
    IdentityFile ~/.ssh/rpi_key
    IdentityFile ~/.ssh/spare_key
    ProxyJump bastion

Host inner
    HostName inner.lab.example
    ProxyJump rpi-alias

Host loop-a
    ProxyJump loop-b
Host loop-b
    ProxyJump loop-a

Host cmd
    ProxyCommand nc -X connect %h %p

Host *
    ServerAliveInterval 30
"""


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A fake home with ~/.ssh/config, and a known current user."""
    home = tmp_path / "home"
    write(home / ".ssh" / "config", SSH_CONFIG)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("LOGNAME", "tester")
    return home


def test_board_that_is_only_an_ssh_alias(tmp_path, home):
    inv = load(tmp_path, "all:\n  hosts:\n    rpi-alias:\n")
    resolved = resolve_ssh_settings(inv.boards[0])
    bastion = ResolvedSSH(
        alias="bastion",
        hostname="bastion.lab.example",
        port=2200,
        user="jumper",
        identity_files=(str(home / ".ssh" / "bastion_key"),),
    )
    assert resolved == ResolvedSSH(
        alias="rpi-alias",
        hostname="rpi4-01.lab.example",
        port=2222,
        user="pi",
        identity_files=(str(home / ".ssh" / "rpi_key"), str(home / ".ssh" / "spare_key")),
        proxy_jump="bastion",
        jump_hosts=(bastion,),
    )


def test_inventory_host_is_the_alias_looked_up(tmp_path, home):
    inv = load(tmp_path, "all:\n  hosts:\n    my-pi: {host: rpi-alias}\n")
    resolved = resolve_ssh_settings(inv.boards[0])
    assert (resolved.alias, resolved.hostname, resolved.port, resolved.user) == (
        "rpi-alias",
        "rpi4-01.lab.example",
        2222,
        "pi",
    )


def test_inventory_values_win_over_ssh_config(tmp_path, home):
    inv = load(
        tmp_path,
        """
        all:
          hosts:
            rpi-alias:
              port: 2022
              user: farm
              identity_file: keys/farm
              proxy_jump: ops@gw.lab.example:2022
        """,
    )
    resolved = resolve_ssh_settings(inv.boards[0])
    assert resolved.hostname == "rpi4-01.lab.example"  # not set in the inventory: from the ssh config
    assert (resolved.port, resolved.user) == (2022, "farm")
    assert resolved.identity_files == (str(tmp_path.absolute() / "keys" / "farm"),)
    assert resolved.proxy_jump == "ops@gw.lab.example:2022"
    [hop] = resolved.jump_hosts
    assert (hop.alias, hop.hostname, hop.user, hop.port) == ("gw.lab.example", "gw.lab.example", "ops", 2022)


def test_proxy_jump_none_turns_off_the_ssh_config_jump(tmp_path, home):
    inv = load(tmp_path, "all:\n  hosts:\n    rpi-alias: {proxy_jump: none}\n    cmd: {proxy_jump: none}\n")
    for board in inv.boards:
        resolved = resolve_ssh_settings(board)
        assert (resolved.proxy_jump, resolved.proxy_command, resolved.jump_hosts) == (None, None, ())


def test_proxy_command_is_passed_on_when_no_jump(tmp_path, home):
    inv = load(tmp_path, "all:\n  hosts:\n    cmd:\n")
    resolved = resolve_ssh_settings(inv.boards[0])
    assert resolved.proxy_command == "nc -X connect cmd 22"


def test_jump_hosts_of_jump_hosts_come_first(tmp_path, home):
    inv = load(tmp_path, "all:\n  hosts:\n    inner:\n")
    resolved = resolve_ssh_settings(inv.boards[0])
    assert [h.alias for h in resolved.jump_hosts] == ["bastion", "rpi-alias"]
    assert [h.hostname for h in resolved.jump_hosts] == ["bastion.lab.example", "rpi4-01.lab.example"]
    assert all(h.jump_hosts == () for h in resolved.jump_hosts)


def test_proxy_jump_loop_is_an_error(tmp_path, home):
    inv = load(tmp_path, "all:\n  hosts:\n    loop-a:\n")
    with pytest.raises(BadInputError, match="loops or is too long: loop-a -> loop-b -> loop-a"):
        resolve_ssh_settings(inv.boards[0])


def test_defaults_without_any_ssh_config(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "empty-home"))
    monkeypatch.setenv("LOGNAME", "tester")
    inv = load(tmp_path, "all:\n  hosts:\n    b1.lab.example:\n")
    resolved = resolve_ssh_settings(inv.boards[0])
    assert resolved == ResolvedSSH(alias="b1.lab.example", hostname="b1.lab.example", port=22, user="tester")


def test_ssh_config_file_from_the_inventory_is_used(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "empty-home"))
    write(tmp_path / "ssh" / "lab_config", "Host spare\n  HostName 192.0.2.7\n  Port 2207\n  User lab\n")
    inv = load(tmp_path, "all:\n  vars: {ssh_config_file: ssh/lab_config}\n  hosts:\n    spare:\n")
    resolved = resolve_ssh_settings(inv.boards[0])
    assert (resolved.hostname, resolved.port, resolved.user) == ("192.0.2.7", 2207, "lab")


def test_named_ssh_config_file_missing_or_bad(tmp_path, monkeypatch):
    inv = load(tmp_path, "all:\n  hosts:\n    b1: {ssh_config_file: nope}\n")
    with pytest.raises(BadInputError, match="ssh config file not found"):
        resolve_ssh_settings(inv.boards[0])
    write(tmp_path / "nope", "Host b1\n  Port twenty\n")
    with pytest.raises(BadInputError, match=r"Host b1: Port 'twenty' must be a number"):
        resolve_ssh_settings(inv.boards[0])


@pytest.mark.parametrize(
    ("value", "hops"),
    [
        ("bastion", [JumpHop(None, "bastion", None)]),
        ("ops@gw.lab.example:2022", [JumpHop("ops", "gw.lab.example", 2022)]),
        ("a, u@b:23 ,c", [JumpHop(None, "a", None), JumpHop("u", "b", 23), JumpHop(None, "c", None)]),
        ("ssh://u@h:2200", [JumpHop("u", "h", 2200)]),
        ("u@[2001:db8::1]:22", [JumpHop("u", "2001:db8::1", 22)]),
        ("[2001:db8::1]", [JumpHop(None, "2001:db8::1", None)]),
        ("none", []),
        ("NONE", []),
    ],
)
def test_parse_proxy_jump(value, hops):
    assert parse_proxy_jump(value) == hops


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", "empty hop"),
        ("a,", "empty hop"),
        ("@h", "empty user"),
        ("h:0", "port '0' must be a number from 1 to 65535"),
        ("h:x", "port 'x'"),
        ("2001:db8::1", "put an IPv6 address in brackets"),
        ("[2001:db8::1", "without closing it"),
        ("-oProxyCommand=x", "must not start with '-'"),
        ("u@:22", "has no host"),
    ],
)
def test_parse_proxy_jump_errors(value, expected):
    with pytest.raises(BadInputError, match="proxy jump") as caught:
        parse_proxy_jump(value)
    assert expected in str(caught.value)


# --------------------------------------------------------------------------- the shipped example


def test_example_inventory_loads():
    inv = load_inventory(EXAMPLE)
    boards = by_name(inv)
    assert {"rpi", "jetson", "snapdragon", "nightly"} <= set(inv.groups)
    rpi, jetson, rb5 = boards["rpi4-01"], boards["jetson-orin-01"], boards["rb5-01"]
    assert rpi.providers == ("CPUExecutionProvider",)
    assert rpi.tags["soc"] == "bcm2711" and rpi.tags["ram"] == "4GB"
    assert "TensorrtExecutionProvider" in jetson.providers and "CUDAExecutionProvider" in jetson.providers
    assert jetson.tags["runtime"] == "onnxruntime" and jetson.tags["runtime_build"].startswith("onnxruntime-gpu")
    assert rb5.providers[0] == "QNNExecutionProvider"
    assert parse_proxy_jump(rb5.proxy_jump) == [JumpHop("farm", "bastion.lab.example", 2222)]
    assert rb5.user == "ubuntu"
    assert set(rb5.groups) == {"all", "snapdragon", "nightly"}
    assert boards["rpi4-02"].port == 2222
    for board in inv.boards:
        assert board.transport == "ssh"
        assert board.host is None or board.host.endswith(".lab.example")
        assert board.tags.get("arch", "aarch64") == "aarch64"
    # The alias-only board inherits nothing that would hide its ssh config entry.
    spare = boards["rpi4-spare"]
    assert (spare.host, spare.user, spare.port, spare.identity_file, spare.proxy_jump) == (None,) * 5
