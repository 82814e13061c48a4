"""`-h`, `-help` and `--help` for every command of the `coffer` CLI
(issue 11), without a server: the help is the command's own text, on
stdout, with exit 0, as mitchellh/cli answers it for the Vault CLI.

The commands are not listed here: they are read from `coffer -h` and from
each group's usage (`coffer kv -h`, `coffer kv metadata -h`), the same
table the dispatcher searches, so this file covers a new command as soon
as it is added. No case needs a server: VAULT_ADDR points at a closed
port, and there is no token.
"""

import functools
import os
import re
import subprocess
import tempfile

import pytest

from conftest import coffer_bin

HELP_FLAGS = ("-h", "-help", "--help")
DEAD_ADDR = "http://127.0.0.1:1"

# Run by main.c before the CLI's dispatch (server.c, plugin_test.c, main.c
# own their texts), so src/cli cannot answer -h for them. Strict: once they
# answer like the others, these cases fail and the marks must go.
# Commands main.c runs before the CLI's table (server.c, plugin_test.c).
OUTSIDE = ("server", "plugin", "plugin test", "version")

# Flags each of these commands must document (a sample; every command's
# own flags are also checked against the parser below).
KNOWN_FLAGS = {
    "kv get": ["-version", "-mount"],
    "kv put": ["-cas", "-mount"],
    "kv delete": ["-versions"],
    "kv undelete": ["-versions"],
    "kv destroy": ["-versions"],
    "operator init": ["-key-shares", "-key-threshold", "-status"],
    "operator unseal": ["-reset"],
    "token create": ["-policy", "-ttl", "-period", "-orphan", "-type"],
    "token revoke": ["-self", "-accessor", "-mode"],
    "token renew": ["-increment"],
    "lease revoke": ["-prefix", "-force", "-sync"],
    "lease renew": ["-increment"],
    "secrets enable": ["-path", "-description", "-version", "-options"],
    "secrets tune": ["-max-lease-ttl", "-default-lease-ttl"],
    "secrets list": ["-detailed"],
    "auth enable": ["-path", "-description"],
    "login": ["-method", "-path"],
    "write": ["-force"],
    "read": ["-format"],
}

# Flags of every command (Vault's HTTP and output flag sets): a command
# whose parser takes one must document it.
GLOBAL_FLAGS = ["-wrap-ttl", "-address", "-format", "-field", "-ca-cert",
                "-tls-skip-verify"]

UNKNOWN_FLAG = "-zz-no-such-flag"


@functools.lru_cache(maxsize=None)
def run(*args):
    """rc, stdout, stderr of `coffer ARGS` (cached: nothing here changes
    state, and many cases need the same help texts)."""
    home = tempfile.mkdtemp(prefix="coffer-help-")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VAULT_", "COFFER_"))}
    env.update({"VAULT_ADDR": DEAD_ADDR, "HOME": home})
    p = subprocess.run([coffer_bin()] + list(args), env=env,
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=20)
    os.rmdir(home)  # help never writes ~/.vault-token
    return (p.returncode, p.stdout.decode("utf-8", "replace"),
            p.stderr.decode("utf-8", "replace"))


def listing(text, heading):
    """The names under `heading:` of a usage text ("    name    synopsis")."""
    m = re.search(r"^%s:\n((?:    \S.*\n?)+)" % heading, text, re.M)
    return [line.split()[0] for line in m.group(1).splitlines()] if m else []


def discover():
    """(commands, groups) as the CLI lists them, each a tuple of words.

    Reads stdout and stderr whatever the exit code, so a binary that gets
    the streams wrong still yields its commands and fails the checks."""
    commands, groups = [], []
    rc, out, err = run("-h")
    todo = [(name,) for name in listing(out + err, "Commands")]
    while todo:
        words = todo.pop(0)
        if " ".join(words) in OUTSIDE:
            continue
        rc, out, err = run(*(list(words) + ["-h"]))
        text = out + err
        if text.startswith("Usage: coffer %s <subcommand>" % " ".join(words)):
            groups.append(words)
            todo += [words + (s,) for s in listing(text, "Subcommands")]
        else:
            commands.append(words)
    return commands, groups


COMMANDS, GROUPS = discover()


def ids(seq):
    return [" ".join(w) for w in seq]


def group_usage(words):
    """What the group of a command prints for -h (or the main usage)."""
    return run(*(list(words[:-1]) + ["-h"]))[1]


def documented_flags(text):
    """Every -name at the start of an option line of a help text."""
    names = set()
    for line in text.splitlines():
        if re.match(r"^  -", line):
            names.update(re.findall(r"(?<![\w-])(-[a-z][a-z0-9-]*)", line))
    return names


def parser_takes(words, flag):
    """Whether the command's flag parser knows `flag` (no server needed:
    the unknown flag after it stops the command with exit 1)."""
    rc, out, err = run(*(list(words) + [flag + "=1", UNKNOWN_FLAG]))
    assert rc == 1, (words, flag, rc, out, err)
    return "flag provided but not defined: %s\n" % flag not in err


# ------------------------------------------------------------ discovery --

def test_discovery_found_the_cli():
    names = ids(COMMANDS)
    assert len(COMMANDS) >= 30, names
    for cmd in KNOWN_FLAGS:
        assert cmd in names, (cmd, names)
    for group in ("kv", "kv metadata", "lease", "operator", "policy",
                  "secrets", "token", "auth"):
        assert group in ids(GROUPS), (group, ids(GROUPS))


# ------------------------------------------------------------ main usage --

@pytest.mark.parametrize("flag", HELP_FLAGS)
def test_main_help(flag):
    rc, out, err = run(flag)
    assert (rc, err) == (0, ""), (rc, out, err)
    assert out.startswith("Usage: coffer <command> [args]\n"), out
    assert "kv" in listing(out, "Commands")


def test_no_command_is_a_usage_error():
    for args in ([], ["no-such-command"], ["no-such-command", "-h"]):
        rc, out, err = run(*args)
        assert rc == 127, (args, rc, out, err)
        assert out == "" and err.startswith("Usage: coffer <command>"), args


# ---------------------------------------------------------------- groups --

@pytest.mark.parametrize("words", GROUPS, ids=ids(GROUPS))
def test_group_help(words):
    name = " ".join(words)
    for flag in HELP_FLAGS:
        rc, out, err = run(*(list(words) + [flag]))
        assert (rc, err) == (0, ""), (flag, rc, out, err)
        assert out.startswith("Usage: coffer %s <subcommand>" % name), out
        assert listing(out, "Subcommands"), out
        # Each listed subcommand is dispatched: a command or a group.
        for sub in listing(out, "Subcommands"):
            assert words + (sub,) in COMMANDS + GROUPS, (name, sub)


@pytest.mark.parametrize("words", GROUPS, ids=ids(GROUPS))
def test_group_without_subcommand_is_a_usage_error(words):
    name = " ".join(words)
    for extra in ([], ["no-such-sub"], ["no-such-sub", "arg"]):
        rc, out, err = run(*(list(words) + extra))
        assert rc == 1, (extra, rc, out, err)
        assert out == "", out
        assert err.startswith("Usage: coffer %s <subcommand>" % name), err


# -------------------------------------------------------------- commands --

@pytest.mark.parametrize("words", COMMANDS, ids=ids(COMMANDS))
def test_command_help(words):
    name = " ".join(words)
    group = group_usage(words)
    for flag in HELP_FLAGS:
        rc, out, err = run(*(list(words) + [flag]))
        assert (rc, err) == (0, ""), (flag, rc, out, err)
        first = out.splitlines()[0] if out else ""
        assert re.match(r"^Usage: coffer %s( |$)" % re.escape(name),
                        first), out
        assert "<subcommand>" not in first, out
        assert out != group, "%s -h prints its group's usage" % name
        # Vault's layout: the usage line, a blank line, a paragraph.
        lines = out.splitlines()
        assert len(lines) > 3 and lines[1] == "" and \
            lines[2].startswith("  ") and len(lines[2].strip()) > 10, out
    # -h anywhere before "--", even after arguments, is help.
    rc, out2, err = run(*(list(words) + ["some/path", "-h"]))
    assert (rc, out2) == (0, out), (rc, err)


@pytest.mark.parametrize("words", COMMANDS, ids=ids(COMMANDS))
def test_command_help_is_its_own(words):
    """No two commands print the same help."""
    out = run(*(list(words) + ["-h"]))[1]
    for other in COMMANDS:
        if other != words and other[:-1] == words[:-1]:
            assert run(*(list(other) + ["-h"]))[1] != out, (words, other)


@pytest.mark.parametrize("words", COMMANDS, ids=ids(COMMANDS))
def test_documented_flags_exist(words):
    """Every flag a help text lists is one the command's parser takes, and
    every global flag the parser takes (-wrap-ttl...) is listed."""
    out = run(*(list(words) + ["-h"]))[1]
    listed = documented_flags(out)
    assert listed, out
    for flag in sorted(listed):
        assert parser_takes(words, flag), (words, flag)
    for flag in GLOBAL_FLAGS:
        if parser_takes(words, flag):
            assert flag in listed, (words, flag, out)


@pytest.mark.parametrize("cmd", sorted(KNOWN_FLAGS))
def test_known_flags_documented(cmd):
    rc, out, err = run(*(cmd.split() + ["-h"]))
    assert rc == 0, (rc, err)
    listed = documented_flags(out)
    for flag in KNOWN_FLAGS[cmd]:
        assert flag in listed, (cmd, flag, out)


@pytest.mark.parametrize("words", COMMANDS, ids=ids(COMMANDS))
def test_wrong_flag_is_a_usage_error(words):
    """Vault's flag sets print the parse error alone (their Usage is a
    no-op) and the command returns 1, before any request."""
    rc, out, err = run(*(list(words) + [UNKNOWN_FLAG]))
    assert rc == 1, (rc, out, err)
    assert out == "", out
    assert err == "flag provided but not defined: %s\n" % UNKNOWN_FLAG, err


# ------------------------------------------ commands main.c runs itself --

@pytest.mark.parametrize("name", sorted(OUTSIDE))
def test_outside_command_help(name):
    if name != "plugin test":
        assert name.split()[0] in listing(run("-h")[1], "Commands")
    for flag in ("-h", "-help", "--help"):
        rc, out, err = run(*(name.split() + [flag]))
        assert rc == 0 and err == "", (name, flag, rc, err)
        assert out.startswith("Usage: coffer " + name), (name, flag, out)
