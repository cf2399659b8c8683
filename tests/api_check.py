#!/usr/bin/env python3
"""api_check.py — checks real API responses against docs/api/openapi.json.

  api_check.py SPEC METHOD PATH STATUS BODYFILE HITS
      The operation for METHOD and PATH (a concrete path, matched against the
      spec's templates) must exist and document STATUS; a JSON body must fit
      the documented schema: required properties present, types, enums,
      items, $ref, allOf and oneOf (a subset of JSON Schema, enough for this
      spec). Records "METHOD TEMPLATE STATUS" in HITS. Exit 0 or 1 with why.
  api_check.py --coverage SPEC HITS
      Every documented operation must have answered a 2xx at least once.
"""
import json
import re
import sys

TYPES = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "null": lambda v: v is None,
}


def resolve(spec, schema):
    while "$ref" in schema:
        node = spec
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def check(spec, schema, value, where):
    """Returns a list of problems (empty when value fits schema)."""
    schema = resolve(spec, schema)
    problems = []
    for sub in schema.get("allOf", []):
        problems += check(spec, sub, value, where)
    if "oneOf" in schema:
        fits = [s for s in schema["oneOf"] if not check(spec, s, value, where)]
        if len(fits) != 1:
            problems.append(f"{where}: fits {len(fits)} of the oneOf alternatives, not exactly one")
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(TYPES[t](value) for t in types):
            return problems + [f"{where}: {json.dumps(value)[:80]} is not {'/'.join(types)}"]
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                problems.append(f"{where}: required property \"{key}\" is missing")
        for key, sub in schema.get("properties", {}).items():
            if key in value and not resolve(spec, sub).get("writeOnly"):
                problems += check(spec, sub, value[key], f"{where}.{key}")
            if key in value and resolve(spec, sub).get("writeOnly"):
                problems.append(f"{where}.{key}: a writeOnly property was returned")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            problems += check(spec, schema["items"], item, f"{where}[{i}]")
    return problems


def find_operation(spec, method, path):
    path = path.split("?", 1)[0]
    for template, item in spec["paths"].items():
        pattern = "^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path) and method.lower() in item:
            return template, item[method.lower()]
    return None, None


def main(argv):
    if len(argv) == 4 and argv[1] == "--coverage":
        spec = json.load(open(argv[2]))
        hits = set()
        for line in open(argv[3]):
            m, t, s = line.split()
            if s.startswith("2"):
                hits.add((m, t))
        missing = [f"{m.upper()} {t}" for t, item in spec["paths"].items()
                   for m in item if m in ("get", "post", "patch", "put", "delete") and (m.upper(), t) not in hits]
        if missing:
            print("documented operations never answered 2xx: " + ", ".join(missing))
            return 1
        return 0
    if len(argv) != 7:
        print(__doc__)
        return 2
    spec_file, method, path, status, body_file, hits_file = argv[1:]
    spec = json.load(open(spec_file))
    template, op = find_operation(spec, method, path)
    if op is None:
        print(f"{method} {path} is not documented")
        return 1
    with open(hits_file, "a") as h:
        h.write(f"{method.upper()} {template} {status}\n")
    response = op["responses"].get(status) or op["responses"].get("default")
    if response is None:
        print(f"{method} {template} answered {status}, which is not documented (documented: {', '.join(op['responses'])})")
        return 1
    content = response.get("content", {})
    if "application/json" not in content:
        return 0
    raw = open(body_file, "rb").read()
    try:
        body = json.loads(raw)
    except ValueError:
        print(f"{method} {template} {status}: the body is not JSON: {raw[:120]!r}")
        return 1
    problems = check(spec, content["application/json"]["schema"], body, "body")
    if problems:
        print(f"{method} {template} {status}: " + "; ".join(problems[:5]))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
