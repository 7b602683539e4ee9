#!/usr/bin/python3
# Keeps docs/group.schema.json in agreement with the reader of group files
# (common/group_spec_json.cc, common/group_spec.cc), as a third party who
# validates with the schema meets it:
#   1. the schema is a valid draft 2020-12 schema;
#   2. every group file in the repository (configs/, the fuzz seeds, the json
#      code blocks of README.md and docs/ that hold a group) is valid under
#      the schema and accepted by the reader;
#   3. each case below is judged alike by both: refused specs (unknown keys,
#      RUN's `argv` for `command`, command and shell together, wrong types,
#      values out of range, each limit passed by one) are invalid under the
#      schema and refused by the reader with a message naming the field;
#      specs at the edges (nulls, whole floats, limits reached) pass both;
#   4. what a JSON Schema cannot say (unique step ids, limits in bytes, ...)
#      is listed apart: valid under the schema and refused by the reader, so
#      the schema's description of what it leaves out stays true.
# The reader is the real one, through `cohort submit FILE` against an
# endpoint nobody listens on: the CLI reads the file with ParseGroupSpecJson
# before it connects, and exits 2 ("invalid group: ...") for a refused spec,
# 3 (unreachable) for an accepted one. The CLI has no offline check.
#
# /usr/bin/python3 on purpose: the maintained validator is Debian's
# python3-jsonschema (scripts/install-deps), installed for that interpreter;
# a python3 earlier on PATH may lack it or have another version.
# Usage: group_schema_test.py [REPO_ROOT [BIN_DIR]]
#   REPO_ROOT defaults to this script's ../..; BIN_DIR (where `cohort` is)
#   to $COHORT_BIN_DIR, else REPO_ROOT/build/bin.
# Exit status 0 on success, 1 with a FAIL line per problem otherwise.
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    import jsonschema
except ImportError:
    print("FAIL: no jsonschema module for " + sys.executable + ": install python3-jsonschema (scripts/install-deps)",
          file=sys.stderr)
    sys.exit(1)

ROOT = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[2])
BIN_DIR = Path(sys.argv[2] if len(sys.argv) > 2 else os.environ.get("COHORT_BIN_DIR", ROOT / "build" / "bin"))
COHORT = BIN_DIR / "cohort"

failures = 0


def fail(message):
    global failures
    failures += 1
    print("FAIL: " + message, file=sys.stderr)


def step(**fields):
    return {"id": "a", "shell": "true", **fields}


def group(*steps, **fields):
    return {**fields, "steps": list(steps) or [step()]}


def loads_strict(text):
    """json.loads, but a key given twice is an error: the reader refuses one
    while json.loads keeps the last, so the schema would not see it."""
    def pairs(items):
        keys = [k for k, _ in items]
        twice = sorted({k for k in keys if keys.count(k) > 1})
        if twice:
            raise ValueError("key given more than once: " + ", ".join(twice))
        return dict(items)

    return json.loads(text, object_pairs_hook=pairs)


MIB = 1 << 20
LONG_ID = "x" * 257

# (name, spec, what the reader's message must contain). A spec is a Python
# value written with json.dumps, or raw text (str) written as it is.
REFUSED = [
    ("unknown group key", group(max_paralel=2), "max_paralel: unknown field"),
    ("RUN's argv for command", group({"id": "a", "argv": ["make"]}), "steps[0].argv: unknown field"),
    ("unknown step key", group(step(name="x")), "steps[0].name: unknown field"),
    ("command and shell", group(step(command=["true"])), "give either command or shell, not both"),
    ("command string and shell", group(step(command="true")), "give either command or shell, not both"),
    ("neither command nor shell", group({"id": "a"}), "needs a command (argv) or a shell string"),
    ("step without id", group({"shell": "true"}), "id must not be empty"),
    ("empty step id", group(step(id="")), "id must not be empty"),
    ("no steps", {"id": "g"}, "steps: missing"),
    ("empty steps", {"steps": []}, "at least one step"),
    ("steps an object", {"steps": {}}, "steps: must be a list of steps"),
    ("step a string", {"steps": ["true"]}, "steps[0]: must be an object"),
    ("not an object", '[{"id": "a", "shell": "true"}]', "JSON object"),
    ("empty command list", group({"id": "a", "command": []}), "steps[0].command: must not be an empty list"),
    ("empty program", group({"id": "a", "command": ["", "x"]}), "command[0] (the program) must not be empty"),
    ("command entry a number", group({"id": "a", "command": ["sleep", 1]}), "steps[0].command[1]: must be a string"),
    ("empty command string", group({"id": "a", "command": ""}), "needs a command (argv) or a shell string"),
    ("command an object", group({"id": "a", "command": {"argv": ["x"]}}), "must be a list of strings (argv) or a string"),
    ("empty shell", group(step(shell="")), "needs a command (argv) or a shell string"),
    ("shell a list", group(step(shell=["true"])), "steps[0].shell: must be a string, got array"),
    ("RUN's env pairs", group(step(env=[["K", "V"]])), "steps[0].env: must be an object, got array"),
    ("env null", group(step(env=None)), "steps[0].env: must be an object, got null"),
    ("env value a number", group(step(env={"K": 1})), "steps[0].env.K: must be a string"),
    ("env name with =", group(step(env={"A=B": "x"})), "env has an invalid variable name"),
    ("empty env name", group(step(env={"": "x"})), "env has an invalid variable name"),
    ("env value with NUL", group(step(env={"K": "a\u0000b"})), "env.K must not contain a NUL byte"),
    ("agent a number", group(step(agent=1)), "steps[0].agent: must be a string, got number"),
    ("agent with a newline", group(step(agent="linux\n")), "agent must not contain control characters"),
    ("agent too long", group(step(agent=LONG_ID)), "agent is 257 bytes; the limit is 256"),
    ("cwd null", group(step(cwd=None)), "steps[0].cwd: must be a string, got null"),
    ("step timeout null", group(step(timeout_s=None)), "steps[0].timeout_s: must be a number of seconds, got null"),
    ("step timeout a string", group(step(timeout_s="30")), "must be a number of seconds, got string"),
    ("step timeout zero", group(step(timeout_s=0)), "timeout_s must be a positive number of seconds, got 0"),
    ("timeout zero", group(timeout_s=0), "timeout_s must be a positive number of seconds, got 0"),
    ("timeout overflowing", '{"timeout_s": 1e400, "steps": [{"id": "a", "shell": "true"}]}', "number overflow"),
    ("deadline negative", group(deadline_s=-1), "deadline_s must be a positive number of seconds, got -1"),
    ("deadline a string", group(deadline_s="10m"), "deadline_s: must be a number of seconds, got string"),
    ("max_parallel zero", group(max_parallel=0), "max_parallel must be at least 1"),
    ("max_parallel a fraction", group(max_parallel=1.5), "max_parallel: must be a whole number, got 1.5"),
    ("max_parallel a string", group(max_parallel="4"), "max_parallel: must be a whole number, got string"),
    ("max_parallel past int64", group(max_parallel=2**63), "max_parallel: must be a whole number up to"),
    ("on_failure unknown", group(on_failure="stop"), "on_failure: unknown value \"stop\""),
    ("on_failure null", group(on_failure=None), "on_failure: must be a string, got null"),
    ("retry null", group(retry=None), "retry: must be an object, got null"),
    ("retry a number", group(retry=3), "retry: must be an object, got number"),
    ("unknown retry key", group(retry={"attempts": 3}), "retry.attempts: unknown field"),
    ("unknown step retry key", group(step(retry={"max_attempt": 3})), "steps[0].retry.max_attempt: unknown field"),
    ("max_attempts zero", group(retry={"max_attempts": 0}), "retry.max_attempts must be from 1 to 1000, got 0"),
    ("max_attempts past the limit", group(step(retry={"max_attempts": 1001})),
     "retry.max_attempts must be from 1 to 1000, got 1001"),
    ("max_attempts a fraction", group(retry={"max_attempts": 2.5}), "retry.max_attempts: must be a whole number"),
    ("max_attempts null", group(retry={"max_attempts": None}), "retry.max_attempts: must be a whole number, got null"),
    ("backoff negative", group(retry={"backoff_s": -1}), "retry.backoff_s must be a non-negative number"),
    ("multiplier below 1", group(retry={"backoff_multiplier": 0.5}), "retry.backoff_multiplier must be a number >= 1"),
    ("max backoff negative", group(retry={"max_backoff_s": -0.5}), "retry.max_backoff_s must be a non-negative"),
    ("jitter past 1", group(retry={"jitter": 1.5}), "retry.jitter must be a fraction between 0 and 1"),
    ("jitter negative", group(step(retry={"jitter": -0.1})), "retry.jitter must be a fraction between 0 and 1"),
    ("unknown failure kind", group(retry={"retry_on": ["crash"]}), "unknown failure kind \"crash\""),
    ("retry_on a string", group(retry={"retry_on": "exit"}), "retry.retry_on: must be a list of"),
    ("group id a number", group(id=42), "id: must be a string, got number"),
    ("group id with a tab", group(id="a\tb"), "id must not contain control characters"),
    ("group id too long", group(id=LONG_ID), "id is 257 bytes; the limit is 256"),
    ("step id too long", group(step(id=LONG_ID)), "id is 257 bytes; the limit is 256"),
    ("too many arguments", group({"id": "a", "command": ["true"] * 65537}), "command is 65537 arguments"),
    ("shell too long", group(step(shell="x" * (MIB + 1))), "shell is 1048577 bytes"),
    ("too many env variables", group(step(env={f"V{i}": "" for i in range(65537)})), "env is 65537 variables"),
    ("too many steps", {"steps": [{"id": "s", "shell": "true"}] * 1_000_001}, "more than 1000000 steps"),
]

# Specs at the edges that both must accept.
ACCEPTED = [
    ("minimal", group()),
    ("nulls for the optional group values", group(id=None, max_parallel=None, timeout_s=None, deadline_s=None)),
    ("a whole float for max_parallel", group(max_parallel=2.0)),
    ("a whole float for max_attempts", group(retry={"max_attempts": 3.0})),
    ("command as one shell line", group({"id": "a", "command": "echo hi | wc -c"})),
    ("command as argv", group({"id": "a", "command": ["echo", "", "hi"]})),
    ("empty agent, env and cwd", group(step(agent="", env={}, cwd=""))),
    ("empty retry blocks", group(step(retry={}), retry={})),
    ("retry nothing", group(retry={"retry_on": []})),
    ("a failure kind twice", group(retry={"retry_on": ["exit", "exit", "worker_lost"]})),
    ("retry limits reached", group(retry={"max_attempts": 1000, "backoff_s": 0, "backoff_multiplier": 1,
                                          "max_backoff_s": 0, "jitter": 1})),
    ("jitter zero", group(step(retry={"jitter": 0, "max_attempts": 1}))),
    ("ids at their limit", group(step(id="y" * 256, agent="z" * 256), id="x" * 256)),
    ("non-ASCII ids", group(step(id="bühne", agent="lïnux"), id="グループ")),
    ("arguments at their limit", group({"id": "a", "command": ["true"] * 65536})),
    ("shell at its limit", group(step(shell="x" * MIB))),
    ("tiny times", group(step(timeout_s=1e-3), timeout_s=0.001, deadline_s=1e-9)),
    ("on_failure continue", group(on_failure="continue")),
]

# What the schema cannot express: valid under it, refused by the reader.
SCHEMA_GAPS = [
    ("step ids not unique", group(step(), step()), "id is a duplicate"),
    ("a non-ASCII id past 256 bytes", group(id="é" * 200), "id is 400 bytes; the limit is 256"),
    ("a whole number past 9e15 written as a float", group(max_parallel=1e16), "max_parallel: must be a whole number"),
    ("a step past 32 MiB in all", group({"id": "a", "command": ["x" * MIB] * 33}),
     "the command, env and cwd together is"),
]


def examples():
    """Every group file in the repository, as (label, path or text)."""
    found = []
    for path in sorted((ROOT / "configs").glob("*.json")):
        found.append((str(path.relative_to(ROOT)), path))
    for path in sorted((ROOT / "fuzz" / "corpus" / "group_spec").glob("*.json")):
        found.append((str(path.relative_to(ROOT)), path))
    for path in sorted((ROOT / "fuzz" / "corpus" / "cli_json").glob("spec-*.json")):
        found.append((str(path.relative_to(ROOT)), path))
    if sum(1 for label, _ in found if label.startswith("configs/")) < 2:
        fail("found fewer than 2 group files in configs/: the search is broken")
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text(encoding="utf-8")
        for match in re.finditer(r"^```json\n(.*?)^```", text, re.S | re.M):
            line = text.count("\n", 0, match.start()) + 1
            label = f"{doc.relative_to(ROOT)}:{line}"
            try:
                value = loads_strict(match.group(1))
            except ValueError as e:
                fail(f"{label}: a json code block that is not JSON: {e}")
                continue
            # A result document has "group" and "steps"; a group file cannot
            # have "group" (unknown key), so "steps" alone tells them apart.
            if isinstance(value, dict) and "steps" in value and "group" not in value:
                found.append((label, match.group(1)))
    if not any(label.startswith("README.md:") for label, _ in found):
        fail("README.md has no json block with a group file: the search is broken or the example went")
    return found


def schema_errors(validator, value):
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message[:200]}" for e in validator.iter_errors(value)]


class Reader:
    """The real reader, through `cohort submit FILE`."""

    def __init__(self, tmp):
        self.tmp = Path(tmp)
        self.n = 0
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("COHORT_")}

    def judge(self, text):
        """(accepted, message) for a spec's JSON text."""
        self.n += 1
        path = self.tmp / f"spec{self.n}.json"
        path.write_text(text, encoding="utf-8")
        # Nobody listens there: an accepted spec ends unreachable, exit 3.
        argv = [str(COHORT), "submit", str(path), "--coordinator", f"ipc://{self.tmp}/nobody",
                "--connect-timeout", "0.2"]
        run = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=120)
        path.unlink()
        if run.returncode == 2:
            return False, run.stderr.strip()
        if run.returncode == 3 and "invalid group" not in run.stderr:
            return True, run.stderr.strip()
        raise RuntimeError(f"cohort submit exited {run.returncode}, neither 2 (refused) nor 3 (accepted, "
                           f"unreachable): {run.stderr.strip()[:300]}")


def text_of(spec):
    return spec if isinstance(spec, str) else json.dumps(spec, ensure_ascii=False)


def main():
    schema = json.loads((ROOT / "docs" / "group.schema.json").read_text(encoding="utf-8"))
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as e:
        fail(f"docs/group.schema.json is not a valid draft 2020-12 schema: {e.message}")
        return
    validator = jsonschema.Draft202012Validator(schema)
    if not COHORT.is_file():
        fail(f"{COHORT} is not built: the reader's half of the test cannot run")
        return

    with tempfile.TemporaryDirectory(prefix="group_schema_test.") as tmp:
        reader = Reader(tmp)

        def check(label, text, schema_valid, expected=None, value=None):
            """One spec through both. expected: None if the reader must accept
            it, else what its refusal must say."""
            errors = schema_errors(validator, json.loads(text) if value is None else value)
            if schema_valid and errors:
                fail(f"{label}: invalid under the schema: {'; '.join(errors)}")
            elif not schema_valid and not errors:
                fail(f"{label}: valid under the schema")
            accepted, message = reader.judge(text)
            if expected is None and not accepted:
                fail(f"{label}: refused by the reader: {message[:300]}")
            elif expected is not None and accepted:
                fail(f"{label}: accepted by the reader")
            elif expected is not None and expected not in message:
                fail(f"{label}: the reader's message lacks {expected!r}: {message[:300]}")

        found = examples()
        for label, source in found:
            try:
                text = source.read_text(encoding="utf-8") if isinstance(source, Path) else source
                value = loads_strict(text)
            except ValueError as e:
                fail(f"{label}: not JSON: {e}")
                continue
            check(label, text, True, value=value)
        print(f"examples: {len(found)} group files checked")
        for name, spec, expected in REFUSED:
            check(f"refused spec \"{name}\"", text_of(spec), False, expected)
        print(f"refused: {len(REFUSED)} specs checked")
        for name, spec in ACCEPTED:
            check(f"accepted spec \"{name}\"", text_of(spec), True)
        print(f"accepted: {len(ACCEPTED)} specs checked")
        # A gap the schema learns to close fails here as "invalid under the
        # schema": move it to REFUSED and out of the schema's description.
        for name, spec, expected in SCHEMA_GAPS:
            check(f"schema gap \"{name}\"", text_of(spec), True, expected)
        print(f"gaps: {len(SCHEMA_GAPS)} specs checked")


if __name__ == "__main__":
    main()
    if failures:
        print(f"{failures} failure(s)", file=sys.stderr)
        sys.exit(1)
    print("OK")
