#!/usr/bin/env python3
"""Write luci-app/po/templates/braid.pot: every _('...') string of the LuCI app's JavaScript
(views and the shared braid/*.js modules), as LuCI's i18n-scan does (msgids sorted, each with
the file:line it comes from), for translators.

    cross/mkpot.py            rewrite the template
    cross/mkpot.py --check    exit 1 if the template's msgids differ from the views' strings
                              (tests/pkg runs it; the #: line references may lag)
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VIEWS = ROOT / "luci-app/htdocs/luci-static/resources"
POT = ROOT / "luci-app/po/templates/braid.pot"

# _('...') or _("..."), with backslash escapes; the first argument only.
CALL = re.compile(r"""\b_\(\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")""", re.S)
ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", "'": "'", '"': '"'}


def unescape(s):
    return re.sub(r"\\(.)", lambda m: ESCAPES.get(m.group(1), m.group(1)), s)


def po_quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t") + '"'


def scan():
    found = {}
    for js in sorted(VIEWS.rglob("*.js")):
        text = js.read_text(encoding="utf-8")
        rel = js.relative_to(ROOT / "luci-app").as_posix()
        for m in CALL.finditer(text):
            msg = unescape(m.group(1) if m.group(1) is not None else m.group(2))
            line = text.count("\n", 0, m.start()) + 1
            found.setdefault(msg, []).append(f"{rel}:{line}")
    return found


def render(found):
    out = ['msgid ""', 'msgstr "Content-Type: text/plain; charset=UTF-8"', ""]
    for msg in sorted(found):
        if not msg:
            continue
        out.append("#: " + " ".join(found[msg]))
        out.append("msgid " + po_quote(msg))
        out.append('msgstr ""')
        out.append("")
    return "\n".join(out)


def main():
    text = render(scan())
    if sys.argv[1:] == ["--check"]:
        old = POT.read_text(encoding="utf-8") if POT.exists() else ""

        def ids(t):
            return [line for line in t.splitlines() if not line.startswith("#:")]

        if ids(old) != ids(text):
            print(f"{POT.relative_to(ROOT)} is out of date: run cross/mkpot.py", file=sys.stderr)
            return 1
        return 0
    POT.parent.mkdir(parents=True, exist_ok=True)
    POT.write_text(text, encoding="utf-8")
    print(POT.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
