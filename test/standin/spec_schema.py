"""Loading the OpenAPI descriptions in test/standin/specs/ and checking request
bodies against them: JSON bodies (Fly, Go-style messages) and form bodies with
bracket nesting (Stripe, Stripe-style error codes)."""

import json
import os
import re

import yaml

SPEC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "specs")


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """YAML 1.2-ish booleans: only true/false, so `enum: [no, always]` stays strings."""


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
    for k, v in _Loader.yaml_implicit_resolvers.copy().items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"))


def load_fly_spec():
    with open(os.path.join(SPEC_DIR, "fly-machines-openapi.yml")) as f:
        return yaml.load(f, Loader=_Loader)


STRIPE_API_VERSION = "2024-06-20"


def load_stripe_spec():
    """The subset of Stripe's OpenAPI the stand-in serves, with what the pinned
    version (STRIPE_API_VERSION) adds from the overlay beside it."""
    with open(os.path.join(SPEC_DIR, "stripe-openapi-2020-08-27-subset.json")) as f:
        spec = json.load(f)
    with open(os.path.join(SPEC_DIR, "stripe-%s-overlay.json" % STRIPE_API_VERSION)) as f:
        overlay = json.load(f)
    spec["info"]["version"] = overlay["info"]["version"]
    for path, props in overlay["properties"].items():
        schema = spec["paths"][path]["post"]["requestBody"]["content"][
            "application/x-www-form-urlencoded"]["schema"]
        schema["properties"].update(props)
    spec["paths"].update(overlay["paths"])
    return spec


def resolve(spec, schema):
    """Follow $ref links."""
    while isinstance(schema, dict) and "$ref" in schema:
        ref = schema["$ref"]
        node = spec
        for part in ref.lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def path_template_regex(template):
    """'/apps/{app_name}/machines' -> compiled regex with named groups."""
    out = "^"
    for part in re.split(r"(\{[^}]+\})", template):
        if part.startswith("{"):
            out += "(?P<%s>[^/]+)" % re.sub(r"\W", "_", part[1:-1])
        else:
            out += re.escape(part)
    return re.compile(out + "$")


# ---------------------------------------------------------------- JSON (Fly)

def _merge_allof(spec, schema):
    schema = resolve(spec, schema)
    if not isinstance(schema, dict) or "allOf" not in schema:
        return schema
    merged = {k: v for k, v in schema.items() if k != "allOf"}
    props = dict(merged.get("properties", {}))
    req = list(merged.get("required", []))
    for sub in schema["allOf"]:
        sub = _merge_allof(spec, sub)
        for k, v in sub.items():
            if k == "properties":
                props.update(v)
            elif k == "required":
                req.extend(v)
            else:
                merged.setdefault(k, v)
    if props:
        merged["properties"] = props
    if req:
        merged["required"] = req
    return merged


def _jtype(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "number"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def check_json(spec, value, schema, where):
    """First problem of a JSON value against a schema, as a Go-like message; None if fine.
    Objects with declared properties reject unknown fields (like DisallowUnknownFields)."""
    schema = _merge_allof(spec, schema)
    if not isinstance(schema, dict) or value is None:
        return None
    t = schema.get("type")
    if "anyOf" in schema or "oneOf" in schema:
        alts = schema.get("anyOf") or schema.get("oneOf")
        errs = [check_json(spec, value, a, where) for a in alts]
        return None if any(e is None for e in errs) else errs[0]
    if t == "object" or (t is None and ("properties" in schema or "additionalProperties" in schema)):
        if not isinstance(value, dict):
            return "json: cannot unmarshal %s into Go struct field %s of type object" % (
                _jtype(value), where or "body")
        props = schema.get("properties")
        addl = schema.get("additionalProperties")
        for k, v in value.items():
            sub = "%s.%s" % (where, k) if where else k
            if props is not None and k in props:
                e = check_json(spec, v, props[k], sub)
            elif isinstance(addl, dict):
                e = check_json(spec, v, addl, sub)
            elif props is not None or addl is False:
                e = 'json: unknown field "%s"' % sub
            else:
                e = None
            if e:
                return e
        for r in schema.get("required", []):
            if r not in value:
                return "missing required field %s" % ("%s.%s" % (where, r) if where else r)
        return None
    if t == "array":
        if not isinstance(value, list):
            return "json: cannot unmarshal %s into Go struct field %s of type array" % (
                _jtype(value), where)
        for i, item in enumerate(value):
            e = check_json(spec, item, schema.get("items"), "%s[%d]" % (where, i))
            if e:
                return e
        return None
    if t == "string":
        if not isinstance(value, str):
            return "json: cannot unmarshal %s into Go struct field %s of type string" % (
                _jtype(value), where)
    elif t == "integer":
        if isinstance(value, bool) or not (isinstance(value, int) or
                                            (isinstance(value, float) and value.is_integer())):
            return "json: cannot unmarshal %s into Go struct field %s of type int" % (
                _jtype(value), where)
    elif t == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "json: cannot unmarshal %s into Go struct field %s of type float64" % (
                _jtype(value), where)
    elif t == "boolean":
        if not isinstance(value, bool):
            return "json: cannot unmarshal %s into Go struct field %s of type bool" % (
                _jtype(value), where)
    if "enum" in schema and value not in schema["enum"]:
        return "invalid value %s for %s: must be one of %s" % (
            json.dumps(value), where, ", ".join(str(x) for x in schema["enum"]))
    return None


# ------------------------------------------------------------ form (Stripe)

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")


def parse_form_pairs(pairs):
    """[(key, value)] with bracket keys -> (flat dict for logs, nested dict tree).
    Containers are dicts keyed by the bracket segment; 'a[]' appends."""
    flat = {}
    tree = {}
    for key, val in pairs:
        if key in flat:
            prev = flat[key]
            flat[key] = prev + [val] if isinstance(prev, list) else [prev, val]
        else:
            flat[key] = val
        m = _KEY.match(key)
        if not m:
            raise FormError("parameter_unknown", key, "Invalid parameter name: %s" % key)
        parts = [m.group(1)] + re.findall(r"\[([^\[\]]*)\]", m.group(2))
        node = tree
        for i, p in enumerate(parts):
            last = i == len(parts) - 1
            if p == "":
                p = str(sum(1 for k in node if k.isdigit())) if isinstance(node, dict) else "0"
            if last:
                node[p] = val
            else:
                nxt = node.get(p)
                if not isinstance(nxt, dict):
                    nxt = {}
                    node[p] = nxt
                node = nxt
    return flat, tree


class FormError(Exception):
    """A Stripe parameter error: code, param, message."""

    def __init__(self, code, param, message):
        super().__init__(message)
        self.code = code
        self.param = param
        self.message = message


def _pname(base, key):
    return "%s[%s]" % (base, key) if base else key


def check_form(spec, value, schema, name):
    """Validate a nested form value (str or dict) against a schema; raise FormError.
    Returns the value converted to Python types (int, bool, list, dict)."""
    schema = resolve(spec, schema)
    if not isinstance(schema, dict):
        return value
    if "anyOf" in schema:
        errs = []
        for alt in schema["anyOf"]:
            try:
                return check_form(spec, value, alt, name)
            except FormError as e:
                errs.append((resolve(spec, alt), e))
        for altr, e in errs:  # the error of the alternative whose shape fits the value
            if isinstance(value, dict) == (altr.get("type") in ("object", "array")):
                raise e
        raise errs[0][1]
    t = schema.get("type")
    if t == "object":
        if not isinstance(value, dict):
            if value == "" and name and schema.get("additionalProperties"):
                return {}
            raise FormError(None, name, "Invalid object")
        props = schema.get("properties")
        addl = schema.get("additionalProperties")
        out = {}
        for k, v in value.items():
            pn = _pname(name, k)
            if props is not None and k in props:
                out[k] = check_form(spec, v, props[k], pn)
            elif isinstance(addl, dict):
                out[k] = check_form(spec, v, addl, pn)
            elif props is not None or addl is False:
                raise FormError("parameter_unknown", pn, "Received unknown parameter: %s" % pn)
            else:
                out[k] = v
        for r in schema.get("required", []):
            if r not in value:
                pn = _pname(name, r)
                raise FormError("parameter_missing", pn, "Missing required param: %s." % pn)
        return out
    if t == "array":
        if isinstance(value, str):
            if value == "":
                return []
            raise FormError(None, name, "Invalid array")
        if not all(k.isdigit() for k in value):
            raise FormError(None, name, "Invalid array")
        items = []
        for k in sorted(value, key=int):
            items.append(check_form(spec, value[k], schema.get("items"), "%s[%s]" % (name, k)))
        return items
    if isinstance(value, dict):
        raise FormError(None, name, "Invalid %s: %s" % (t or "value", name))
    if t == "integer":
        if not re.fullmatch(r"-?\d+", value):
            raise FormError("parameter_invalid_integer", name, "Invalid integer: %s" % value)
        value = int(value)
    elif t == "number":
        try:
            value = float(value)
        except ValueError:
            raise FormError(None, name, "Invalid decimal: %s" % value)
    elif t == "boolean":
        if value not in ("true", "false"):
            raise FormError(None, name, "Invalid boolean: %s" % value)
        value = value == "true"
    elif t == "string":
        ml = schema.get("maxLength")
        if ml is not None and len(value) > ml:
            raise FormError(None, name, "Invalid string: %s...; must be at most %d characters"
                            % (value[:20], ml))
    enum = schema.get("enum")
    if enum is not None and value not in enum and not schema.get("x-stripeBypassValidation"):
        raise FormError(None, name, "Invalid %s: must be one of %s" % (
            name, ", ".join(str(x) for x in enum)))
    return value
