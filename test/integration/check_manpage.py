"""Check that the man page documents exactly the options that `nonoproxy-run --help` lists.

usage: check_manpage.py <path-to-nonoproxy-run> <path-to-man-page>

Reads the option rows of `--help` (long name, short name, value name) and the route-key rows
(KEY=VALUE), and the .TP tags of the man page's OPTIONS section (before its first .SS) and of
its ROUTE KEYS subsection. Fails, listing each difference, when:
- an option (long or short) or route key of --help is not documented in the man page;
- the man page documents an option or route key that --help does not list;
- a short name is paired with another long name, or a value name differs (FILE vs PATH);
- the version in the .TH line is not the one `--version` prints.
It also renders the page with `groff -man -Tutf8 -ww` and `mandoc -Tlint -W warning`, each when
installed, and fails on any warning they print. Exit status: 0 pass, 1 fail, 2 usage error.
"""

import re
import shutil
import subprocess
import sys

# Font-alternating man(7) macros: their arguments are joined without spaces.
ALTERNATING = {".BI", ".BR", ".IB", ".IR", ".RB", ".RI"}
# Font macros whose arguments are joined with spaces.
SIMPLE = {".B", ".I", ".SM", ".SB"}
# roff escapes that stand for one character, and escapes that print nothing.
ESCAPES = [("\\-", "-"), ("\\e", "\\"), ("\\(dq", '"'), ("\\(aq", "'"), ("\\(em", "--"),
           ("\\(en", "-"), ("\\ ", " "), ("\\~", " "), ("\\&", ""), ("\\c", ""), ("\\%", ""),
           ("\\|", ""), ("\\^", "")]
# One option as --help or a man page tag writes it: "-q", "--port N", "--port=N".
OPTION_RE = re.compile(r"^(?P<name>--?[A-Za-z0-9][A-Za-z0-9-]*)(?:[ =](?P<arg>\S.*))?$")
# One route key row: "credential=KEY".
ROUTE_KEY_RE = re.compile(r"^(?P<name>[a-z][a-z0-9-]*)=(?P<arg>\S+)$")


class Option:
    """One option: its long name (or None), short name (or None) and value name (or None)."""

    def __init__(self, long_name, short_name, arg):
        self.long_name = long_name
        self.short_name = short_name
        self.arg = arg

    def key(self):
        """Return the name that identifies the option: the long one when there is one."""
        return self.long_name or self.short_name


def run_binary(binary, arg):
    """Return the stdout of `binary arg`; exit with a message when it fails."""
    try:
        proc = subprocess.run([binary, arg], stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        sys.exit("check_manpage: cannot run %s %s: %s" % (binary, arg, e))
    if proc.returncode != 0:
        sys.exit("check_manpage: %s %s exited with %d: %s"
                 % (binary, arg, proc.returncode, proc.stderr.strip()))
    return proc.stdout


def help_column(rows):
    """Return the column where the help texts of rows start (after the widest left column).

    A left part longer than the column has a line of its own, and its help text follows on a
    continuation line indented to that column; otherwise two or more spaces separate the left
    part from the help text, except when the left part fills the column exactly."""
    counts = {}
    for row in rows:
        if row.strip() and not row.lstrip().startswith("-") and "=" not in row.split()[0]:
            col = len(row) - len(row.lstrip())  # a continuation line: only the help text
            counts[col] = counts.get(col, 0) + 1
        for m in re.finditer(r"\S( {2,})(?=\S)", row):
            col = m.end(1)
            counts[col] = counts.get(col, 0) + 1
    if not counts:
        return None
    return max(counts, key=lambda c: (counts[c], c))


def left_parts(rows):
    """Return the left parts of the rows of one usage table (option or route key rows)."""
    col = help_column(rows)
    lefts = []
    for i, row in enumerate(rows):
        if not row.strip():
            continue
        indent = len(row) - len(row.lstrip())
        if col is not None and indent >= col:
            continue  # continuation line
        nxt = rows[i + 1] if i + 1 < len(rows) else ""
        alone = col is not None and len(nxt) - len(nxt.lstrip()) >= col and nxt.strip()
        if alone or col is None:
            lefts.append(row.strip())
        else:
            lefts.append(row[:col].strip())
    return lefts


def section_rows(text, header_re):
    """Return the indented lines after the first line matching header_re (the lines of the
    header that follow it are not indented), up to the next blank line."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if re.match(header_re, line):
            rows = []
            for row in lines[i + 1:]:
                if not row.strip():
                    break
                if row[0] == " ":
                    rows.append(row)
            return rows
    return []


def parse_option_text(text, where, problems):
    """Parse "-q, --quiet" or "--port N" into an Option; record a problem when it is not one."""
    long_name = short_name = arg = None
    for alt in [a.strip() for a in text.split(", ")]:
        m = OPTION_RE.match(alt)
        if m is None:
            problems.append("%s: cannot read %r as an option" % (where, text))
            return None
        if m.group("name").startswith("--"):
            long_name = m.group("name")
            arg = m.group("arg")
        else:
            short_name = m.group("name")
            if m.group("arg") is not None:
                arg = arg or m.group("arg")
    return Option(long_name, short_name, arg)


def parse_help(text, problems):
    """Return (options, route_keys) listed by --help: {key: Option}, {name: value name}."""
    options = {}
    rows = section_rows(text, r"^Options:\s*$")
    if not rows:
        problems.append("--help: no 'Options:' section found")
    for left in left_parts(rows):
        opt = parse_option_text(left, "--help", problems)
        if opt is not None:
            options[opt.key()] = opt
    keys = {}
    for left in left_parts(section_rows(text, r"^Route keys\b")):
        m = ROUTE_KEY_RE.match(left)
        if m is None:
            problems.append("--help: cannot read route key row %r" % left)
            continue
        keys[m.group("name")] = m.group("arg")
    return options, keys


def unescape(text):
    """Return text with font changes removed and character escapes replaced."""
    text = re.sub(r"\\f(\[[^]]*\]|\(..|.)", "", text)
    for esc, plain in ESCAPES:
        text = text.replace(esc, plain)
    return text


def roff_args(text):
    """Split the arguments of a roff macro line: blank-separated, or in double quotes, where
    two double quotes stand for one."""
    args = []
    i = 0
    while i < len(text):
        if text[i] == " ":
            i += 1
            continue
        arg = ""
        if text[i] == '"':
            i += 1
            while i < len(text):
                if text[i] == '"' and text[i + 1:i + 2] == '"':
                    arg += '"'
                    i += 2
                elif text[i] == '"':
                    i += 1
                    break
                else:
                    arg += text[i]
                    i += 1
        else:
            while i < len(text) and text[i] != " ":
                arg += text[i]
                i += 1
        args.append(arg)
    return args


def macro_text(line):
    """Return the text a man(7) source line prints, ignoring fonts."""
    if not line.startswith("."):
        return unescape(line)
    name, _, rest = line.partition(" ")
    args = roff_args(rest)
    if name in ALTERNATING:
        return unescape("".join(args))
    if name in SIMPLE:
        return unescape(" ".join(args))
    return ""


def parse_man(source, problems):
    """Return (options, route_keys, th_args) of the man page source."""
    lines = [line for line in source.splitlines()
             if not line.startswith('.\\"') and not line.startswith("'\\\"")]
    options = {}
    keys = {}
    th_args = []
    section = subsection = None
    depth = 0
    for i, line in enumerate(lines):
        if line.startswith(".TH "):
            th_args = roff_args(line[4:])
        elif line.startswith(".SH"):
            section = unescape(" ".join(roff_args(line[3:])))
            subsection = None
            depth = 0
        elif line.startswith(".SS"):
            subsection = unescape(" ".join(roff_args(line[3:])))
            depth = 0
        elif line.startswith(".RS"):
            depth += 1
        elif line.startswith(".RE"):
            depth = max(0, depth - 1)
        elif line.startswith(".TP") and section == "OPTIONS" and depth == 0 and i + 1 < len(lines):
            tag = macro_text(lines[i + 1]).strip()
            if subsection is None:
                opt = parse_option_text(tag, "man page line %d" % (i + 2), problems)
                if opt is not None:
                    if opt.key() in options:
                        problems.append("man page documents %s twice" % opt.key())
                    options[opt.key()] = opt
            elif subsection == "ROUTE KEYS":
                m = ROUTE_KEY_RE.match(tag)
                if m is None:
                    problems.append("man page line %d: cannot read route key tag %r"
                                    % (i + 2, tag))
                    continue
                keys[m.group("name")] = m.group("arg")
    if not options:
        problems.append("man page: no option tags (.TP) in its OPTIONS section")
    return options, keys, th_args


def names_of(options):
    """Return {name: Option} for every long and short name of options."""
    out = {}
    for opt in options.values():
        for name in (opt.long_name, opt.short_name):
            if name is not None:
                out[name] = opt
    return out


def compare_options(helped, documented, problems):
    """Record every difference between the options of --help and of the man page."""
    h_names = names_of(helped)
    m_names = names_of(documented)
    missing = sorted(set(h_names) - set(m_names))
    extra = sorted(set(m_names) - set(h_names))
    if missing:
        problems.append("options in --help but not in the man page: " + " ".join(missing))
    if extra:
        problems.append("options in the man page but not in --help: " + " ".join(extra))
    for name in sorted(set(h_names) & set(m_names)):
        h, m = h_names[name], m_names[name]
        if (h.long_name, h.short_name) != (m.long_name, m.short_name):
            problems.append("%s: --help pairs %s, the man page pairs %s"
                            % (name, "/".join(filter(None, (h.short_name, h.long_name))),
                               "/".join(filter(None, (m.short_name, m.long_name)))))
        elif name == h.key() and h.arg != m.arg:
            problems.append("%s: value %s in --help, %s in the man page"
                            % (name, h.arg or "(none)", m.arg or "(none)"))


def compare_keys(helped, documented, problems):
    """Record every difference between the route keys of --help and of the man page."""
    missing = sorted(set(helped) - set(documented))
    extra = sorted(set(documented) - set(helped))
    if missing:
        problems.append("route keys in --help but not in the man page: " + " ".join(missing))
    if extra:
        problems.append("route keys in the man page but not in --help: " + " ".join(extra))
    for name in sorted(set(helped) & set(documented)):
        if helped[name] != documented[name]:
            problems.append("route key %s: value %s in --help, %s in the man page"
                            % (name, helped[name], documented[name]))


def check_version(version_out, th_args, problems):
    """Record a problem unless the .TH line carries the version `--version` prints."""
    words = version_out.split()
    if not words:
        problems.append("--version printed nothing")
        return
    version = words[-1]
    if len(th_args) < 4 or version not in th_args[3].split():
        problems.append(".TH line %r does not carry version %s (from --version)"
                        % (" ".join(th_args), version))


def lint(page, problems):
    """Render the page with groff and mandoc when installed; record what they warn about."""
    tools = [("groff", ["groff", "-man", "-Tutf8", "-ww", "-z", page]),
             ("mandoc", ["mandoc", "-Tlint", "-W", "warning", page])]
    for tool, cmd in tools:
        if shutil.which(tool) is None:
            print("check_manpage: %s is not installed; its check is skipped" % tool)
            continue
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=60, check=False)
        out = (proc.stdout + proc.stderr).strip()
        if out or proc.returncode != 0:
            problems.append("%s (exit %d):\n%s" % (" ".join(cmd), proc.returncode, out))


def main():
    if len(sys.argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    binary, page = sys.argv[1], sys.argv[2]
    try:
        with open(page, encoding="utf-8") as f:
            source = f.read()
    except OSError as e:
        sys.stderr.write("check_manpage: cannot read %s: %s\n" % (page, e))
        return 2
    problems = []
    helped, h_keys = parse_help(run_binary(binary, "--help"), problems)
    documented, m_keys, th_args = parse_man(source, problems)
    compare_options(helped, documented, problems)
    compare_keys(h_keys, m_keys, problems)
    check_version(run_binary(binary, "--version"), th_args, problems)
    lint(page, problems)
    if problems:
        for p in problems:
            print("check_manpage: FAIL: " + p)
        return 1
    print("check_manpage: ok: %d options and %d route keys, documented both ways"
          % (len(helped), len(h_keys)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
