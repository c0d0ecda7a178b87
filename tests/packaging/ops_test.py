#!/usr/bin/env python3
"""Tests of the ops files the packages ship (packaging/ops/), run by ctest
(tests/packaging/CMakeLists.txt). Standard library only.

  ops_test.py check-rules RULES          promtool check rules (all lints fatal), and every
                                          alert has `for`, a severity label (critical or
                                          warning) and summary and description annotations
  ops_test.py test-rules RULES TESTS     promtool test rules TESTS, and TESTS covers every
                                          alert of RULES: not firing before its `for` has run
                                          out, firing (labels and annotations checked) once it
                                          has, and not firing when healthy
  ops_test.py dashboard DASHBOARD        the Grafana dashboard: JSON, the datasource and
                                          instance variables, every query filtered by
                                          instance, panels on the grid, and every query valid
                                          PromQL (promtool check rules on a generated file)
  ops_test.py metrics EXE RULES DASHBOARD  starts the real storegw daemon EXE (temp data
                                          dir, port 0 on loopback, no uplink), sends it a few
                                          events, scrapes /metrics and checks that every
                                          metric name in RULES' expressions and DASHBOARD's
                                          queries is in the scrape (and every label they
                                          match on); promtool check metrics on the scrape

promtool comes from Debian's `prometheus` package (packaging/install-deps.sh);
when it is missing every mode but `metrics`' own checks fails, saying so. Set
PROMTOOL to use another one. Exit status 0 when every check passed.
"""

import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

FAILURES = []


def ok(what):
    print(f"ok: {what}")


def fail(what):
    print(f"FAIL: {what}", file=sys.stderr)
    FAILURES.append(what)


def check(cond, what):
    if cond:
        ok(what)
    else:
        fail(what)
    return cond


def die(what):
    print(f"FAIL: {what}", file=sys.stderr)
    sys.exit(1)


def finish(mode):
    if FAILURES:
        print(f"{mode}: {len(FAILURES)} check(s) failed", file=sys.stderr)
        sys.exit(1)
    print(f"{mode}: all checks passed")


def promtool():
    """The promtool binary, or a failure that says how to get it."""
    path = os.environ.get("PROMTOOL") or shutil.which("promtool")
    if not path or not os.access(path, os.X_OK):
        die("promtool not found (PATH or $PROMTOOL): install Debian's `prometheus` package "
            "(apt-get install --no-install-recommends prometheus; packaging/install-deps.sh "
            "installs it). These tests do not skip without it.")
    return path


def run(cmd, what, timeout=60, stdin=None):
    """Runs cmd; passes when it exits 0. Prints its output indented."""
    try:
        p = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        fail(f"{what}: timed out after {timeout} s")
        return False
    out = (p.stdout + p.stderr).rstrip()
    if out:
        print("\n".join("    " + line for line in out.splitlines()))
    return check(p.returncode == 0, f"{what} (exit {p.returncode})")


# ---------------------------------------------------------------------------
# A reader for the YAML the rule and test files are written in: block
# mappings and sequences, plain and quoted scalars, block scalars (| |- > >-),
# empty flow collections ([] {}), full-line comments. Anything else (anchors,
# tags, non-empty flow collections) is an error rather than a guess.

class YamlError(Exception):
    pass


def _strip_comment(text):
    # Only plain (unquoted) values can carry a trailing " # comment".
    if text[:1] in ("'", '"'):
        return text
    i = text.find(" #")
    return text[:i].rstrip() if i >= 0 else text


def _scalar(text, where):
    text = _strip_comment(text.strip())
    if text == "[]":
        return []
    if text == "{}":
        return {}
    if text[:1] in ("[", "{", "&", "*", "!", "|", ">"):
        raise YamlError(f"{where}: unsupported YAML value {text!r}")
    if text.startswith('"'):
        if not text.endswith('"') or len(text) < 2:
            raise YamlError(f"{where}: unterminated double-quoted string")
        try:
            return json.loads(text)
        except ValueError as e:
            raise YamlError(f"{where}: double-quoted string: {e}") from None
    if text.startswith("'"):
        if not text.endswith("'") or len(text) < 2:
            raise YamlError(f"{where}: unterminated single-quoted string")
        return text[1:-1].replace("''", "'")
    return text


def _split_key(text):
    """'key: value' -> (key, value) or None when text is not a mapping entry."""
    m = re.match(r"^([A-Za-z_][A-Za-z0-9_.-]*):(?:\s+(.*))?$", text)
    if not m:
        return None
    return m.group(1), (m.group(2) or "")


class _Yaml:
    def __init__(self, text, name):
        self.name = name
        self.raw = text.split("\n")
        self.lines = []  # [indent, text, raw line number]
        for n, line in enumerate(self.raw):
            if "\t" in line[: len(line) - len(line.lstrip())]:
                raise YamlError(f"{name}:{n + 1}: tab in indentation")
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            self.lines.append([len(line) - len(line.lstrip(" ")), s, n])
        self.i = 0

    def where(self):
        n = self.lines[self.i][2] if self.i < len(self.lines) else len(self.raw)
        return f"{self.name}:{n + 1}"

    def parse(self):
        if not self.lines:
            return None
        node = self.node(self.lines[0][0])
        if self.i != len(self.lines):
            raise YamlError(f"{self.where()}: unexpected indentation")
        return node

    def node(self, indent):
        if self.lines[self.i][1] == "-" or self.lines[self.i][1].startswith("- "):
            return self.sequence(indent)
        return self.mapping(indent)

    def block_scalar(self, style, key_indent, raw_after):
        """Reads the raw lines after raw line raw_after that are indented deeper than
        key_indent; returns the scalar and skips them in self.lines."""
        body, n = [], raw_after + 1
        while n < len(self.raw):
            line = self.raw[n]
            if line.strip() and len(line) - len(line.lstrip(" ")) <= key_indent:
                break
            body.append(line)
            n += 1
        while body and not body[-1].strip():
            body.pop()
        while self.i < len(self.lines) and self.lines[self.i][2] < n:
            self.i += 1
        if not body:
            return ""
        ind = min(len(b) - len(b.lstrip(" ")) for b in body if b.strip())
        body = [b[ind:] for b in body]
        if style[0] == "|":
            text = "\n".join(body)
        else:  # folded: lines joined by spaces, a blank line is a newline
            text, prev_blank = "", True
            for b in body:
                if not b.strip():
                    text += "\n"
                    prev_blank = True
                else:
                    text += ("" if prev_blank else " ") + b
                    prev_blank = False
        return text if style.endswith("-") else text + "\n"

    def value_after_key(self, rest, indent, raw_n):
        if rest in ("|", "|-", ">", ">-"):
            return self.block_scalar(rest, indent, raw_n)
        if rest:
            return _scalar(rest, self.where())
        # Nested block: deeper, or a sequence at the key's own indentation.
        if self.i < len(self.lines):
            ind, text, _ = self.lines[self.i]
            if ind > indent or (ind == indent and (text == "-" or text.startswith("- "))):
                return self.node(ind)
        return None

    def mapping(self, indent):
        out = {}
        while self.i < len(self.lines):
            ind, text, raw_n = self.lines[self.i]
            if ind < indent:
                break
            if ind > indent:
                raise YamlError(f"{self.where()}: unexpected indentation")
            if text == "-" or text.startswith("- "):
                break
            kv = _split_key(text)
            if not kv:
                raise YamlError(f"{self.where()}: expected 'key: value', got {text!r}")
            key, rest = kv
            if key in out:
                raise YamlError(f"{self.where()}: key {key!r} repeated")
            self.i += 1
            out[key] = self.value_after_key(rest, indent, raw_n)
        return out

    def sequence(self, indent):
        out = []
        while self.i < len(self.lines):
            ind, text, raw_n = self.lines[self.i]
            if ind != indent or not (text == "-" or text.startswith("- ")):
                break
            content = text[1:].lstrip(" ")
            if not content:
                self.i += 1
                out.append(self.node(self.lines[self.i][0]) if self.i < len(self.lines) else None)
                continue
            kv = _split_key(content) if content[:1] not in ("'", '"') else None
            if kv:
                # "- key: value": a mapping whose first key sits where content starts.
                self.lines[self.i] = [ind + len(text) - len(content), content, raw_n]
                out.append(self.mapping(self.lines[self.i][0]))
            else:
                self.i += 1
                out.append(_scalar(content, self.where()))
        return out


def load_yaml(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        return _Yaml(text, path).parse()
    except YamlError as e:
        die(f"cannot read {path}: {e}")


def alert_rules(rules_path):
    """Every alerting rule of a rule file: a list of dicts."""
    doc = load_yaml(rules_path)
    if not isinstance(doc, dict) or not isinstance(doc.get("groups"), list):
        die(f"{rules_path}: no 'groups' list")
    rules = []
    for g in doc["groups"]:
        for r in g.get("rules") or []:
            rules.append(r)
    return rules


def duration_s(text):
    """A Prometheus duration ('10m', '1h30m', '90s') in seconds."""
    if text in (None, "", 0, "0"):
        return 0
    parts = re.findall(r"(\d+)(ms|y|w|d|h|m|s)", str(text))
    if not parts or "".join(a + b for a, b in parts) != str(text):
        raise ValueError(f"not a duration: {text!r}")
    mult = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    return sum(int(a) * mult[b] for a, b in parts)


# ---------------------------------------------------------------------------
# PromQL: the metric names (and label matchers) an expression selects.

PROMQL_KEYWORDS = {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan", "start", "end"}
LABEL_LIST_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
# Aggregation operators: `sum by (le) (...)` has no "(" right after the name.
AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
                "bottomk", "topk", "quantile"}


def grafana_expand(expr):
    """Grafana's variables replaced by values PromQL accepts."""
    expr = re.sub(r"\$__(rate_interval|interval|range)\b", "5m", expr)
    expr = re.sub(r"\$\{__(rate_interval|interval|range)\}", "5m", expr)
    expr = re.sub(r"\$\{?__range_s\}?", "300", expr)
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", r"grafana_var_\1", expr)


def _read_string(expr, i):
    q = expr[i]
    j = i + 1
    while j < len(expr) and expr[j] != q:
        j += 2 if expr[j] == "\\" and q != "`" else 1
    if j >= len(expr):
        raise ValueError(f"unterminated string in {expr!r}")
    return expr[i + 1 : j], j + 1


def _skip_ws(expr, i):
    while i < len(expr) and expr[i].isspace():
        i += 1
    return i


def selectors(expr):
    """[(metric_name, [(label, op, value), ...]), ...] for every vector selector."""
    out, i, n = [], 0, len(expr)
    while i < n:
        c = expr[i]
        if c.isspace():
            i += 1
        elif c in "\"'`":
            _, i = _read_string(expr, i)
        elif c == "[":
            j = expr.find("]", i)
            if j < 0:
                raise ValueError(f"unterminated [ in {expr!r}")
            i = j + 1
        elif c == "{":
            raise ValueError(f"selector without a metric name in {expr!r}: not supported here")
        elif c.isdigit() or (c == "." and i + 1 < n and expr[i + 1].isdigit()):
            m = re.compile(r"0x[0-9a-fA-F]+|\d*\.?\d+(?:[eE][+-]?\d+)?").match(expr, i)
            i = m.end()
        elif c.isalpha() or c in "_:":
            m = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*").match(expr, i)
            word, i = m.group(0), m.end()
            j = _skip_ws(expr, i)
            lower = word.lower()
            if lower in LABEL_LIST_KEYWORDS:
                if j < n and expr[j] == "(":
                    k = expr.find(")", j)
                    if k < 0:
                        raise ValueError(f"unterminated ( after {word} in {expr!r}")
                    i = k + 1
            elif lower in PROMQL_KEYWORDS:
                if lower == "offset":  # its duration
                    m = re.compile(r"-?\s*[0-9a-z]+").match(expr, j)
                    i = m.end() if m else j
            elif (j < n and expr[j] == "(") or lower in AGGREGATIONS:
                i = j  # a function or an aggregation
            else:
                matchers = []
                if j < n and expr[j] == "{":
                    i = j + 1
                    while True:
                        i = _skip_ws(expr, i)
                        if i < n and expr[i] == "}":
                            i += 1
                            break
                        m = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*").match(expr, i)
                        if not m:
                            raise ValueError(f"bad label matcher at {expr[i:i + 20]!r} in {expr!r}")
                        value, i = _read_string(expr, m.end())
                        matchers.append((m.group(1), m.group(2), value))
                        i = _skip_ws(expr, i)
                        if i < n and expr[i] == ",":
                            i += 1
                out.append((word, matchers))
        else:
            i += 1
    return out


# ---------------------------------------------------------------------------
def mode_check_rules(rules_path):
    tool = promtool()
    run([tool, "check", "rules", "--lint=all", "--lint-fatal", rules_path],
        f"promtool check rules --lint=all --lint-fatal {os.path.basename(rules_path)}")
    rules = alert_rules(rules_path)
    names = [r.get("alert") for r in rules]
    check(len(rules) > 0 and all(names), f"{len(rules)} rules, all alerting rules: {names}")
    check(len(set(names)) == len(names), "alert names are unique")
    for r in rules:
        a = r.get("alert") or "?"
        labels = r.get("labels") or {}
        ann = r.get("annotations") or {}
        check(duration_s(r.get("for")) > 0, f"{a}: has a `for` ({r.get('for')})")
        check(labels.get("severity") in ("critical", "warning"),
              f"{a}: severity label is critical or warning ({labels.get('severity')})")
        for k in ("summary", "description"):
            check(isinstance(ann.get(k), str) and len(ann[k].strip()) > 20,
                  f"{a}: has a {k} annotation")
        check("{{ $labels.store_id }}" in ann.get("summary", ""),
              f"{a}: the summary names the store")
        try:
            names_in = [s for s, _ in selectors(r.get("expr") or "")]
        except ValueError as e:
            names_in = []
            fail(f"{a}: expression: {e}")
        check(names_in and all(n.startswith("storegw_") for n in names_in),
              f"{a}: expression reads storegw metrics only ({sorted(set(names_in))})")
    finish("check-rules")


def mode_test_rules(rules_path, tests_path):
    tool = promtool()
    # promtool resolves rule_files relative to the test file's directory.
    run([tool, "test", "rules", tests_path],
        f"promtool test rules {os.path.basename(tests_path)}", timeout=120)
    doc = load_yaml(tests_path)
    rule_files = [os.path.normpath(os.path.join(os.path.dirname(tests_path), f))
                  for f in doc.get("rule_files") or []]
    check(os.path.normpath(rules_path) in rule_files,
          f"{os.path.basename(tests_path)} tests {os.path.basename(rules_path)} ({rule_files})")
    evals = {}  # alert -> [(group, eval_time_s, exp_alerts)]
    for gi, g in enumerate(doc.get("tests") or []):
        for t in g.get("alert_rule_test") or []:
            evals.setdefault(t.get("alertname"), []).append(
                (gi, duration_s(t.get("eval_time")), t.get("exp_alerts") or []))
    for r in alert_rules(rules_path):
        a, for_s = r["alert"], duration_s(r.get("for"))
        ev = evals.get(a, [])
        firing = [e for e in ev if e[2]]
        # "not before": an empty evaluation in the same group, later than the
        # first minute and earlier than a firing one.
        before = [(e, f) for e in ev for f in firing
                  if e[0] == f[0] and not e[2] and 0 < e[1] < f[1]]
        check(before, f"{a}: a test expects it not firing shortly before it fires")
        check(any(f[1] - b[1] <= 60 for b, f in before),
              f"{a}: ... one evaluation (1 minute) before a firing one, so `for` ({r.get('for')}) "
              "is checked to the minute")
        check(firing and all("summary" in (x.get("exp_annotations") or {}) and
                             "description" in (x.get("exp_annotations") or {}) and
                             (x.get("exp_labels") or {}).get("severity")
                             for f in firing for x in f[2]),
              f"{a}: a test expects it firing, with its severity, summary and description")
        check(any(not e[2] and e[1] > for_s for e in ev),
              f"{a}: a test expects it silent for longer than its `for` ({r.get('for')}) when healthy")
    finish("test-rules")


def dashboard_queries(dash):
    """[(panel title, panel id, refId, expr)] of every panel (rows' panels included)."""
    out = []

    def walk(panels):
        for p in panels or []:
            for t in p.get("targets") or []:
                if t.get("expr"):
                    out.append((p.get("title"), p.get("id"), t.get("refId"), t["expr"]))
            walk(p.get("panels"))

    walk(dash.get("panels"))
    return out


def load_dashboard(path):
    with open(path, encoding="utf-8") as f:
        try:
            return json.load(f)
        except ValueError as e:
            die(f"{path} is not JSON: {e}")


def mode_dashboard(path):
    tool = promtool()
    dash = load_dashboard(path)
    ok(f"{os.path.basename(path)} is JSON")
    check(dash.get("uid") and dash.get("title"), f"uid and title ({dash.get('uid')}, {dash.get('title')})")
    variables = {v.get("name"): v for v in (dash.get("templating") or {}).get("list", [])}
    ds = variables.get("datasource") or {}
    check(ds.get("type") == "datasource" and ds.get("query") == "prometheus",
          "templating: a Prometheus data source variable `datasource`")
    inst = variables.get("instance") or {}
    q = inst.get("query")
    q = q.get("query") if isinstance(q, dict) else q
    check(inst.get("type") == "query" and q and "instance" in q and "storegw_" in q,
          f"templating: an `instance` query variable over storegw's targets ({q})")
    panels, ids = [], []

    def walk(ps):
        for p in ps or []:
            panels.append(p)
            walk(p.get("panels"))

    walk(dash.get("panels"))
    ids = [p.get("id") for p in panels]
    check(len(set(ids)) == len(ids) and None not in ids, "panel ids are unique")
    cells = {}
    for p in panels:
        g = p.get("gridPos") or {}
        x, y, w, h = (g.get(k) for k in ("x", "y", "w", "h"))
        if not all(isinstance(v, int) for v in (x, y, w, h)) or x < 0 or w < 1 or x + w > 24:
            fail(f"panel {p.get('title')!r}: gridPos {g} is not on the 24-column grid")
            continue
        for cx in range(x, x + w):
            for cy in range(y, y + h):
                if (cx, cy) in cells:
                    fail(f"panel {p.get('title')!r} overlaps {cells[(cx, cy)]!r}")
                    break
                cells[(cx, cy)] = p.get("title")
    for p in panels:
        if p.get("type") == "row":
            continue
        check((p.get("datasource") or {}).get("uid") == "${datasource}" and
              all((t.get("datasource") or {}).get("uid") == "${datasource}"
                  for t in p.get("targets") or []),
              f"panel {p.get('title')!r}: uses the $datasource variable")
        check(p.get("targets"), f"panel {p.get('title')!r}: has queries")
    queries = dashboard_queries(dash)
    check(len(queries) >= 10, f"{len(queries)} queries")
    wanted = {"storegw_backlog_events", "storegw_oldest_undelivered_age_seconds",
              "storegw_link_state", "storegw_events_ingested_total",
              "storegw_commit_latency_seconds_bucket", "storegw_journal_bytes",
              "storegw_journal_max_bytes", "storegw_device_events_accepted_total",
              "storegw_device_rejected_total", "storegw_alerts_open", "storegw_device_silent",
              "storegw_devices_silent"}
    used = set()
    rules = []
    for title, pid, ref, expr in queries:
        try:
            sels = selectors(expr)
        except ValueError as e:
            fail(f"panel {title!r} {ref}: {e}")
            continue
        used |= {s for s, _ in sels}
        for name, matchers in sels:
            check(("instance", "=", "$instance") in matchers,
                  f"panel {title!r} {ref}: {name} filtered by instance=\"$instance\"")
        rules.append({"record": f"storegw_dashboard_check:panel_{pid}_{ref}",
                      "expr": grafana_expand(expr)})
    missing = sorted(wanted - used)
    check(not missing, f"the dashboard shows backlog, link, ingest, commit latency, journal, "
                       f"devices, alerts, silent devices (missing: {missing})")
    # PromQL syntax: every query as a recording rule (JSON is YAML).
    with tempfile.TemporaryDirectory() as tmp:
        f = os.path.join(tmp, "dashboard-queries.rules.json")
        with open(f, "w", encoding="utf-8") as out:
            json.dump({"groups": [{"name": "dashboard", "rules": rules}]}, out, indent=1)
        run([tool, "check", "rules", "--lint=none", f],
            f"every dashboard query is valid PromQL ({len(rules)} queries, promtool check rules)")
    finish("dashboard")


# ---------------------------------------------------------------------------
def parse_scrape(text):
    """{sample name: {label: set(values)}} of a Prometheus text exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([A-Za-z_:][A-Za-z0-9_:]*)(\{(.*)\})?\s+\S+", line)
        if not m:
            fail(f"unparsable /metrics line: {line!r}")
            continue
        labels = out.setdefault(m.group(1), {})
        for k, v in re.findall(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3) or ""):
            labels.setdefault(k, set()).add(v)
    return out


def _pdeathsig():
    # The daemon dies with this test, also when ctest kills the test on a timeout.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def http(url, body=None, timeout=10):
    req = urllib.request.Request(url, data=body.encode() if body else None,
                                 headers={"Content-Type": "application/json"} if body else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def sale(event_id, device, sku, qty):
    return json.dumps({"event_id": event_id, "device_id": device,
                       "occurred_at": str(int(time.time() * 1_000_000)),
                       "sale": {"basket_id": "B-" + event_id, "tender": "card",
                                "lines": [{"sku": sku, "qty": qty, "unit_price": 199,
                                           "currency": "EUR"}]}})


def mode_metrics(exe, rules_path, dash_path):
    tool = promtool()
    # What the files use.
    used = {}  # name -> [(where, matchers)]
    for r in alert_rules(rules_path):
        try:
            for name, matchers in selectors(r.get("expr") or ""):
                used.setdefault(name, []).append((f"alert {r.get('alert')}", matchers))
        except ValueError as e:
            fail(f"alert {r.get('alert')}: {e}")
    n_rules = len(used)
    for title, _, ref, expr in dashboard_queries(load_dashboard(dash_path)):
        try:
            for name, matchers in selectors(expr):
                used.setdefault(name, []).append((f"panel {title!r} {ref}", matchers))
        except ValueError as e:
            fail(f"panel {title!r} {ref}: {e}")
    check(n_rules >= 6 and len(used) >= 20,
          f"metric names read: {n_rules} in the rules, {len(used)} in all")

    tmp = tempfile.mkdtemp(prefix="storegw-ops-metrics-")
    proc = None
    log_path = os.path.join(tmp, "daemon.log")

    def show_log():
        try:
            with open(log_path, encoding="utf-8", errors="replace") as f:
                sys.stderr.write("".join("    " + line for line in f.readlines()[-40:]))
        except OSError:
            pass

    def on_signal(signum, _frame):
        raise SystemExit(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        cfg = os.path.join(tmp, "storegw.toml")
        with open(cfg, "w", encoding="utf-8") as f:
            f.write(f'[gateway]\nstore_id = "store-0042"\ngateway_id = "gw-01"\n'
                    f'data_dir = "{os.path.join(tmp, "data")}"\n'
                    '[http]\nlisten = "127.0.0.1:0"\n'   # the daemon picks a free port
                    '[uplink]\ntransport = "none"\n')
        with open(log_path, "w", encoding="utf-8") as log:
            proc = subprocess.Popen([exe, "run", "--config", cfg], stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    preexec_fn=_pdeathsig)
        url, deadline = None, time.monotonic() + 15
        while time.monotonic() < deadline and url is None:
            with open(log_path, encoding="utf-8", errors="replace") as f:
                m = re.search(r"^storegw: listening on (http://\S+) ", f.read(), re.M)
            if m:
                url = m.group(1)
            elif proc.poll() is not None:
                break
            else:
                time.sleep(0.05)
        if not url:
            show_log()
            die(f"the daemon did not start (exit {proc.poll()}): {exe}")
        ok(f"storegw runs (pid {proc.pid}) on {url}")

        # Traffic, so that the labelled device series exist: an accepted sale
        # (it oversells: a stock alert), its retry (duplicate), a refused one.
        first = sale("till-01-000001", "till-01", "SKU-1", 2)
        st, body = http(url + "/v1/events", first)
        check(st == 200 and '"duplicate":false' in body, f"sale from till-01 accepted ({st})")
        st, body = http(url + "/v1/events", first)
        check(st == 200 and '"duplicate":true' in body, f"its retry is a duplicate ({st})")
        st, body = http(url + "/v1/events", sale("till-02-000001", "till-02", "SKU-1", 0))
        check(st == 400, f"invalid sale from till-02 refused ({st})")
        st, text = http(url + "/metrics")
        if not check(st == 200, f"GET /metrics ({st})"):
            show_log()
            die("no /metrics")
        with open(os.path.join(tmp, "metrics.txt"), "w", encoding="utf-8") as f:
            f.write(text)
        run([tool, "check", "metrics"], "promtool check metrics on the scrape", stdin=text)
        scraped = parse_scrape(text)
        families = set(re.findall(r"^# TYPE (\S+) histogram$", text, re.M))
        print(f"    scraped {len(scraped)} metric names")
        for name in sorted(used):
            where = sorted({w for w, _ in used[name]})
            if name not in scraped:
                hint = " (a histogram: use _bucket, _sum or _count)" if name in families else ""
                fail(f"{name} is not in the daemon's /metrics{hint}; used by {', '.join(where)}")
                continue
            ok(f"{name} is exported ({len(where)} uses)")
            for w, matchers in used[name]:
                for label, op, value in matchers:
                    if label in ("instance", "job"):  # added by Prometheus at scrape
                        continue
                    if label not in scraped[name]:
                        fail(f"{w}: {name} has no label {label!r} in /metrics")
                    elif op == "=" and value not in scraped[name][label]:
                        fail(f"{w}: {name} never has {label}={value!r} in /metrics "
                             f"(values: {sorted(scraped[name][label])})")
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(timeout=10)
                check(rc == 0, f"storegw exited {rc} on SIGTERM")
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                fail("storegw did not exit within 10 s of SIGTERM: killed")
        if FAILURES:
            print(f"    (files kept in {tmp})", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    finish("metrics")


def main(argv):
    usage = ("usage: ops_test.py check-rules RULES | test-rules RULES TESTS | dashboard JSON | "
             "metrics STOREGW_EXE RULES DASHBOARD")
    if len(argv) < 2:
        die(usage)
    mode, args = argv[1], argv[2:]
    if mode == "check-rules" and len(args) == 1:
        mode_check_rules(*args)
    elif mode == "test-rules" and len(args) == 2:
        mode_test_rules(*args)
    elif mode == "dashboard" and len(args) == 1:
        mode_dashboard(*args)
    elif mode == "metrics" and len(args) == 3:
        mode_metrics(*args)
    else:
        die(usage)


if __name__ == "__main__":
    main(sys.argv)
