"""The Docker image and the compose federation, tested without a Docker engine.

The development machines have no Docker engine, so neither the image nor ``compose.yaml`` is
built or run here. What is tested instead:

* ``Dockerfile``, ``.dockerignore`` and ``compose.yaml``, parsed for real: the stages, the
  pinned bases, the non-root user, what the build context lets through, the shape of the
  federation, and every ``fedssl deploy ...`` command line of the compose file parsed by the
  real ``fedssl.cli.build_parser()`` and, where it is cheap, executed (the credentials command,
  the Flower commands the SuperLink and SuperNodes would exec, the health check);
* ``deploy/docker/build-env.sh``, the image's build steps, run for real (e2e);
* ``deploy/docker/requirements.lock`` against pyproject.toml's pins and fedssl's dependency
  tree, and ``deploy/docker/make-lock.sh`` that regenerates it.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import os
import re
import shlex
import socket
import stat
import subprocess
import sys
import sysconfig
import time
import tomllib
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from fedssl.cli import build_parser, main
from fedssl.deploy.roles import superlink_command, supernode_command

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
COMPOSE = REPO / "compose.yaml"
BUILD_ENV = REPO / "deploy" / "docker" / "build-env.sh"
MAKE_LOCK = REPO / "deploy" / "docker" / "make-lock.sh"
LOCK = REPO / "deploy" / "docker" / "requirements.lock"
IMAGE_USER_ID = "10001"
DEV_ONLY = {"pytest", "ruff", "pluggy", "iniconfig", "import-linter", "grimp"}


# --- Dockerfile ---------------------------------------------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: comments dropped, continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # also inside a continuation, as Docker does
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        instructions.append((keyword.upper(), " ".join(args.split())))
    assert not pending, "the Dockerfile ends inside a continuation line"
    return instructions


def dockerfile_stages() -> list[dict]:
    """One dict per stage: its base image, its name and its instructions after FROM."""
    stages: list[dict] = []
    for keyword, args in dockerfile_instructions(DOCKERFILE.read_text()):
        if keyword == "FROM":
            words = [w for w in args.split() if not w.startswith("--platform")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else ""
            stages.append({"base": words[0], "name": name, "instructions": []})
        else:
            assert stages, f"{keyword} before the first FROM"
            stages[-1]["instructions"].append((keyword, args))
    return stages


def _args(stage: dict, keyword: str) -> list[str]:
    return [args for kw, args in stage["instructions"] if kw == keyword]


def _env(stage: dict) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in _args(stage, "ENV"):
        for word in shlex.split(args):
            key, sep, value = word.partition("=")
            assert sep, f"ENV {args!r}: use the KEY=value form"
            env[key] = value
    return env


def test_dockerfile_is_multi_stage_on_one_pinned_base():
    stages = dockerfile_stages()
    assert len(stages) >= 2, "the Dockerfile must be multi-stage (a builder and a runtime)"
    earlier: set[str] = set()
    for stage in stages:
        base = stage["base"]
        if base in earlier:  # FROM an earlier stage
            continue
        pinned = re.fullmatch(r"[a-z0-9./_-]+:(?P<tag>[\w.-]+)(@sha256:[0-9a-f]{64})?", base)
        assert pinned, f"FROM {base}: pin an exact version tag (and a digest in production)"
        tag = pinned["tag"]
        assert "latest" not in tag and re.match(r"\d+\.\d+\.\d+", tag), (
            f"FROM {base}: the tag must start with an exact version like 3.11.7")
        earlier.add(stage["name"])
    assert stages[0]["base"] == stages[-1]["base"], (
        "builder and runtime must share the base: the venv's interpreter path must exist in both")
    assert stages[-1]["base"].startswith("python:3.11.")  # pyproject: requires-python 3.11


def test_dockerfile_builder_runs_the_build_script():
    stages = dockerfile_stages()
    builder = next(s for s in stages if s["name"] == "builder")
    runs = [shlex.split(args) for args in _args(builder, "RUN")]
    script_runs = [argv for argv in runs if "deploy/docker/build-env.sh" in argv]
    assert script_runs, "the builder must RUN deploy/docker/build-env.sh"
    full = [argv for argv in script_runs if "--deps-only" not in argv]
    assert full and full[-1][-2:] == ["/opt/venv", "/opt/fedssl"], (
        "the builder must run build-env.sh /opt/venv /opt/fedssl (the full build)")
    # What each run needs is copied before it: the script and the lock (--deps-only), then
    # the app too (the full build).
    copied: set[str] = set()
    for keyword, args in builder["instructions"]:
        if keyword == "COPY" and not args.startswith("--from"):
            copied.update(src.rstrip("/") for src in shlex.split(args)[:-1])
        if keyword == "RUN" and "deploy/docker/build-env.sh" in args:
            needed = {"deploy/docker/build-env.sh", "deploy/docker/requirements.lock"}
            if "--deps-only" not in args:
                needed |= {"pyproject.toml", "README.md", "fedssl/config.py", "fedssl/cli.py"}
            missing = {path for path in needed
                       if not any(path == c or path.startswith(c + "/") for c in copied)}
            assert not missing, f"RUN {args} runs before {sorted(missing)} are copied"


def test_dockerfile_runtime_stage_is_non_root_with_the_fedssl_entrypoint():
    runtime = dockerfile_stages()[-1]
    users = _args(runtime, "USER")
    assert users, "the final stage must switch to a non-root USER"
    assert users[-1].split(":")[0] not in ("root", "0"), f"USER {users[-1]} is root"
    setup = " ".join(_args(runtime, "RUN"))
    assert re.search(rf"groupadd .*--gid {IMAGE_USER_ID}\b", setup)
    assert re.search(rf"useradd .*--uid {IMAGE_USER_ID}\b", setup)
    for directory in ("/credentials", "/state", "/runs", "/data"):
        assert re.search(rf"chown \S*fedssl:fedssl[^&]*\s{directory}(\s|$)", setup), (
            f"{directory} must be created owned by the image's user")
    copies = [args.split() for args in _args(runtime, "COPY")]
    for path in ("/opt/venv", "/opt/fedssl"):  # same paths: the editable install points there
        assert ["--from=builder", path, path] in copies, f"COPY --from=builder {path} {path}"
    env = _env(runtime)
    assert env["PATH"].startswith("/opt/venv/bin:")
    assert env["FLWR_HOME"].startswith("/home/fedssl/")
    assert env["FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION"] == "1"
    assert env["FLWR_TELEMETRY_ENABLED"] == "0"
    assert json.loads(_args(runtime, "ENTRYPOINT")[-1]) == ["fedssl"]
    assert json.loads(_args(runtime, "CMD")[-1]) == ["--help"]
    assert "9092" in " ".join(_args(runtime, "EXPOSE")).split()


def _dockerignore_regex(pattern: str) -> re.Pattern:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def excluded_from_context(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rules (the last matching pattern wins; a pattern that matches
    a directory matches everything below it), for the patterns this repository uses."""
    parts = path.split("/")
    excluded = False
    for raw in patterns:
        negate = raw.startswith("!")
        regex = _dockerignore_regex(raw.lstrip("!").strip("/"))
        if any(regex.fullmatch("/".join(parts[:n])) for n in range(1, len(parts) + 1)):
            excluded = not negate
    return excluded


def test_build_context_has_what_the_dockerfile_copies_and_nothing_heavy():
    patterns = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    sources = [src for stage in dockerfile_stages() for args in _args(stage, "COPY")
               if not args.startswith("--from") for src in shlex.split(args)[:-1]]
    assert sources
    for source in sources:
        path = REPO / source
        assert path.exists(), f"COPY {source}: not in the repository"
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()
                                               and "__pycache__" not in p.parts]
        assert files, f"COPY {source}: nothing to copy"
        for file in files:
            rel = file.relative_to(REPO).as_posix()
            assert not excluded_from_context(rel, patterns), f".dockerignore drops {rel}"
    for heavy in (".venv/bin/python", ".git/HEAD", "runs/x/metrics.csv", "wandb/x",
                  "tests/test_docker_image.py", ".pytest_cache/x", "fedssl/__pycache__/x.pyc",
                  "benchmarks/overhead.py"):
        assert excluded_from_context(heavy, patterns), f"{heavy} would enter the build context"


def test_build_scripts_are_executable_bash_with_strict_mode():
    for script in (BUILD_ENV, MAKE_LOCK):
        assert script.stat().st_mode & stat.S_IXUSR, f"{script.name} is not executable"
        text = script.read_text()
        assert text.startswith("#!/usr/bin/env bash\n")
        assert "\nset -euo pipefail\n" in text
        check = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr


# --- compose.yaml -------------------------------------------------------------------------


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def image_entrypoint() -> list[str]:
    return json.loads(_args(dockerfile_stages()[-1], "ENTRYPOINT")[-1])


def fedssl_argvs(service: dict) -> list[list[str]]:
    """The argument lists of the ``fedssl`` calls a compose service makes."""
    command = service.get("command", [])
    entrypoint = service.get("entrypoint")
    if entrypoint is None:
        assert image_entrypoint() == ["fedssl"]
        return [shlex.split(command) if isinstance(command, str) else list(command)]
    assert entrypoint == ["sh", "-c"], f"unexpected entrypoint {entrypoint}"
    # Compose splits a string command into words: `sh -c` needs a list with ONE script.
    assert isinstance(command, list) and len(command) == 1, (
        f"with entrypoint sh -c the command must be a one-item list, not {command!r}")
    argvs: list[list[str]] = [[]]
    for word in shlex.split(command[0]):
        if word == "&&":
            argvs.append([])
        else:
            argvs[-1].append(word)
    for argv in argvs:
        assert argv and argv[0] == "fedssl", f"not a fedssl call: {' '.join(argv)!r}"
    return [argv[1:] for argv in argvs]


def _subcommand(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return subparsers.choices[name]


def parse_deploy(argv: list[str], capsys) -> argparse.Namespace:
    """Parse with the real CLI parser; a wrong flag or value fails with argparse's message.

    Stricter than the CLI: flags must be spelled out (argparse also takes abbreviations)."""
    assert argv[:1] == ["deploy"], f"not a `fedssl deploy` command: {argv}"
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit:
        pytest.fail(f"`fedssl {' '.join(argv)}` does not parse: {capsys.readouterr().err}")
    role = _subcommand(_subcommand(parser, "deploy"), args.role)
    for word in argv[2:]:
        flag = word.split("=", 1)[0]
        assert not flag.startswith("-") or flag in role._option_string_actions, (
            f"`fedssl {' '.join(argv)}`: {flag} is not a flag of `fedssl deploy {args.role}`")
    return args


def deploy_calls(capsys) -> dict[str, list]:
    """Service name -> parsed namespaces of its ``fedssl deploy`` calls, in order."""
    return {name: [parse_deploy(argv, capsys) for argv in fedssl_argvs(service)]
            for name, service in compose()["services"].items()}


def volume_mounts(service: dict) -> dict[str, tuple[str, bool]]:
    """Container path -> (volume name, read-only) for the short-syntax volumes of a service."""
    mounts = {}
    for spec in service.get("volumes", []):
        source, target, *mode = spec.split(":")
        mounts[target] = (source, "ro" in mode)
    return mounts


def test_every_compose_command_parses_with_the_real_cli(capsys):
    calls = deploy_calls(capsys)
    assert all(calls.values()), "every service runs fedssl deploy"
    roles = {name: [ns.role for ns in namespaces] for name, namespaces in calls.items()}
    assert roles["credentials"] == ["credentials"]
    assert roles["superlink"] == ["superlink"]
    assert roles["register"] == ["connect", "register"]
    assert roles["submit"] == ["connect", "submit"]


def test_compose_federation_is_a_superlink_and_three_authenticated_supernodes(capsys):
    doc = compose()
    services = doc["services"]
    calls = deploy_calls(capsys)
    assert "--insecure" not in COMPOSE.read_text()
    assert not any(getattr(ns, "insecure", False) for nss in calls.values() for ns in nss)

    (creds,) = calls["credentials"]
    assert "superlink" in creds.host and creds.supernodes == 3
    cred_dir = str(creds.out)
    assert volume_mounts(services["credentials"])[cred_dir] == ("credentials", False)

    (link,) = calls["superlink"]
    assert str(link.credentials) == cred_dir and link.host == "0.0.0.0" and link.port == 9092
    superlink = services["superlink"]
    mounts = volume_mounts(superlink)
    assert mounts[cred_dir] == ("credentials", True)
    assert str(link.database.parent) in mounts, "the SuperLink's state must be on a volume"
    assert superlink["depends_on"]["credentials"]["condition"] == "service_completed_successfully"
    assert any(str(port).endswith("9092:9092") for port in superlink["ports"])
    assert superlink["healthcheck"]["test"][0] == "CMD"

    address = f"superlink:{link.port}"
    ca = f"{cred_dir}/ca.crt"
    connect, register = calls["register"]
    assert connect.superlink == address and str(connect.ca) == ca
    assert register.connection == connect.name
    assert sorted(map(str, register.public_keys)) == [
        f"{cred_dir}/supernode-{i}.pub" for i in range(3)]
    assert services["register"]["depends_on"]["superlink"]["condition"] == "service_healthy"

    supernodes = {name: nss[0] for name, nss in calls.items() if nss[0].role == "supernode"}
    assert len(supernodes) == 3, f"exactly three SuperNodes, not {sorted(supernodes)}"
    assert sorted(ns.partition_id for ns in supernodes.values()) == [0, 1, 2]
    for name, ns in supernodes.items():
        assert ns.num_partitions == 3 and ns.superlink == address
        assert str(ns.ca) == ca and str(ns.key) == f"{cred_dir}/supernode-{ns.partition_id}"
        service = services[name]
        assert service["depends_on"]["register"]["condition"] == "service_completed_successfully"
        assert service["restart"] == "on-failure"
        assert volume_mounts(service)[cred_dir] == ("credentials", True)

    submit_connect, submit = calls["submit"]
    assert submit_connect.superlink == address and str(submit_connect.ca) == ca
    assert submit.connection == submit_connect.name
    assert "submit" in services["submit"]["profiles"]
    output_dir = next(o.split("=", 1)[1] for o in submit.overrides
                      if o.startswith("output-dir="))
    runs_mount = next(t for t, (volume, _) in mounts.items() if volume == "runs")
    assert Path(output_dir).is_relative_to(runs_mount), (
        "the run's output-dir is a path in the superlink container: put it on the runs volume")

    used = {volume for s in services.values() for volume, _ in volume_mounts(s).values()}
    assert used <= set(doc["volumes"]), f"undeclared volumes: {used - set(doc['volumes'])}"
    for name, service in services.items():
        assert service["image"] == "fedssl:latest" and service["build"] == ".", name


def test_compose_mounts_exist_in_the_image_owned_by_its_user():
    setup = " ".join(_args(dockerfile_stages()[-1], "RUN"))
    targets = {target for s in compose()["services"].values() for target in volume_mounts(s)}
    for target in targets:
        assert re.search(rf"chown \S+[^&]*\s{re.escape(target)}(\s|$)", setup), (
            f"{target} is a volume mount the image does not create for its user")


def _remap(path: Path, cred_dir: str, local: Path) -> Path:
    return local / Path(path).relative_to(cred_dir)


def test_compose_credentials_serve_the_superlink_and_supernode_commands(tmp_path, capsys):
    """Run the compose credentials command (into tmp_path) and build the Flower commands the
    SuperLink and SuperNode services would exec from it."""
    calls = deploy_calls(capsys)
    (creds,) = calls["credentials"]
    cred_dir = str(creds.out)
    local = tmp_path / "credentials"
    argv = fedssl_argvs(compose()["services"]["credentials"])[0]
    argv[argv.index("--out") + 1] = str(local)
    assert main(argv) == 0
    cert = x509.load_pem_x509_certificate((local / "superlink.crt").read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "superlink" in sans.get_values_for_type(x509.DNSName)
    for i in range(3):
        assert (local / f"supernode-{i}").stat().st_mode & 0o777 == 0o600
    for key in calls["register"][1].public_keys:
        assert _remap(key, cred_dir, local).is_file(), f"register names a missing key {key}"

    (link,) = calls["superlink"]
    command = superlink_command(credentials=_remap(link.credentials, cred_dir, local),
                                database=tmp_path / "state.db", host=link.host, port=link.port)
    assert "--enable-supernode-auth" in command and "--ssl-certfile" in command
    assert "--insecure" not in command
    for name, namespaces in calls.items():
        ns = namespaces[0]
        if ns.role != "supernode":
            continue
        command = supernode_command(
            superlink=ns.superlink, partition_id=ns.partition_id,
            num_partitions=ns.num_partitions, ca_cert=_remap(ns.ca, cred_dir, local),
            private_key=_remap(ns.key, cred_dir, local), port=ns.port)
        assert "--auth-supernode-private-key" in command, name
        assert "--root-certificates" in command and "--insecure" not in command, name


def test_compose_healthcheck_detects_whether_the_port_accepts_tcp():
    test = compose()["services"]["superlink"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    code = test[3]
    assert "9092" in code
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        probe = [sys.executable, "-c", code.replace("9092", str(port))]
        assert subprocess.run(probe, capture_output=True, timeout=30).returncode == 0
    failed = subprocess.run(probe, capture_output=True, timeout=30)  # nobody listens now
    assert failed.returncode != 0


# --- the lock -----------------------------------------------------------------------------


def read_lock(path: Path | None = None) -> dict[str, tuple[str, str]]:
    """Canonical name -> (name as written, version); every line must be an exact pin."""
    path = path or LOCK
    pins: dict[str, tuple[str, str]] = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!_-]+)", line)
        assert match, f"{path.name}: {line!r} is not an exact pin name==version"
        name = canonicalize_name(match[1])
        assert name not in pins, f"{path.name}: {match[1]} pinned twice"
        pins[name] = (match[1], match[2])
    return pins


def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def runtime_dependency_tree() -> set[str]:
    """Canonical names of fedssl's run-time dependencies, transitively, with their extras,
    read from the installed distributions' metadata (markers evaluated for this machine)."""
    seen: set[tuple[str, frozenset]] = set()
    todo = [Requirement(r) for r in pyproject()["project"]["dependencies"]]
    while todo:
        req = todo.pop()
        key = (canonicalize_name(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            requires = md.distribution(req.name).requires or []
        except md.PackageNotFoundError:
            continue  # test_lock_covers_... reports it: the lock must still pin it
        for text in requires:
            dep = Requirement(text)
            extras = req.extras or {""}
            if dep.marker is None or any(dep.marker.evaluate({"extra": e}) for e in extras):
                todo.append(dep)
    return {name for name, _ in seen}


def test_lock_satisfies_pyproject_pins():
    pins = read_lock()
    for text in pyproject()["project"]["dependencies"]:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        assert name in pins, f"the lock does not pin {req.name} ({text} in pyproject.toml)"
        version = pins[name][1]
        assert req.specifier.contains(version, prereleases=True), (
            f"the lock pins {req.name}=={version}, pyproject.toml wants {text}: "
            "run deploy/docker/make-lock.sh")


def test_lock_covers_fedssl_dependency_tree_and_no_dev_tools():
    pins = set(read_lock())
    tree = runtime_dependency_tree()
    assert {"torch", "flwr", "ray", "lightly", "wandb", "setuptools"} <= tree  # sanity
    missing = tree - pins
    assert not missing, f"the lock misses {sorted(missing)}: run deploy/docker/make-lock.sh"
    extra = pins - tree - {"pip"}  # pip: build-env.sh installs the lock's pip first
    assert not extra, f"the lock pins {sorted(extra)}, which fedssl does not need at run time"
    dev = {canonicalize_name(Requirement(r).name)
           for r in pyproject()["project"]["optional-dependencies"]["dev"]}
    assert dev <= DEV_ONLY and not (DEV_ONLY & pins)
    assert "fedssl" not in pins


def test_make_lock_writes_the_installed_runtime_pins(tmp_path):
    out = tmp_path / "requirements.lock"
    result = subprocess.run([str(MAKE_LOCK), str(out)], capture_output=True, text=True,
                            env=os.environ | {"PYTHON": sys.executable}, timeout=300)
    assert result.returncode == 0, result.stderr
    assert out.read_text().startswith("# ")
    pins = read_lock(out)
    assert not (DEV_ONLY & set(pins)) and "fedssl" not in pins
    for name in runtime_dependency_tree() | {"pip"}:
        assert pins[name][1] == md.version(name), name


# --- the build script, for real -----------------------------------------------------------


@pytest.mark.e2e
def test_build_env_script_builds_a_working_environment(tmp_path):
    """Run deploy/docker/build-env.sh (the image's build steps) into a new venv, APP = this
    repository, deps-only then full, then the full build again (idempotent).

    Shortcut, so that CI does not download and install torch + CUDA a second time (a fresh
    install takes ~2.5 min even from pip's cache; ``make test`` already installs the same pins
    from scratch): the test creates the venv itself and adds a ``.pth`` file that appends
    the site-packages of the environment running pytest. pip then finds the pinned
    distributions already satisfied there (only pip and setuptools, which the new venv has
    in older versions of its own, are really installed into it). Every step of the script
    still runs for real: the venv is reused, pip is installed at the lock's version,
    ``pip install -r requirements.lock`` resolves every pin, fedssl is installed editable
    into the new venv (with a build backend fetched by pip), and the smoke check runs the
    new venv's ``fedssl``. Not covered: downloading the wheels, and the base image.
    """
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    venv_site = Path(sysconfig.get_path("purelib", vars={"base": str(venv),
                                                         "platbase": str(venv)}))
    assert venv_site.is_dir()
    parent = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    (venv_site / "zz_test_parent_env.pth").write_text("".join(f"{p}\n" for p in parent))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env |= {"PYTHONNOUSERSITE": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}

    def build(*args: str) -> subprocess.CompletedProcess:
        start = time.perf_counter()
        result = subprocess.run([str(BUILD_ENV), *args, str(venv), str(REPO)], env=env,
                                capture_output=True, text=True, timeout=900)
        took = time.perf_counter() - start
        assert result.returncode == 0, (
            f"build-env.sh {' '.join(args)} failed ({took:.0f}s):\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
        print(f"build-env.sh {' '.join(args)}: {took:.1f}s")
        return result

    build("--deps-only")
    first = build()
    assert f"reusing {venv}" in first.stdout
    pins = read_lock()
    for name in ("torch", "torchvision", "torchaudio", "flwr", "lightly", "wandb"):
        assert f"build-env: {name} {pins[name][1]}\n" in first.stdout, name
    assert "run-config defaults in" in first.stdout
    build()  # again: idempotent

    # The new venv's fedssl works, from the editable install the script made in that venv.
    creds = tmp_path / "credentials"
    made = subprocess.run([str(venv / "bin" / "fedssl"), "deploy", "credentials", "--out",
                           str(creds), "--host", "superlink", "--supernodes", "3"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    expected = {"ca.crt", "ca.key", "superlink.crt", "superlink.key"}
    expected |= {f"supernode-{i}{ext}" for i in range(3) for ext in ("", ".pub")}
    assert {p.name for p in creds.iterdir()} == expected

    probe = """
import importlib.metadata as md, json, sys
import fedssl
names = json.loads(sys.argv[1])
dist = md.distribution("fedssl")
print(json.dumps({
    "versions": {name: md.version(name) for name in names},
    "fedssl_file": fedssl.__file__,
    "fedssl_dist_dir": str(dist.locate_file("")),
    "direct_url": json.loads(dist.read_text("direct_url.json") or "{}"),
}))
"""
    names = [written for written, _ in pins.values()]
    result = subprocess.run([str(venv / "bin" / "python"), "-c", probe, json.dumps(names)],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    state = json.loads(result.stdout)
    wrong = {name: (version, state["versions"][name]) for name, version in pins.values()
             if state["versions"][name] != version}
    assert not wrong, f"lock pin != version installed by build-env.sh: {wrong}"
    for name in ("torch", "torchvision", "torchaudio", "flwr"):
        assert state["versions"][name] == pins[name][1] == md.version(name)
    assert Path(state["fedssl_file"]).resolve().is_relative_to(REPO)
    assert Path(state["fedssl_dist_dir"]).resolve() == venv_site.resolve(), (
        "fedssl must be installed into the new venv, not found in the parent environment")
    assert state["direct_url"].get("dir_info", {}).get("editable") is True
    assert state["direct_url"]["url"] == REPO.as_uri()


def test_every_compose_service_runs_under_an_init():
    """fedssl is the container's main process and supervises Flower; PID 1 must still reap
    the orphans Flower's processes leave (compose's `init: true`)."""
    for name, service in compose()["services"].items():
        assert service.get("init") is True, name
